"""SPair-71k (Min et al. 2019): per-image samples and keypoint-annotated image pairs.

Official layout (``SPair-71k.tar.gz``; see :mod:`.layout_wave2`)::

    SPair-71k/JPEGImages/<category>/<imname>.jpg
    SPair-71k/ImageAnnotation/<category>/<imname>.json   one per image
    SPair-71k/Segmentation/<category>/<imname>.png       object mask (non-zero = object)
    SPair-71k/PairAnnotation/{trn,val,test}/<pair>.json  one per pair
    SPair-71k/Layout/large/{trn,val,test}.txt            pair names, "<id>-<src>-<trg>:<category>"

An image annotation holds ``filename``, ``category``, ``image_width``,
``image_height``, ``bndbox`` [x1, y1, x2, y2], ``kps`` (a dict from keypoint id
"0", "1", ... to [x, y], or null where the keypoint is not visible), ``azimuth_id``
(0..7, eight 45-degree azimuth bins), ``pose``, ``truncated``, ``occluded`` and
``difficult``. A pair annotation holds ``src_imname``, ``trg_imname``,
``category``, ``kps_ids`` (the keypoints visible in both, as ids), ``src_kps``,
``trg_kps``, ``src_bndbox``, ``trg_bndbox`` and the difficulty flags
``viewpoint_variation``, ``scale_variation``, ``truncation``, ``occlusion``.

Coordinates. SPair's keypoints and boxes are integer pixel positions counted
from 0; they are read as 0-based pixel indices (a keypoint at x is the centre
of column x, so x + 0.5 in csmlab's pixel frame, DESIGN section 3). This
reading is an assumption about the annotation tool: it is sub-pixel and does
not change PCK, whose threshold is a fraction of the box.

A sample is CMR's square crop around the padded box (:mod:`.crop`), resized to
``img_size``: ``image`` [3,S,S], ``mask`` [1,S,S], ``keypoints`` [K,3] (crop
pixels, visibility; invisible rows 0), ``category``, ``index``, ``bbox`` (pixel
edges in the crop), ``crop_box``, ``azimuth_id`` and ``imname``. SPair has no
camera, depth or keypoint names, hence no flip permutation (its devkit does not
list which keypoints are left/right); nothing of those is returned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .crop import (
    crop_array,
    load_rgb,
    matlab_box_to_crop,
    matlab_keypoints_to_crop,
    resize_gray,
    resize_rgb,
    square_crop_window,
)
from .layout_wave2 import spair_dir

SPAIR_CATEGORIES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "train", "tvmonitor")
SPAIR_SPLITS = ("trn", "val", "test")
AZIMUTH_BINS = 8


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"SPair annotation is missing: expected {path}")
    return json.loads(path.read_text())


def pair_names(d: Path, split: str, category: str | None = None) -> list[str]:
    """The pair names of ``split`` (Layout/large), optionally of one category, in file order."""
    if split not in SPAIR_SPLITS:
        raise ValueError(f"split must be one of {SPAIR_SPLITS}, got {split!r}")
    if category is not None and category not in SPAIR_CATEGORIES:
        raise ValueError(f"category must be one of {SPAIR_CATEGORIES} or None, got {category!r}")
    path = d / "Layout" / "large" / f"{split}.txt"
    if not path.is_file():
        raise ValueError(f"SPair's pair list is missing: expected {path}")
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return [n for n in names if category is None or n.rsplit(":", 1)[-1] == category]


def category_split(root: str | os.PathLike | None = None, split: str = "test",
                   spair: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """``{category: [pair names]}`` of ``split``: the per-category evaluation split."""
    d = Path(spair) if spair is not None else spair_dir(root)
    out: dict[str, list[str]] = {}
    for name in pair_names(d, split):
        out.setdefault(name.rsplit(":", 1)[-1], []).append(name)
    return out


def image_keypoints(anno: dict) -> np.ndarray:
    """[K,3] (x, y, visible) from an image annotation's ``kps`` dict, rows in id order; null -> 0."""
    kps = anno["kps"]
    ids = sorted(int(k) for k in kps)
    if ids != list(range(len(ids))):
        raise ValueError(f"kps ids of {anno.get('filename')} must be 0..K-1, got {ids}")
    out = np.zeros((len(ids), 3))
    for k in ids:
        xy = kps[str(k)]
        if xy is not None:
            out[k] = (float(xy[0]), float(xy[1]), 1.0)
    return out


class SpairImages(Dataset):
    """SPair-71k images of one category, one sample each (see the module docstring).

    ``images`` lists the image names to read (without .jpg); by default every
    annotated image of ``category``, sorted.
    """

    def __init__(self, root: str | os.PathLike | None = None, category: str = "aeroplane", *,
                 images: list[str] | None = None, img_size: int = 256, padding_frac: float = 0.05,
                 spair: str | os.PathLike | None = None):
        if category not in SPAIR_CATEGORIES:
            raise ValueError(f"category must be one of {SPAIR_CATEGORIES}, got {category!r}")
        if not isinstance(img_size, int) or img_size <= 0:
            raise ValueError(f"img_size must be a positive int, got {img_size!r}")
        self.dir = Path(spair) if spair is not None else spair_dir(root)
        anno_dir = self.dir / "ImageAnnotation" / category
        if not anno_dir.is_dir():
            raise ValueError(f"no SPair annotations for {category} in {anno_dir}; run data_scripts/prepare_spair.py")
        self.category, self.img_size, self.padding_frac = category, img_size, padding_frac
        self.names = sorted(p.stem for p in anno_dir.glob("*.json")) if images is None else list(images)
        self._index = {n: i for i, n in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, imname: str) -> int:
        """Position of ``imname`` (with or without .jpg) in this dataset."""
        key = imname[:-4] if imname.endswith(".jpg") else imname
        if key not in self._index:
            raise ValueError(f"imname {imname!r} is not among the {len(self)} {self.category} images")
        return self._index[key]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        name = self.names[index]
        anno = _read_json(self.dir / "ImageAnnotation" / self.category / f"{name}.json")
        img = load_rgb(self.dir / "JPEGImages" / self.category / f"{name}.jpg")
        box = tuple(float(v) for v in anno["bndbox"])
        x0, y0, size = square_crop_window(box, self.padding_frac)
        scale = self.img_size / size
        # 0-based pixel indices -> the 1-based convention of the shared crop helpers (one place for the +0.5).
        kp = image_keypoints(anno)
        kp[:, :2] += 1.0
        azimuth = int(anno["azimuth_id"])
        if not 0 <= azimuth < AZIMUTH_BINS:
            raise ValueError(f"azimuth_id of {name} must be in [0, {AZIMUTH_BINS}), got {azimuth}")
        sample = {"image": resize_rgb(crop_array(img, x0, y0, size, 255), self.img_size)}
        seg = self.dir / "Segmentation" / self.category / f"{name}.png"
        if seg.is_file():
            with Image.open(seg) as im:
                mask = (np.asarray(im) > 0).astype(np.float32)
            if mask.ndim == 3:
                mask = mask.max(-1)
            if mask.shape != img.shape[:2]:
                raise ValueError(f"the mask of {name} is {list(mask.shape)} but the image is {list(img.shape[:2])}")
            sample["mask"] = resize_gray(crop_array(mask, x0, y0, size, 0.0), self.img_size)
        sample.update({
            "keypoints": matlab_keypoints_to_crop(kp, x0, y0, scale),
            "category": self.category, "index": index,
            "bbox": matlab_box_to_crop(tuple(v + 1 for v in box), x0, y0, scale),
            "crop_box": torch.tensor([x0, y0, x0 + size, y0 + size], dtype=torch.float32),
            "azimuth_id": azimuth, "imname": name,
        })
        return sample


class SpairPairs(Dataset):
    """SPair-71k pairs of a split (``trn``, ``val``, ``test``), for PCK and KAP.

    Each item: ``source`` and ``target`` samples (:class:`SpairImages`), ``kps_ids``
    [M] long (the keypoints the pair annotates, visible in both), ``pair`` (its
    name), ``category`` and the pair's difficulty flags.
    """

    FLAGS = ("viewpoint_variation", "scale_variation", "truncation", "occlusion")

    def __init__(self, root: str | os.PathLike | None = None, split: str = "test", *,
                 category: str | None = None, img_size: int = 256, padding_frac: float = 0.05,
                 spair: str | os.PathLike | None = None):
        self.dir = Path(spair) if spair is not None else spair_dir(root)
        self.split = split
        self.pairs = pair_names(self.dir, split, category)
        self._images: dict[str, SpairImages] = {}
        self._kw = dict(img_size=img_size, padding_frac=padding_frac, spair=self.dir)

    def __len__(self) -> int:
        return len(self.pairs)

    def images(self, category: str) -> SpairImages:
        if category not in self._images:
            self._images[category] = SpairImages(category=category, **self._kw)
        return self._images[category]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        name = self.pairs[index]
        anno = _read_json(self.dir / "PairAnnotation" / self.split / f"{name}.json")
        imgs = self.images(anno["category"])
        src = imgs[imgs.index_of(anno["src_imname"])]
        trg = imgs[imgs.index_of(anno["trg_imname"])]
        ids = torch.tensor([int(i) for i in anno["kps_ids"]], dtype=torch.long)
        for side, s in (("source", src), ("target", trg)):
            if ids.numel() and not bool((s["keypoints"][ids, 2] > 0).all()):
                raise ValueError(f"pair {name} lists kps_ids {ids.tolist()} but the {side} image "
                                 f"{s['imname']} does not have them all visible")
        return {"source": src, "target": trg, "kps_ids": ids, "pair": name, "category": anno["category"],
                **{f: int(anno.get(f, 0)) for f in self.FLAGS}}
