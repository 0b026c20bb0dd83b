"""Pix3D (Sun et al., CVPR 2018): images aligned with 3D models; the chairs carry 2D keypoints.

Official layout (``pix3d.zip``)::

    pix3d.json                      one record per image
    img/<category>/<name>.{jpg,png}, mask/<category>/<name>.png
    model/<category>/<model>/{model.obj, 3d_keypoints.txt, voxel.mat}

A record holds ``img``, ``mask``, ``model``, ``3d_keypoints`` (paths relative to
the folder), ``category``, ``img_size`` [w, h], ``bbox`` [x1, y1, x2, y2],
``2d_keypoints`` (one list of [x, y] per annotator, K points each, in the order
of the model's ``3d_keypoints.txt`` rows), ``rot_mat`` [3,3], ``trans_mat`` [3],
``focal_length`` (mm), ``cam_position``, ``inplane_rotation`` and the flags
``truncated``, ``occluded``, ``slightly_occluded`` (as read by, e.g.,
tensorflow_graphics' pix3d builder).

As for SPair, pixel positions are read as 0-based pixel indices (x + 0.5 in
csmlab's frame). A 2D keypoint is the mean over the annotators who marked it;
a negative coordinate is read as "not marked" (an assumption: the layout does
not document it). Records with an empty ``2d_keypoints`` have no ``keypoints``.

Samples: CMR's crop (:mod:`.crop`) of ``image`` and ``mask``, ``keypoints``
[K,3], ``keypoints_3d`` [K,3] (model frame), ``pose`` (``rot_mat``,
``trans_mat``, ``focal_length``, ``cam_position``, ``inplane_rotation`` as
stored: Pix3D's own camera, not converted to csmlab's), ``model`` (path; see
:meth:`Pix3dDataset.model` for the mesh), ``bbox``, ``crop_box``, ``category``,
``index``, ``img``. Pix3D defines no train/test split (Mesh R-CNN's is separate).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ._obj import read_obj
from .crop import (
    crop_array,
    load_rgb,
    matlab_box_to_crop,
    matlab_keypoints_to_crop,
    resize_gray,
    resize_rgb,
    square_crop_window,
)
from .layout_wave2 import pix3d_dir


def mean_keypoints(annotators) -> np.ndarray:
    """[A,K,2] annotators' points -> [K,3] (mean x, mean y, marked), over the annotators who marked each."""
    pts = np.asarray(annotators, dtype=np.float64)
    if pts.size == 0:
        return np.zeros((0, 3))
    if pts.ndim != 3 or pts.shape[2] != 2:
        raise ValueError(f"2d_keypoints must be [annotators, K, 2], got shape {list(pts.shape)}")
    marked = (pts >= 0).all(-1)                               # [A,K]
    count = marked.sum(0)
    mean = (pts * marked[..., None]).sum(0) / np.maximum(count, 1)[:, None]
    return np.concatenate([mean, (count > 0)[:, None].astype(np.float64)], 1)


class Pix3dDataset(Dataset):
    """Pix3D records of one category (default chair) in the common sample dict (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None, category: str = "chair", *, img_size: int = 256,
                 padding_frac: float = 0.05, skip_truncated: bool = False, skip_occluded: bool = False,
                 pix3d: str | os.PathLike | None = None):
        if not isinstance(img_size, int) or img_size <= 0:
            raise ValueError(f"img_size must be a positive int, got {img_size!r}")
        self.dir = Path(pix3d) if pix3d is not None else pix3d_dir(root)
        index = self.dir / "pix3d.json"
        if not index.is_file():
            raise ValueError(f"no pix3d.json in {self.dir}; run data_scripts/prepare_pix3d.py")
        records = json.loads(index.read_text())
        cats = sorted({r["category"] for r in records})
        if category not in cats:
            raise ValueError(f"category must be one of {cats}, got {category!r}")
        self.records = [r for r in records if r["category"] == category
                        and not (skip_truncated and r.get("truncated")) and not (skip_occluded and r.get("occluded"))]
        self.category, self.img_size, self.padding_frac = category, img_size, padding_frac

    def __len__(self) -> int:
        return len(self.records)

    def model(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The record's 3D model: ([V,3] vertices, [F,3] faces) in the model frame of ``pose``."""
        return read_obj(self.dir / self.records[index]["model"])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rec = self.records[index]
        img = load_rgb(self.dir / rec["img"])
        if list(img.shape[1::-1]) != list(rec["img_size"]):
            raise ValueError(f"{rec['img']} is {img.shape[1]}x{img.shape[0]} but img_size says {rec['img_size']}")
        box = tuple(float(v) for v in rec["bbox"])
        x0, y0, size = square_crop_window(box, self.padding_frac)
        scale = self.img_size / size
        with Image.open(self.dir / rec["mask"]) as im:
            mask = (np.asarray(im.convert("L")) > 127).astype(np.float32)
        sample = {"image": resize_rgb(crop_array(img, x0, y0, size, 255), self.img_size),
                  "mask": resize_gray(crop_array(mask, x0, y0, size, 0.0), self.img_size)}
        kp = mean_keypoints(rec.get("2d_keypoints") or [])
        if len(kp):
            kp[:, :2] += 1.0  # 0-based indices -> the 1-based convention of the shared crop helpers
            sample["keypoints"] = matlab_keypoints_to_crop(kp, x0, y0, scale)
        kp3 = self.dir / rec["3d_keypoints"] if rec.get("3d_keypoints") else None
        if kp3 is not None and kp3.is_file():
            sample["keypoints_3d"] = torch.from_numpy(np.loadtxt(kp3, dtype=np.float32).reshape(-1, 3))
        sample.update({
            "pose": {"rot_mat": torch.tensor(rec["rot_mat"], dtype=torch.float32),
                     "trans_mat": torch.tensor(rec["trans_mat"], dtype=torch.float32),
                     "focal_length": float(rec["focal_length"]),
                     "cam_position": torch.tensor(rec["cam_position"], dtype=torch.float32),
                     "inplane_rotation": float(rec["inplane_rotation"])},
            "model": rec["model"], "category": self.category, "index": index, "img": rec["img"],
            "bbox": matlab_box_to_crop(tuple(v + 1 for v in box), x0, y0, scale),
            "crop_box": torch.tensor([x0, y0, x0 + size, y0 + size], dtype=torch.float32),
        })
        return sample
