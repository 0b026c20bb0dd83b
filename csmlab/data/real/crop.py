"""Image helpers shared by the real-dataset readers: decoding, CMR's square crop, flips.

Coordinates follow docs/design.md, section 2: pixels are (x right, y down) with the
centre of pixel (row i, column j) at (j + 0.5, i + 0.5), so a pixel's left edge
is at x = j. MATLAB annotations (CUB via CMR, PASCAL3D+) give 1-based pixel
indices, whose centres are therefore at ``v - 0.5`` here.

CMR's crop (``cmr/utils/image.py``), reproduced in index space exactly:
``peturb_bbox`` pads the 0-based inclusive box by ``padding_frac`` of its width
and height on each side (plus a uniform jitter of up to ``jitter_frac``, drawn
per side, in training), ``square_bbox`` rounds the corners and grows the shorter
side symmetrically into a square, and ``crop`` fills what falls outside the
image (white for images, 0 for masks). The square is then resized to the
requested size. Two deliberate differences, both sub-pixel:

- keypoints map with the exact continuous transform ``(x - x0) * scale`` on
  pixel edges, where CMR scaled 0-based centre coordinates (off by
  ``(scale - 1) / 2`` pixels);
- resizing uses PIL's bilinear filter, which low-pass filters when shrinking,
  where CMR used OpenCV's ``INTER_LINEAR``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """[H,W,3] uint8, top row first; greyscale and RGBA files are converted (CUB has some)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def round_half_away(x: float) -> int:
    """Round halves away from zero, as Python 2's ``round`` (which CMR ran on) did."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def matlab_box_to_indices(box) -> tuple[float, float, float, float]:
    """MATLAB 1-based inclusive (x1, y1, x2, y2) -> 0-based inclusive pixel indices."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 >= x1 and y2 >= y1):
        raise ValueError(f"box must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1, got {tuple(box)}")
    return x1 - 1, y1 - 1, x2 - 1, y2 - 1


def square_crop_window(box_idx, padding_frac: float = 0.05, jitter_frac: float = 0.0,
                       rng: np.random.Generator | None = None) -> tuple[int, int, int]:
    """CMR's ``peturb_bbox`` + ``square_bbox``: return the square window (x0, y0, size) in pixels.

    ``box_idx`` is a 0-based inclusive (x1, y1, x2, y2) box; the window covers
    columns x0 .. x0+size-1 and rows y0 .. y0+size-1 and may leave the image.
    """
    if padding_frac < 0 or jitter_frac < 0:
        raise ValueError(f"padding_frac and jitter_frac must be >= 0, got {padding_frac}, {jitter_frac}")
    if jitter_frac > 0 and rng is None:
        raise ValueError("rng must be a numpy Generator when jitter_frac > 0")
    x1, y1, x2, y2 = (float(v) for v in box_idx)
    w, h = x2 - x1 + 1, y2 - y1 + 1

    def jitter() -> float:
        return (1 - 2 * rng.random()) * jitter_frac if jitter_frac > 0 else 0.0

    x1 -= padding_frac * w + jitter() * w
    y1 -= padding_frac * h + jitter() * h
    x2 += padding_frac * w + jitter() * w
    y2 += padding_frac * h + jitter() * h
    x1, y1, x2, y2 = (round_half_away(v) for v in (x1, y1, x2, y2))
    bw, bh = x2 - x1 + 1, y2 - y1 + 1
    size = max(bw, bh)
    x0 = x1 - round_half_away((size - bw) / 2)
    y0 = y1 - round_half_away((size - bh) / 2)
    return x0, y0, size


def crop_array(arr: np.ndarray, x0: int, y0: int, size: int, fill) -> np.ndarray:
    """The ``size`` x ``size`` window at (x0, y0) of an [H,W] or [H,W,C] array, ``fill`` outside it."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    H, W = arr.shape[:2]
    out = np.full((size, size) + arr.shape[2:], fill, dtype=arr.dtype)
    xs, xe = max(0, x0), min(W, x0 + size)
    ys, ye = max(0, y0), min(H, y0 + size)
    if xs < xe and ys < ye:
        out[ys - y0:ye - y0, xs - x0:xe - x0] = arr[ys:ye, xs:xe]
    return out


def resize_rgb(arr: np.ndarray, size: int) -> torch.Tensor:
    """[H,W,3] uint8 -> [3,size,size] float in [0,1] (PIL bilinear)."""
    if arr.shape[:2] != (size, size):
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def resize_gray(arr: np.ndarray, size: int) -> torch.Tensor:
    """[H,W] float -> [1,size,size] float (PIL bilinear on 32-bit floats: soft mask edges)."""
    arr = arr.astype(np.float32)
    if arr.shape != (size, size):
        arr = np.array(Image.fromarray(arr, mode="F").resize((size, size), Image.BILINEAR))
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


def matlab_keypoints_to_crop(parts: np.ndarray, x0: int, y0: int, scale: float) -> torch.Tensor:
    """[K,3] MATLAB (x, y, visible) -> [K,3] crop pixels (centres at +0.5); invisible rows are 0."""
    parts = np.asarray(parts, dtype=np.float64)
    if parts.ndim != 2 or parts.shape[1] != 3:
        raise ValueError(f"parts must be [K,3] (x, y, visible), got shape {list(parts.shape)}")
    vis = parts[:, 2] > 0
    kp = np.zeros_like(parts)
    kp[vis, 0] = (parts[vis, 0] - 0.5 - x0) * scale
    kp[vis, 1] = (parts[vis, 1] - 0.5 - y0) * scale
    kp[vis, 2] = 1.0
    return torch.from_numpy(kp.astype(np.float32))


def matlab_box_to_crop(box, x0: int, y0: int, scale: float) -> torch.Tensor:
    """MATLAB 1-based inclusive box -> [4] (x_min, y_min, x_max, y_max) pixel *edges* in the crop."""
    x1, y1, x2, y2 = matlab_box_to_indices(box)
    return torch.tensor([(x1 - x0) * scale, (y1 - y0) * scale, (x2 + 1 - x0) * scale, (y2 + 1 - y0) * scale],
                        dtype=torch.float32)


def hflip_keypoints(kp: torch.Tensor, width: int, perm) -> torch.Tensor:
    """Mirror [K,3] keypoints in an image of ``width`` and swap left/right names with ``perm``.

    Row i of the result is the mirror of row ``perm[i]`` (the part called i's
    mirror partner); invisible rows stay all zero.
    """
    perm = torch.as_tensor(perm, dtype=torch.long)
    if kp.dim() != 2 or kp.shape[1] != 3 or perm.shape != (kp.shape[0],):
        raise ValueError(f"kp must be [K,3] and perm [K], got {list(kp.shape)} and {list(perm.shape)}")
    out = kp.clone()
    vis = out[:, 2] > 0
    out[vis, 0] = width - out[vis, 0]
    return out[perm]


def hflip_camera(camera: dict) -> dict:
    """The camera of the mirrored image of a mirror-symmetric object (mirror plane x = 0).

    With P = diag(-1, 1, 1): R' = P R P (quaternion (w, x, -y, -z)) and t' = (-t_x, t_y),
    since mirroring the image negates NDC x.
    """
    q, t = camera["quat"], camera["trans"]
    return {"scale": camera["scale"].clone(),
            "quat": q * torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=q.dtype),
            "trans": t * torch.tensor([-1.0, 1.0], dtype=t.dtype)}


def hflip_sample(sample: dict, perm=None) -> dict:
    """A mirrored copy of a sample: images, keypoints (names swapped by ``perm``), camera, bbox."""
    out = dict(sample)
    for key in ("image", "mask", "depth"):
        if key in out:
            out[key] = out[key].flip(-1)
    width = next(out[k].shape[-1] for k in ("image", "mask", "depth") if k in out)
    if "keypoints" in out:
        if perm is None:
            raise ValueError("perm is needed to flip a sample with keypoints")
        out["keypoints"] = hflip_keypoints(out["keypoints"], width, perm)
    if "camera" in out:
        out["camera"] = hflip_camera(out["camera"])
    if "bbox" in out:
        b = out["bbox"]
        out["bbox"] = torch.stack([width - b[2], b[1], width - b[0], b[3]])
    out["flipped"] = not sample.get("flipped", False)
    return out
