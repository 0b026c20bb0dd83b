"""PASCAL3D+ release 1.1 objects (car, aeroplane, ...), one sample per annotated object.

Official layout (see :mod:`.layout`): ``Annotations/{cls}_{pascal,imagenet}/{id}.mat``
hold a ``record`` struct with ``filename`` and a struct array ``objects``; each
object has ``class``, ``bbox`` (x1, y1, x2, y2; MATLAB 1-based pixels),
``viewpoint`` (``azimuth``, ``elevation``, ``theta`` in degrees, ``distance``,
...), ``cad_index`` (1-based, into ``CAD/{cls}.mat``) and the flags
``truncated``, ``occluded``, ``difficult``. Images are in
``Images/{cls}_{subset}/{filename}``.

Splits: the ImageNet subset uses ``Image_sets/{cls}_imagenet_{split}.txt``; the
PASCAL subset uses VOC 2012's ``ImageSets/Main/{split}.txt`` (as CMR's
preprocessing does). Like CMR, objects that are truncated, occluded or
difficult are skipped unless asked for, and like other readers (e.g.
wkentaro/pascal3d) so are objects without a fine viewpoint (distance 0 or
absent: they only carry coarse azimuth/elevation bins).

Samples: ``image`` [3,S,S] (CMR's square crop around the padded box, white
outside the picture), ``category``, ``index``, plus ``bbox`` [4] (pixel edges in
the crop), ``crop_box`` [4] (the window in the original image), ``viewpoint``
(``azimuth``, ``elevation``, ``theta`` in radians, converted from the
annotation's degrees, and ``distance``), ``cad_index`` (0-based; -1 when the
object has none), ``source``
("pascal" or "imagenet") and ``image_id``. The annotated 2D anchors
(keypoints), the perspective intrinsics (which refer to the uncropped image)
and masks (PASCAL's come from a separate file, ``segkps.zip``) are not read in
this version.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ._mat import as_list as _as_list
from ._mat import loadmat as _loadmat
from .crop import crop_array, load_rgb, matlab_box_to_crop, matlab_box_to_indices, resize_rgb, square_crop_window
from .layout import pascal3d_dir

PASCAL3D_CLASSES = ("aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "diningtable",
                    "motorbike", "sofa", "train", "tvmonitor")
_SUBSETS = {"pascal": ("pascal",), "imagenet": ("imagenet",), "both": ("pascal", "imagenet")}


def _scalar(x) -> float | None:
    """A MATLAB scalar as float, or None for an empty field."""
    a = np.asarray(x, dtype=np.float64) if not isinstance(x, str) else np.asarray([])
    return float(a.reshape(-1)[0]) if a.size == 1 else None


def _split_ids(d: Path, cls: str, subset: str, split: str) -> list[str]:
    if subset == "imagenet":
        path = d / "Image_sets" / f"{cls}_imagenet_{split}.txt"
    else:
        path = d / "PASCAL" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise ValueError(f"the {subset} {split} list is missing: expected {path}")
    wanted = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
    anno_dir = d / "Annotations" / f"{cls}_{subset}"
    return [i for i in wanted if (anno_dir / f"{i}.mat").is_file()]


def read_objects(path: str | os.PathLike, cls: str) -> tuple[str, list[dict]]:
    """(image file name, every object of class ``cls``) from one PASCAL3D+ annotation file."""
    record = _loadmat(Path(path), "record")["record"]
    objects = []
    for j, obj in enumerate(_as_list(getattr(record, "objects", []))):
        if str(getattr(obj, "class", "")) != cls:
            continue
        vp = getattr(obj, "viewpoint", None)
        view = {k: _scalar(getattr(vp, k, [])) for k in ("azimuth", "elevation", "theta", "distance")} \
            if vp is not None and not isinstance(vp, np.ndarray) else {}
        objects.append({
            "record_index": j,
            "bbox": tuple(float(v) for v in np.asarray(obj.bbox, dtype=np.float64).reshape(-1)),
            "viewpoint": view,
            "cad_index": _scalar(getattr(obj, "cad_index", [])),
            **{flag: bool(_scalar(getattr(obj, flag, 0)) or 0) for flag in ("truncated", "occluded", "difficult")},
        })
    return str(record.filename), objects


def _has_fine_viewpoint(view: dict) -> bool:
    return all(view.get(k) is not None for k in ("azimuth", "elevation", "theta")) and (view.get("distance") or 0) > 0


class Pascal3DDataset(Dataset):
    """PASCAL3D+ objects of one class in the common sample dict (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None, category: str = "car", split: str = "train", *,
                 subset: str = "both", img_size: int = 256, padding_frac: float = 0.05,
                 keep_truncated: bool = False, keep_occluded: bool = False, keep_difficult: bool = False,
                 p3d_dir: str | os.PathLike | None = None):
        if category not in PASCAL3D_CLASSES:
            raise ValueError(f"category must be one of {PASCAL3D_CLASSES}, got {category!r}")
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if subset not in _SUBSETS:
            raise ValueError(f"subset must be one of {sorted(_SUBSETS)}, got {subset!r}")
        if not isinstance(img_size, int) or img_size <= 0:
            raise ValueError(f"img_size must be a positive int, got {img_size!r}")
        self.dir = Path(p3d_dir) if p3d_dir is not None else pascal3d_dir(root)
        if not (self.dir / "Annotations").is_dir():
            raise ValueError(f"no PASCAL3D+ Annotations folder in {self.dir}; run data_scripts/prepare_pascal3d.py")
        self.category, self.split, self.img_size, self.padding_frac = category, split, img_size, padding_frac
        self.skipped = {"truncated": 0, "occluded": 0, "difficult": 0, "no fine viewpoint": 0}
        self.records: list[dict] = []
        for source in _SUBSETS[subset]:
            for image_id in _split_ids(self.dir, category, source, split):
                filename, objects = read_objects(self.dir / "Annotations" / f"{category}_{source}" / f"{image_id}.mat",
                                                 category)
                for obj in objects:
                    reason = next((f for f, keep in (("truncated", keep_truncated), ("occluded", keep_occluded),
                                                      ("difficult", keep_difficult)) if obj[f] and not keep), None)
                    if reason is None and not _has_fine_viewpoint(obj["viewpoint"]):
                        reason = "no fine viewpoint"
                    if reason is not None:
                        self.skipped[reason] += 1
                        continue
                    self.records.append({**obj, "source": source, "image_id": image_id,
                                         "path": self.dir / "Images" / f"{category}_{source}" / filename})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rec = self.records[index]
        img = load_rgb(rec["path"])
        x0, y0, size = square_crop_window(matlab_box_to_indices(rec["bbox"]), self.padding_frac)
        scale = self.img_size / size
        view = rec["viewpoint"]
        return {
            "image": resize_rgb(crop_array(img, x0, y0, size, 255), self.img_size),
            "category": self.category, "index": index,
            "bbox": matlab_box_to_crop(rec["bbox"], x0, y0, scale),
            "crop_box": torch.tensor([x0, y0, x0 + size, y0 + size], dtype=torch.float32),
            "viewpoint": {**{k: torch.tensor(math.radians(view[k]), dtype=torch.float32)
                             for k in ("azimuth", "elevation", "theta")},
                          "distance": torch.tensor(view["distance"], dtype=torch.float32)},
            "cad_index": int(rec["cad_index"]) - 1 if rec["cad_index"] is not None else -1,
            "source": rec["source"], "image_id": rec["image_id"],
        }
