"""CelebA faces with Unsup3D's crop, at 64 x 64: what Unsup3D trains on.

Unsup3D (elliottwu/unsup3d) ships no cropped CelebA: its README says to
download the in-the-wild images (``img_celeba``) and run ``data/celeba_crop.py``
with ``data/celeba_crop_bbox.txt``. That script reads each line
``<file> <split> <x0> <y0> <w> <h>`` (split 0/1/2 = train/val/test), pads the
image by ``h`` rows above and below and ``w`` columns left and right with
replicated borders (``cv2.BORDER_REPLICATE``), cuts the ``w x h`` window at
(x0, y0), resizes it to 128 x 128 and writes ``celeba_cropped/<split>/<file>``;
training (``experiments/train_celeba.yml``: ``image_size: 64``, no ``crop``)
then resizes those to 64 x 64.

:class:`CelebaDataset` does the same on the fly from ``<data_root>/celeba``
(``source="wild"``: ``img_celeba/`` + ``celeba_crop_bbox.txt``), or reads a
``celeba_cropped/<split>/`` folder written by the authors' script
(``source="cropped"``). Differences: PIL's bilinear filter instead of OpenCV's
``INTER_LINEAR`` for the 128 resize, and no JPEG re-encoding in between.

Samples: ``image`` [3,S,S] in [0,1], ``category`` "face", ``index``,
``filename``, ``flipped``. CelebA has **no depth, mask, keypoints or camera**
here (its five landmarks are not used by Unsup3D and are not read): Unsup3D's
depth evaluation runs on synthetic faces (:mod:`.synface`), not on CelebA.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .crop import hflip_sample, load_rgb, resize_rgb
from .layout_wave2 import celeba_dir

CELEBA_SPLITS = {"train": "0", "val": "1", "test": "2"}
CROP_SIZE = 128  # celeba_crop.py's out_im_size


def read_crop_boxes(path: str | os.PathLike) -> list[tuple[str, str, int, int, int, int]]:
    """``celeba_crop_bbox.txt`` -> [(file, split code, x0, y0, w, h)]."""
    rows = []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f:
            if len(f) != 6:
                raise ValueError(f"{path}: line {line!r} must be '<file> <split> <x0> <y0> <w> <h>'")
            rows.append((f[0], f[1], *(int(float(v)) for v in f[2:])))
    return rows


def replicate_crop(img: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """celeba_crop.py's window: pad by (h, w) with replicated borders, cut w x h at (x0, y0) of the original."""
    H, W = img.shape[:2]
    if w <= 0 or h <= 0 or not (-w <= x0 and x0 + w <= W + w and -h <= y0 and y0 + h <= H + h):
        raise ValueError(f"crop box (x0, y0, w, h) = {(x0, y0, w, h)} must lie inside the image padded by (h, w); "
                         f"image is {W}x{H}")
    rows = np.clip(np.arange(y0, y0 + h), 0, H - 1)
    cols = np.clip(np.arange(x0, x0 + w), 0, W - 1)
    return img[rows][:, cols]


class CelebaDataset(Dataset):
    """CelebA faces cropped as Unsup3D does (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", *, image_size: int = 64,
                 source: str = "wild", random_flip: bool = False, seed: int = 0,
                 celeba: str | os.PathLike | None = None):
        if split not in CELEBA_SPLITS:
            raise ValueError(f"split must be one of {tuple(CELEBA_SPLITS)}, got {split!r}")
        if source not in ("wild", "cropped"):
            raise ValueError(f"source must be 'wild' or 'cropped', got {source!r}")
        if not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        self.dir = Path(celeba) if celeba is not None else celeba_dir(root)
        self.split, self.source, self.image_size = split, source, image_size
        self.random_flip, self.seed, self.epoch = random_flip, seed, 0
        if source == "wild":
            boxes = self.dir / "celeba_crop_bbox.txt"
            if not boxes.is_file() or not (self.dir / "img_celeba").is_dir():
                raise ValueError(f"need {boxes} and {self.dir / 'img_celeba'}; run data_scripts/prepare_celeba.py")
            self.rows = [r for r in read_crop_boxes(boxes) if r[1] == CELEBA_SPLITS[split]]
        else:
            folder = self.dir / "celeba_cropped" / split
            if not folder.is_dir():
                raise ValueError(f"no cropped CelebA folder at {folder} (written by Unsup3D's celeba_crop.py)")
            self.rows = [(p.name, CELEBA_SPLITS[split], 0, 0, 0, 0) for p in sorted(folder.iterdir())
                         if p.suffix.lower() in (".jpg", ".jpeg", ".png")]

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        name, _, x0, y0, w, h = self.rows[index]
        if self.source == "wild":
            face = replicate_crop(load_rgb(self.dir / "img_celeba" / name), x0, y0, w, h)
            face = (resize_rgb(np.ascontiguousarray(face), CROP_SIZE) * 255).round().to(torch.uint8)
            face = face.permute(1, 2, 0).numpy()  # the 128 x 128 crop as celeba_crop.py stores it (8-bit)
        else:
            face = load_rgb(self.dir / "celeba_cropped" / self.split / name)
        sample = {"image": resize_rgb(face, self.image_size), "category": "face", "index": index,
                  "filename": name, "flipped": False}
        if self.random_flip and np.random.default_rng([self.seed, self.epoch, index]).random() < 0.5:
            sample = hflip_sample(sample)
        return sample
