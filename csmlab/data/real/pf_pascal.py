"""PF-PASCAL (Ham et al., Proposal Flow): image pairs of PASCAL VOC with corresponding keypoints.

Official layout (``PF-dataset-PASCAL.zip``, plus CNNGeometric's pair lists; see
:mod:`.layout_wave2`)::

    PF-dataset-PASCAL/JPEGImages/<image>.jpg
    PF-dataset-PASCAL/Annotations/<class>/<image>.mat     (kps, bbox; not read here)
    PF-dataset-PASCAL/{val,test}_pairs_pf_pascal.csv

A pair list has a header and one row per pair: ``source_image``,
``target_image`` (paths such as ``PF-dataset-PASCAL/JPEGImages/x.jpg``),
``class`` (1..20, PASCAL VOC's class order) and ``XA, YA, XB, YB``: the
keypoints of the source (A) and target (B), each a ';'-separated list, the
i-th entries of A and B being one correspondence. Coordinates are MATLAB
1-based pixels (the annotations come from PASCAL's MATLAB tools), so a
keypoint at x is at x - 0.5 in csmlab's pixel frame (DESIGN section 3).

Each item: ``source`` and ``target``, each ``{"image" [3,H,W], "keypoints"
[M,3] (pixels, visibility 1), "image_name"}`` (resized to ``img_size`` x
``img_size`` when given, as NCNet and its successors evaluate, keypoints scaled
with it), plus ``category`` and ``pair`` (row index). The PCK reference length is left
to the metric, since papers differ: WeakAlign and NCNet use the larger side of
the source keypoints' bounding box, others the image size. PF-PASCAL has no
masks, cameras or keypoint names; none are returned.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .crop import load_rgb, resize_rgb
from .layout_wave2 import pf_pascal_dir

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
COURSE_CLASSES = ("aeroplane", "car", "chair")


def read_pairs(path: str | os.PathLike) -> list[dict]:
    """A PF-PASCAL pair list -> [{source_image, target_image, category, kps_a [M,2], kps_b [M,2]}]."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"PF-PASCAL pair list is missing: expected {path}")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < 7:
            raise ValueError(f"{path}: line {n} has {len(row)} fields, expected at least 7 "
                             f"(source_image, target_image, class, XA, YA, XB, YB)")
        cls = int(float(row[2]))
        if not 1 <= cls <= len(VOC_CLASSES):
            raise ValueError(f"{path}: line {n} has class {row[2]!r}, expected 1..{len(VOC_CLASSES)}")
        xa, ya, xb, yb = (np.array([float(v) for v in c.split(";") if v.strip()]) for c in row[3:7])
        if not (len(xa) == len(ya) == len(xb) == len(yb)):
            raise ValueError(f"{path}: line {n} has keypoint lists of lengths "
                             f"{[len(xa), len(ya), len(xb), len(yb)]}; they must be equal")
        out.append({"source_image": row[0], "target_image": row[1], "category": VOC_CLASSES[cls - 1],
                    "kps_a": np.stack([xa, ya], 1), "kps_b": np.stack([xb, yb], 1)})
    return out


class PfPascalPairs(Dataset):
    """PF-PASCAL pairs of ``split`` ('val' or 'test') for the given classes (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None, split: str = "test", *,
                 categories: tuple[str, ...] = COURSE_CLASSES, img_size: int | None = None,
                 pf_dir: str | os.PathLike | None = None):
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        bad = [c for c in categories if c not in VOC_CLASSES]
        if bad:
            raise ValueError(f"categories must be PASCAL VOC classes {VOC_CLASSES}, got {bad}")
        if img_size is not None and (not isinstance(img_size, int) or img_size <= 0):
            raise ValueError(f"img_size must be a positive int or None, got {img_size!r}")
        self.dir = Path(pf_dir) if pf_dir is not None else pf_pascal_dir(root)
        self.img_size = img_size
        self.pairs = [p for p in read_pairs(self.dir / f"{split}_pairs_pf_pascal.csv") if p["category"] in categories]

    def __len__(self) -> int:
        return len(self.pairs)

    def _image_path(self, name: str) -> Path:
        """Pair lists name images from the folder above PF-dataset-PASCAL; accept names relative to it too."""
        for base in (self.dir.parent, self.dir):
            if (base / name).is_file():
                return base / name
        raise ValueError(f"image {name!r} of the pair list is neither under {self.dir.parent} nor {self.dir}")

    def _side(self, name: str, kps: np.ndarray) -> dict:
        img = load_rgb(self._image_path(name))
        H, W = img.shape[:2]
        size = self.img_size
        sx, sy = (1.0, 1.0) if size is None else (size / W, size / H)
        kp = torch.zeros(len(kps), 3)
        kp[:, 0] = torch.from_numpy((kps[:, 0] - 0.5) * sx).float()
        kp[:, 1] = torch.from_numpy((kps[:, 1] - 0.5) * sy).float()
        kp[:, 2] = 1.0
        image = resize_rgb(img, size) if size is not None else \
            torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
        return {"image": image, "keypoints": kp, "image_name": name}

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        p = self.pairs[index]
        src, trg = self._side(p["source_image"], p["kps_a"]), self._side(p["target_image"], p["kps_b"])
        return {"source": src, "target": trg, "category": p["category"], "pair": index}
