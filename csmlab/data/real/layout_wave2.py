"""Where the wave-2 datasets live under the data root, and quick checks that they are complete.

Official layouts, as the archives unpack (``prepare_*`` scripts place them so):

    <data_root>/celeba/celeba_crop_bbox.txt, <data_root>/celeba/img_celeba/*.jpg  (extracted by hand)
    <data_root>/spair/SPair-71k/{JPEGImages, ImageAnnotation, PairAnnotation, Segmentation, Layout}/...
    <data_root>/keypointnet/{annotations/<category>.json, splits/{train,val,test}.txt,
                             pcds/<class_id>/<model_id>.pcd}
    <data_root>/pf_pascal/PF-dataset-PASCAL/{JPEGImages, Annotations/<class>/*.mat, *_pairs_pf_pascal.csv}

Nothing here imports torch, so the command-line scripts stay quick.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...config import data_root
from .layout import LayoutError, _lines, _need


def celeba_dir(root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "celeba"


def spair_dir(root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "spair" / "SPair-71k"


def keypointnet_dir(root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "keypointnet"


def pf_pascal_dir(root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "pf_pascal" / "PF-dataset-PASCAL"


def check_celeba(root: str | os.PathLike | None = None) -> dict:
    """Count the crop boxes per split and the images they name that are on disk."""
    d = celeba_dir(root)
    rows = [ln.split() for ln in _lines(d / "celeba_crop_bbox.txt")]
    images = _need(d / "img_celeba", "the in-the-wild CelebA images (extract img_celeba.7z by hand)")
    summary: dict = {"celeba_dir": str(d)}
    for code, split in (("0", "train"), ("1", "val"), ("2", "test")):
        summary[split] = sum(r[1] == code for r in rows)
    missing = [r[0] for r in rows if not (images / r[0]).is_file()]
    if missing:
        raise LayoutError(f"{len(missing)} of {len(rows)} images named in celeba_crop_bbox.txt are missing, "
                          f"e.g. {images / missing[0]}")
    return summary


def check_spair(root: str | os.PathLike | None = None) -> dict:
    """Count SPair's pairs per split and annotated images; raise :class:`LayoutError` when absent."""
    d = _need(spair_dir(root), "the SPair-71k folder (extract SPair-71k.tar.gz into <data_root>/spair)")
    for sub in ("JPEGImages", "ImageAnnotation", "PairAnnotation", "Segmentation"):
        _need(d / sub, f"SPair-71k/{sub}")
    summary: dict = {"spair_dir": str(d), "images": sum(1 for _ in (d / "ImageAnnotation").glob("*/*.json"))}
    for split in ("trn", "val", "test"):
        names = _lines(d / "Layout" / "large" / f"{split}.txt")
        missing = [n for n in names if not (d / "PairAnnotation" / split / f"{n}.json").is_file()]
        if missing:
            raise LayoutError(f"{len(missing)} pairs of Layout/large/{split}.txt have no annotation, "
                              f"e.g. {d / 'PairAnnotation' / split / (missing[0] + '.json')}")
        summary[split] = len(names)
    return summary


def check_keypointnet(root: str | os.PathLike | None = None) -> dict:
    """Count annotated models per category file, split lines, and the clouds on disk."""
    d = keypointnet_dir(root)
    import json

    summary: dict = {"keypointnet_dir": str(d)}
    for path in sorted(_need(d / "annotations", "KeypointNet's annotations/").glob("*.json")):
        summary[path.stem] = len(json.loads(path.read_text()))
    for split in ("train", "val", "test"):
        summary[f"split_{split}"] = len(_lines(d / "splits" / f"{split}.txt"))
    summary["pcds"] = sum(1 for _ in _need(d / "pcds", "KeypointNet's pcds/ (fetch them by hand)").glob("*/*.pcd"))
    if summary["pcds"] == 0:
        raise LayoutError(f"{d / 'pcds'} holds no .pcd clouds")
    return summary


def check_pf_pascal(root: str | os.PathLike | None = None) -> dict:
    """Count PF-PASCAL's annotation files and the pairs of each csv."""
    d = _need(pf_pascal_dir(root), "the PF-dataset-PASCAL folder (extract the zip into <data_root>/pf_pascal)")
    _need(d / "JPEGImages", "PF-dataset-PASCAL/JPEGImages")
    summary: dict = {"pf_pascal_dir": str(d),
                     "annotations": sum(1 for _ in _need(d / "Annotations", "PF-PASCAL Annotations").glob("*/*.mat"))}
    for split in ("val", "test"):
        summary[f"{split}_pairs"] = len(_lines(d / f"{split}_pairs_pf_pascal.csv")) - 1  # minus the header
    return summary


def pix3d_dir(root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "pix3d"


def acsm_dirs(root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(``<data_root>/acsm/templates/cachedir``, ``<data_root>/acsm/annotations/cachedir``)."""
    base = data_root(root) / "acsm"
    return base / "templates" / "cachedir", base / "annotations" / "cachedir"


def check_pix3d(root: str | os.PathLike | None = None) -> dict:
    """Count Pix3D's records per category; raise :class:`LayoutError` when files they name are missing."""
    import json

    d = pix3d_dir(root)
    records = json.loads(_need(d / "pix3d.json", "pix3d.json (extract pix3d.zip into <data_root>/pix3d)").read_text())
    summary: dict = {"pix3d_dir": str(d)}
    for rec in records:
        summary[rec["category"]] = summary.get(rec["category"], 0) + 1
    for key in ("img", "mask", "model"):
        missing = [r[key] for r in records if not (d / r[key]).is_file()]
        if missing:
            raise LayoutError(f"{len(missing)} {key} files named in pix3d.json are missing, e.g. {d / missing[0]}")
    return summary


def check_acsm(root: str | os.PathLike | None = None) -> dict:
    """List ACSM's template categories and count its PASCAL / ImageNet quadruped annotation files."""
    templates, annotations = acsm_dirs(root)
    models = _need(templates / "models",
                   "ACSM's cachedir/models (extract cachedir.tar into <data_root>/acsm/templates)")
    summary: dict = {"templates": " ".join(sorted(p.name for p in models.iterdir() if (p / "model.obj").is_file()))}
    pascal = _need(annotations / "pascal" / "data", "ACSM's cachedir/pascal/data (extract cachedir.tar.gz into "
                   "<data_root>/acsm/annotations)")
    summary["pascal_files"] = sum(1 for _ in pascal.glob("*.mat"))
    imnet = annotations / "imnet_quad"
    summary["imagenet_files"] = sum(1 for _ in imnet.glob("*.mat")) if imnet.is_dir() else 0
    if not summary["templates"]:
        raise LayoutError(f"no template (models/<category>/model.obj) under {models}")
    return summary
