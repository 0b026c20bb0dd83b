"""Unsup3D's synthetic faces (``synface.zip``): image/depth pairs with the paper's loader transform.

Official layout (elliottwu/unsup3d, ``data/download_synface.sh`` and
``experiments/*_synface.yml``): ``synface/{train,val,test}/image/**.png`` and
``.../depth/**.png``, where a depth file has the image's relative path with
``image`` replaced by ``depth`` in its file name (``paired_data_filename_diff``).
Images without a depth partner are skipped, as the paper's loader does;
``unpaired`` counts them.

Transform, as the paper's ``PairedDataset`` with ``crop: 170`` and
``image_size: 64``: both files are read as RGB, centre-cropped to 170 x 170
(torchvision's ``CenterCrop`` offsets, ``round((H - 170) / 2)``), resized with
PIL's bilinear filter and scaled to [0, 1]. The depth's first channel ``x`` is
mapped as the paper's model does (``depth_gt = (1 - x) * 2 - 1``, then
``depth_rescaler``): ``depth = (1 - x) * max_depth + x * min_depth``, with
``min_depth = 0.9`` and ``max_depth = 1.1`` (train_synface.yml), so white is near.

Samples: ``image`` [3,S,S], ``depth`` [1,S,S] (the paper's camera-depth units),
``category`` "face", ``index``, ``rel_path`` and ``flipped``. There is no mask
file: off the face the depth is whatever the file holds (the far value for
black pixels); the paper's evaluation masks pixels at the batch's maximum depth.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .crop import hflip_sample, resize_rgb
from .layout import synface_dir as default_synface_dir

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", "webp")


def paired_files(split_dir: Path) -> tuple[list[tuple[Path, Path]], int]:
    """(sorted (image, depth) pairs under ``split_dir``, number of images with no depth partner)."""
    image_dir, depth_dir = split_dir / "image", split_dir / "depth"
    for d in (image_dir, depth_dir):
        if not d.is_dir():
            raise ValueError(f"synface folder {d} is missing")
    pairs, unpaired = [], 0
    for dirpath, _, filenames in sorted(os.walk(image_dir)):
        for fname in sorted(filenames):
            if not fname.lower().endswith(IMG_EXTENSIONS):
                continue
            rel = Path(dirpath).relative_to(image_dir)
            depth = depth_dir / rel / fname.replace("image", "depth")
            if depth.is_file():
                pairs.append((Path(dirpath) / fname, depth))
            else:
                unpaired += 1
    return pairs, unpaired


def centre_crop(arr: np.ndarray, size: int) -> np.ndarray:
    """torchvision's ``CenterCrop(size)`` on an [H,W,C] array; ValueError if the image is smaller."""
    H, W = arr.shape[:2]
    if H < size or W < size:
        raise ValueError(f"crop {size} needs an image at least {size}x{size}, got {H}x{W}")
    top, left = int(round((H - size) / 2.0)), int(round((W - size) / 2.0))
    return arr[top:top + size, left:left + size]


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class SynfaceDataset(Dataset):
    """Synface image/depth pairs in the common sample dict (see the module docstring).

    ``random_flip`` (the paper flips training pairs) draws from a generator
    seeded by ``(seed, epoch, index)``; see :meth:`set_epoch`.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", *, image_size: int = 64,
                 crop: int | None = 170, min_depth: float = 0.9, max_depth: float = 1.1,
                 random_flip: bool = False, seed: int = 0, synface_dir: str | os.PathLike | None = None):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if crop is not None and (not isinstance(crop, int) or crop <= 0):
            raise ValueError(f"crop must be a positive int or None, got {crop!r}")
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
        self.dir = Path(synface_dir) if synface_dir is not None else default_synface_dir(root)
        self.pairs, self.unpaired = paired_files(self.dir / split)
        if not self.pairs:
            raise ValueError(f"no image/depth pairs under {self.dir / split}")
        self.split, self.image_size, self.crop = split, image_size, crop
        self.min_depth, self.max_depth = min_depth, max_depth
        self.random_flip, self.seed, self.epoch = random_flip, seed, 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _load(self, path: Path) -> torch.Tensor:
        arr = _read_rgb(path)
        if self.crop is not None:
            arr = np.ascontiguousarray(centre_crop(arr, self.crop))
        return resize_rgb(arr, self.image_size)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image_path, depth_path = self.pairs[index]
        x = self._load(depth_path)[:1]
        sample = {
            "image": self._load(image_path),
            "depth": (1 - x) * self.max_depth + x * self.min_depth,
            "category": "face", "index": index,
            "rel_path": str(image_path.relative_to(self.dir)), "flipped": False,
        }
        if self.random_flip and np.random.default_rng([self.seed, self.epoch, index]).random() < 0.5:
            sample = hflip_sample(sample)
        return sample
