"""Where each real dataset lives under the data root, and quick checks that it is complete.

Official layouts, as the archives unpack (``prepare_*`` scripts extract them so):

    <data_root>/cub/CUB_200_2011/{images.txt, bounding_boxes.txt, train_test_split.txt,
                                  image_class_labels.txt, parts/part_locs.txt, images/...}
    <data_root>/cub/cachedir/cub/data/{train,val,test,testval}_cub_cleaned.mat    (CMR)
    <data_root>/cub/cachedir/cub/sfm/anno_{train,val,test,testval}.mat
    <data_root>/pascal3d/PASCAL3D+_release1.1/{Annotations,Images,Image_sets,CAD,PASCAL}/...
    <data_root>/synface/synface/{train,val,test}/{image,depth}/*.png

Nothing here imports torch, so the command-line scripts stay quick.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...config import data_root


class LayoutError(ValueError):
    """A dataset folder is missing files that its official layout has."""


CUB_SPLITS_CMR = ("train", "val", "test", "testval")

def _is_mat_file(path: Path) -> bool:
    """MAT files (v5 and v7.3) open with a 128-byte header whose text starts "MATLAB".

    CMR's first host served 45-byte stubs under these names (akanazawa/cmr#3).
    """
    with open(path, "rb") as f:
        head = f.read(128)
    return len(head) == 128 and head.startswith(b"MATLAB")


def cub_dir(root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "cub" / "CUB_200_2011"


def find_cmr_dir(root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding CMR's ``data/`` and ``sfm/`` for CUB, or None.

    ``cub/cachedir/cub`` for CMR's archive; otherwise the first folder, at most
    four levels under ``<data_root>/cub``, with ``data/*_cub_cleaned.mat`` (CSM's
    archive nests it differently).
    """
    base = data_root(root) / "cub"
    preferred = base / "cachedir" / "cub"
    if any((preferred / "data").glob("*_cub_cleaned.mat")):
        return preferred
    for depth in range(1, 5):
        hits = sorted(base.glob("/".join(["*"] * depth) + "/*_cub_cleaned.mat"))
        hits = [h for h in hits if h.parent.name == "data"]
        if hits:
            return hits[0].parent.parent
    return None


def pascal3d_dir(root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "pascal3d" / "PASCAL3D+_release1.1"


def synface_dir(root: str | os.PathLike | None = None) -> Path:
    """``<data_root>/synface/synface`` (the zip's own top folder), or ``<data_root>/synface`` if it holds the splits."""
    base = data_root(root) / "synface"
    nested = base / "synface"
    return nested if nested.is_dir() or not (base / "train").is_dir() else base


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise LayoutError(f"{what} is missing: expected {path}")
    return path


def _lines(path: Path) -> list[str]:
    return [ln for ln in _need(path, path.name).read_text().splitlines() if ln.strip()]


def check_cub(root: str | os.PathLike | None = None, require_cmr: bool = True) -> dict:
    """Count what the CUB folder holds; raise :class:`LayoutError` naming the first missing piece."""
    d = cub_dir(root)
    _need(d, "the CUB_200_2011 folder (extract CUB_200_2011.tgz into <data_root>/cub)")
    images = _lines(d / "images.txt")
    for name in ("bounding_boxes.txt", "train_test_split.txt"):
        if len(_lines(d / name)) != len(images):
            raise LayoutError(f"{d / name} has a different number of lines than images.txt ({len(images)})")
    n_parts = len(_lines(d / "parts" / "part_locs.txt"))
    if n_parts != 15 * len(images):
        raise LayoutError(f"parts/part_locs.txt has {n_parts} lines, expected 15 per image ({15 * len(images)})")
    missing = [ln.split()[1] for ln in images if not (d / "images" / ln.split()[1]).is_file()]
    if missing:
        raise LayoutError(f"{len(missing)} of {len(images)} images listed in images.txt are missing, "
                          f"e.g. {d / 'images' / missing[0]}")
    summary = {"cub_dir": str(d), "images": len(images),
               "train": sum(ln.split()[1] == "1" for ln in _lines(d / "train_test_split.txt"))}
    summary["test"] = len(images) - summary["train"]
    cmr = find_cmr_dir(root)
    if cmr is None:
        if require_cmr:
            raise LayoutError(f"CMR's annotation files (data/*_cub_cleaned.mat) are not under {d.parent}; "
                              f"extract cachedir.tar.gz (or CSM's cachedir.zip) there")
        return summary
    summary["cmr_dir"] = str(cmr)
    for split in CUB_SPLITS_CMR:
        for path in (cmr / "data" / f"{split}_cub_cleaned.mat", cmr / "sfm" / f"anno_{split}.mat"):
            if path.exists() and not _is_mat_file(path):
                raise LayoutError(f"{path} ({path.stat().st_size} bytes) is not a MAT file: a truncated copy "
                                  f"(CMR's first host served such stubs); get the archive again")
        summary[f"cmr_{split}"] = (cmr / "data" / f"{split}_cub_cleaned.mat").exists()
    for split in ("train", "val", "test"):
        if not summary[f"cmr_{split}"]:
            raise LayoutError(f"{cmr / 'data' / f'{split}_cub_cleaned.mat'} is missing")
    _need(cmr / "sfm" / "anno_train.mat", "CMR's SfM file (mean shape and train cameras)")
    return summary


def check_pascal3d(root: str | os.PathLike | None = None, classes=("car", "aeroplane")) -> dict:
    """Count annotations and images per class and subset; raise :class:`LayoutError` when absent."""
    d = _need(pascal3d_dir(root), "the PASCAL3D+_release1.1 folder (extract the zip into <data_root>/pascal3d)")
    summary: dict = {"pascal3d_dir": str(d)}
    for cls in classes:
        for subset in ("pascal", "imagenet"):
            anno = _need(d / "Annotations" / f"{cls}_{subset}", f"PASCAL3D+ annotations for {cls}_{subset}")
            _need(d / "Images" / f"{cls}_{subset}", f"PASCAL3D+ images for {cls}_{subset}")
            summary[f"{cls}_{subset}"] = sum(1 for _ in anno.glob("*.mat"))
        for split in ("train", "val"):
            _need(d / "Image_sets" / f"{cls}_imagenet_{split}.txt", f"the ImageNet {split} list for {cls}")
    for split in ("train", "val"):
        _need(d / "PASCAL" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / f"{split}.txt",
              f"the PASCAL VOC 2012 {split} list")
    return summary


def check_synface(root: str | os.PathLike | None = None) -> dict:
    """Count image/depth pairs per split; raise :class:`LayoutError` when a split is absent or empty."""
    d = synface_dir(root)
    summary: dict = {"synface_dir": str(d)}
    for split in ("train", "val", "test"):
        images = _need(d / split / "image", f"synface {split}/image")
        _need(d / split / "depth", f"synface {split}/depth")
        n = sum(1 for _ in images.rglob("*.png"))
        if n == 0:
            raise LayoutError(f"{images} holds no .png images")
        summary[split] = n
    return summary
