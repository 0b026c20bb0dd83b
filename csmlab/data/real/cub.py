"""CUB-200-2011 birds, with CMR's masks, SfM cameras and mean shape.

Two annotation sources, both in their official layouts (see :mod:`.layout`):

- ``annotations="cmr"`` (default): CMR's ``data/{split}_cub_cleaned.mat`` (split
  train/val/test/testval; struct array ``images`` with ``rel_path``, ``bbox``
  x1..y2, ``parts`` [3,15] = x, y, visible, and a full-image ``mask``, all in
  MATLAB 1-based pixels) and ``sfm/anno_{split}.mat`` (``sfm_anno`` with
  ``scale``, ``trans`` [2], ``rot`` [3,3]; ``S`` [3,15] and ``conv_tri`` in the
  train/testval files). Samples: image, mask, keypoints, camera.
- ``annotations="cub"``: CUB's own text files (``images.txt``,
  ``bounding_boxes.txt``, ``parts/part_locs.txt``, ``train_test_split.txt``;
  split train/test). Samples: image, keypoints. No mask, no camera.

CMR treats CUB's pixel values as MATLAB 1-based indices (its bbox is
``x1 = x, x2 = x + width - 1``); both sources are read that way, so they agree.

Each sample is CMR's crop (see :mod:`.crop`): square around the padded box,
resized to ``img_size``. Keys: ``image`` [3,S,S], ``mask`` [1,S,S] (soft at the
edges after resizing), ``keypoints`` [15,3] (crop pixels; invisible rows 0),
``camera`` (scaled orthographic, csmlab convention), ``category`` "bird",
``index``, plus ``bbox`` [4] (the tight box's pixel edges in the crop),
``crop_box`` [4] (the square window in the original image's pixel edges,
before any flip), ``class_id`` (1..200), ``rel_path`` and ``flipped``.

Camera. CMR's SfM camera maps the mean shape ``S`` to MATLAB pixels:
``p = scale * (rot @ S)[:2] + trans`` with y down. It is converted once into
csmlab's convention (docs/design.md, section 2): NDC with y up, object points in the
canonical frame. ``S`` lives in CMR's frame (the bird's left along +x, its
tail along +y, its back along +z); :data:`SFM_TO_CANONICAL` turns that into
csmlab's (up +y, front +z, as ``csmlab.geometry.rotations``' azimuth assumes).
Being a rotation, it leaves the bird's anatomical left at +x: no rotation can
make front +z, up +y *and* the anatomical right +x, so "+x is the object's
right" (docs/design.md, section 2) holds as seen by a viewer the object faces.
:func:`sfm_mean_shape` returns ``S`` in the canonical frame, so that
``camera.project(S)`` lands on the keypoints. CMR subtracts 1 from keypoints
but not from ``trans`` (a one-pixel offset); here both get the same -0.5.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ...geometry import matrix_to_quaternion, pixel_to_ndc
from ._mat import as_list as _as_list
from ._mat import loadmat as _loadmat
from .crop import (
    crop_array,
    hflip_sample,
    load_rgb,
    matlab_box_to_crop,
    matlab_box_to_indices,
    matlab_keypoints_to_crop,
    resize_gray,
    resize_rgb,
    square_crop_window,
)
from .layout import cub_dir as default_cub_dir
from .layout import find_cmr_dir

CUB_KEYPOINT_NAMES = ("back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
                      "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat")
# CMR's kp_perm: row i of a mirrored bird is part CUB_FLIP_PERM[i] of the original (left <-> right).
CUB_FLIP_PERM = (0, 1, 2, 3, 4, 5, 10, 11, 12, 9, 6, 7, 8, 13, 14)
# X_canonical = SFM_TO_CANONICAL @ X_sfm: CMR's (left, back, up) axes -> csmlab's (x, y up, z front).
SFM_TO_CANONICAL = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
# CMR's image frame (x right, y down, z into the picture) -> csmlab's camera frame (y up, z to the viewer).
_IMAGE_TO_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))

_SPLITS = {"cmr": ("train", "val", "test", "testval"), "cub": ("train", "test")}


def sfm_mean_shape(root: str | os.PathLike | None = None, cmr_dir: str | os.PathLike | None = None,
                   split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CMR's SfM mean shape: ([15,3] keypoints in csmlab's canonical frame, [F,3] 0-based convex-hull faces)."""
    cmr = Path(cmr_dir) if cmr_dir is not None else find_cmr_dir(root)
    if cmr is None:
        raise ValueError(f"cmr_dir was not given and no CMR annotations were found under "
                         f"{default_cub_dir(root).parent}")
    mat = _loadmat(cmr / "sfm" / f"anno_{split}.mat", "S", "conv_tri")
    S = torch.as_tensor(np.asarray(mat["S"], dtype=np.float64))
    if S.shape != (3, 15):
        raise ValueError(f"S in anno_{split}.mat must be [3,15], got {list(S.shape)}")
    faces = torch.as_tensor(np.asarray(mat["conv_tri"], dtype=np.int64)) - 1  # MATLAB is 1-based
    return (SFM_TO_CANONICAL @ S).T.float().contiguous(), faces


def sfm_camera(rot, scale, trans, x0: int, y0: int, crop_scale: float, img_size: int) -> dict:
    """CMR SfM camera (MATLAB pixels, y down, CMR frame) -> csmlab camera of the resized crop."""
    R_sfm = torch.as_tensor(np.asarray(rot, dtype=np.float64)).reshape(3, 3)
    R = _IMAGE_TO_CAMERA @ R_sfm @ SFM_TO_CANONICAL.T
    t_pix = (torch.as_tensor(np.asarray(trans, dtype=np.float64)).reshape(2) - 0.5
             - torch.tensor([x0, y0], dtype=torch.float64)) * crop_scale
    return {"scale": torch.tensor(2.0 * float(scale) * crop_scale / img_size, dtype=torch.float32),
            "quat": matrix_to_quaternion(R).float(),
            "trans": pixel_to_ndc(t_pix, img_size, img_size).float()}


def _read_table(path: Path, columns: int) -> dict[int, list[str]]:
    rows = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            if len(parts) < columns:
                raise ValueError(f"{path}: line {line!r} has fewer than {columns} fields")
            rows[int(parts[0])] = parts[1:]
    return rows


def _cub_text_records(d: Path, split: str) -> list[dict]:
    """Per-image records from CUB's own text files, in images.txt order."""
    images = _read_table(d / "images.txt", 2)
    boxes = _read_table(d / "bounding_boxes.txt", 5)
    is_train = _read_table(d / "train_test_split.txt", 2)
    labels = _read_table(d / "image_class_labels.txt", 2) if (d / "image_class_labels.txt").exists() else {}
    parts: dict[int, np.ndarray] = {i: np.zeros((3, 15)) for i in images}
    for line in (d / "parts" / "part_locs.txt").read_text().splitlines():
        f = line.split()
        if f:
            img_id, part_id = int(f[0]), int(f[1])
            parts[img_id][:, part_id - 1] = [float(f[2]), float(f[3]), float(f[4])]
    records = []
    for img_id, (rel_path, *_) in images.items():
        if (is_train[img_id][0] == "1") != (split == "train"):
            continue
        x, y, w, h = (float(v) for v in boxes[img_id])
        records.append({"rel_path": rel_path, "bbox": (x, y, x + w - 1, y + h - 1), "parts": parts[img_id],
                        "class_id": int(labels[img_id][0]) if img_id in labels else 0})
    return records


def _cmr_records(cmr: Path, split: str) -> tuple[list[dict], list | None]:
    images = _as_list(_loadmat(cmr / "data" / f"{split}_cub_cleaned.mat", "images")["images"])
    records = [{"rel_path": str(im.rel_path), "bbox": (im.bbox.x1, im.bbox.y1, im.bbox.x2, im.bbox.y2),
                "parts": np.asarray(im.parts, dtype=np.float64), "mask": im.mask,
                "class_id": int(getattr(im, "class_id", 0))} for im in images]
    sfm_path = cmr / "sfm" / f"anno_{split}.mat"
    if not sfm_path.exists():
        return records, None
    sfm = _as_list(_loadmat(sfm_path, "sfm_anno")["sfm_anno"])
    if len(sfm) != len(records):
        raise ValueError(f"{sfm_path} has {len(sfm)} cameras but {split}_cub_cleaned.mat has {len(records)} images")
    return records, sfm


class CubDataset(Dataset):
    """CUB-200-2011 samples in the common sample dict (see the module docstring).

    ``jitter_frac`` (CMR trains with 0.05) and ``random_flip`` draw from a
    generator seeded by ``(seed, epoch, index)``: repeatable, and different per
    epoch after :meth:`set_epoch`.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", *,
                 annotations: str = "cmr", img_size: int = 256, padding_frac: float = 0.05,
                 jitter_frac: float = 0.0, random_flip: bool = False, seed: int = 0,
                 cub_dir: str | os.PathLike | None = None, cmr_dir: str | os.PathLike | None = None):
        if annotations not in _SPLITS:
            raise ValueError(f"annotations must be 'cmr' or 'cub', got {annotations!r}")
        if split not in _SPLITS[annotations]:
            raise ValueError(f"split must be one of {_SPLITS[annotations]} with annotations={annotations!r}, "
                             f"got {split!r}")
        if not isinstance(img_size, int) or img_size <= 0:
            raise ValueError(f"img_size must be a positive int, got {img_size!r}")
        self.cub_dir = Path(cub_dir) if cub_dir is not None else default_cub_dir(root)
        if not (self.cub_dir / "images").is_dir():
            raise ValueError(f"no CUB images folder at {self.cub_dir / 'images'}; run data_scripts/prepare_cub.py")
        self.split, self.annotations, self.img_size = split, annotations, img_size
        self.padding_frac, self.jitter_frac, self.random_flip = padding_frac, jitter_frac, random_flip
        self.seed, self.epoch = seed, 0
        self.sfm = None
        if annotations == "cmr":
            cmr = Path(cmr_dir) if cmr_dir is not None else find_cmr_dir(root)
            if cmr is None:
                raise ValueError(f"CMR's annotation files were not found under {self.cub_dir.parent}; extract "
                                 f"cachedir.tar.gz there (data_scripts/prepare_cub.py), or use annotations='cub'")
            self.records, self.sfm = _cmr_records(cmr, split)
        else:
            self.records = _cub_text_records(self.cub_dir, split)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rec = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        img = load_rgb(self.cub_dir / "images" / rec["rel_path"])
        x0, y0, size = square_crop_window(matlab_box_to_indices(rec["bbox"]), self.padding_frac,
                                          self.jitter_frac, rng)
        scale = self.img_size / size
        sample = {"image": resize_rgb(crop_array(img, x0, y0, size, 255), self.img_size)}
        if "mask" in rec:
            mask = np.asarray(rec["mask"], dtype=np.float32)
            if mask.shape != img.shape[:2]:
                raise ValueError(f"the CMR mask of {rec['rel_path']} is {list(mask.shape)} but the image is "
                                 f"{list(img.shape[:2])}")
            sample["mask"] = resize_gray(crop_array(mask, x0, y0, size, 0.0), self.img_size)
        parts = np.asarray(rec["parts"], dtype=np.float64)
        if parts.shape != (3, 15):
            raise ValueError(f"parts of {rec['rel_path']} must be [3,15], got {list(parts.shape)}")
        sample["keypoints"] = matlab_keypoints_to_crop(parts.T, x0, y0, scale)
        if self.sfm is not None:
            cam = self.sfm[index]
            sample["camera"] = sfm_camera(cam.rot, cam.scale, cam.trans, x0, y0, scale, self.img_size)
        sample.update({
            "category": "bird", "index": index,
            "bbox": matlab_box_to_crop(rec["bbox"], x0, y0, scale),
            "crop_box": torch.tensor([x0, y0, x0 + size, y0 + size], dtype=torch.float32),
            "class_id": rec["class_id"], "rel_path": rec["rel_path"], "flipped": False,
        })
        if self.random_flip and rng.random() < 0.5:
            sample = hflip_sample(sample, CUB_FLIP_PERM)
        return sample


def missing_cub(root: str | os.PathLike | None = None, split: str = "train") -> str | None:
    """A sentence naming what is missing when CUB with CMR's annotations cannot be read, else None (a full-scale
    recipe's requirements list)."""
    try:
        CubDataset(root, split)
    except Exception as err:   # the message names the missing folder or file
        return (f"CUB-200-2011 with CMR's cachedir under the data root ({err}); "
                "run python data_scripts/prepare_cub.py")
    return None
