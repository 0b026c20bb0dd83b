"""Image grids with overlays (matplotlib).

Every image is drawn with ``extent=(0, W, H, 0)``: the axes are in pixel
coordinates (x right, y down) and pixel (row i, column j) covers
[j, j+1] x [i, i+1], so its centre is at (j + 0.5, i + 0.5) -- the keypoint
convention of docs/design.md, section 2. Keypoints and arrows are therefore plotted
exactly at their stored pixel coordinates, with no half-pixel fix-ups.

Accepted image forms: torch tensors ``[H,W]`` or channel-first ``[C,H,W]``
(C = 1, 2, 3 or 4; two channels such as UV maps are shown as red/green), and
numpy arrays ``[H,W]`` or channel-last ``[H,W,3|4]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def to_numpy_image(image) -> np.ndarray:
    """A tensor/array image -> float numpy ``[H,W]`` (scalar) or ``[H,W,3|4]`` (colour)."""
    if isinstance(image, torch.Tensor):
        x = image.detach().to("cpu", torch.float32)
        if x.dim() == 3:
            if x.shape[0] not in (1, 2, 3, 4):
                raise ValueError(f"image tensor must be [H,W] or [C,H,W] with C in 1..4, got {list(x.shape)}")
            if x.shape[0] == 2:  # e.g. UV: show u as red, v as green
                x = torch.cat([x, torch.zeros_like(x[:1])], dim=0)
            x = x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)
        elif x.dim() != 2:
            raise ValueError(f"image tensor must be [H,W] or [C,H,W], got {list(x.shape)}")
        return x.numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
            return image.astype(np.float32, copy=False)
        if image.ndim == 3 and image.shape[-1] == 1:
            return image[..., 0].astype(np.float32, copy=False)
        raise ValueError(f"image array must be [H,W] or [H,W,3|4], got shape {image.shape}")
    raise ValueError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")


def _to_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float32, copy=False)
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _as_2d(x, name: str) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name} must be [H,W] or [1,H,W], got shape {a.shape}")
    return a


def show_image(ax, image, cmap: str = "gray", vmin=None, vmax=None, colorbar: bool = False, title=None):
    """Draw one image on ``ax`` in pixel coordinates; returns the AxesImage.

    Colour images are clipped to [0, 1] for display only (matplotlib would warn and clip anyway).
    """
    img = to_numpy_image(image)
    H, W = img.shape[:2]
    if img.ndim == 3:
        img = np.clip(img, 0.0, 1.0)
    artist = ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=vmin, vmax=vmax,
                       extent=(0, W, H, 0), interpolation="nearest")
    if colorbar and img.ndim == 2:
        ax.figure.colorbar(artist, ax=ax, fraction=0.046, pad=0.04)
    if title is not None:
        ax.set_title(title, fontsize=9)
    return artist


def overlay_mask(ax, mask, color=(1.0, 0.2, 0.2), alpha: float = 0.4):
    """Tint the pixels where ``mask`` > 0.5 (soft masks are shown with proportional opacity)."""
    m = _as_2d(mask, "mask")
    H, W = m.shape
    rgba = np.zeros((H, W, 4), np.float32)
    rgba[..., :3] = np.asarray(color, np.float32)[:3]
    rgba[..., 3] = np.clip(m, 0.0, 1.0) * alpha
    return ax.imshow(rgba, extent=(0, W, H, 0), interpolation="nearest")


def overlay_keypoints(ax, keypoints, names: Sequence[str] | None = None, show_invisible: bool = False,
                      size: float = 25.0, fontsize: float = 6.0, cmap: str = "tab20"):
    """Plot ``[K,2]`` or ``[K,3]`` keypoints (pixels, x right, y down; third column = visibility).

    Each keypoint index keeps its colour across images, so correspondences are easy to follow.
    Invisible keypoints are skipped unless ``show_invisible`` (then drawn as hollow circles).
    """
    import matplotlib

    kp = _to_numpy(keypoints, "keypoints")
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be [K,2] or [K,3], got shape {kp.shape}")
    if names is not None and len(names) != kp.shape[0]:
        raise ValueError(f"names must have one entry per keypoint ({kp.shape[0]}), got {len(names)}")
    visible = kp[:, 2] > 0.5 if kp.shape[1] == 3 else np.ones(kp.shape[0], bool)
    colours = matplotlib.colormaps[cmap](np.arange(kp.shape[0]) % 20)
    for k in range(kp.shape[0]):
        if not visible[k] and not show_invisible:
            continue
        x, y = kp[k, 0], kp[k, 1]
        face = colours[k] if visible[k] else "none"
        ax.scatter([x], [y], s=size, c=[face] if visible[k] else "none", edgecolors=[colours[k]],
                   linewidths=1.0, zorder=3)
        if names is not None:
            ax.annotate(names[k], (x, y), xytext=(3, 3), textcoords="offset points", fontsize=fontsize,
                        color=colours[k], zorder=4)


def overlay_scalar_map(ax, values, mask=None, cmap: str = "viridis", alpha: float = 1.0, vmin=None, vmax=None,
                       colorbar: bool = True):
    """Draw a colour-mapped ``[H,W]`` map; pixels where ``mask`` <= 0.5 or the value is NaN stay see-through."""
    v = _as_2d(values, "values").copy()
    if mask is not None:
        m = _as_2d(mask, "mask")
        if m.shape != v.shape:
            raise ValueError(f"mask must match values' shape {v.shape}, got {m.shape}")
        v[m <= 0.5] = np.nan
    H, W = v.shape
    artist = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax,
                       extent=(0, W, H, 0), interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(artist, ax=ax, fraction=0.046, pad=0.04)
    return artist


def overlay_vector_field(ax, field, step: int = 4, mask=None, color="white", max_length: float | None = None):
    """Arrows for a dense ``[2,H,W]`` field (dx right, dy down, in pixels), one per ``step`` pixels.

    Arrows are scaled so the longest one is ``max_length`` pixels (default ``step``): only
    directions and relative sizes are meaningful. Zero vectors draw nothing.
    """
    f = _to_numpy(field, "field")
    if f.ndim != 3 or f.shape[0] != 2:
        raise ValueError(f"field must be [2,H,W] (dx, dy), got shape {f.shape}")
    if not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be a positive int, got {step!r}")
    H, W = f.shape[1:]
    rows = np.arange(step // 2, H, step)
    cols = np.arange(step // 2, W, step)
    jj, ii = np.meshgrid(cols, rows)
    dx, dy = f[0][ii, jj], f[1][ii, jj]
    keep = (dx != 0) | (dy != 0)
    if mask is not None:
        keep &= _as_2d(mask, "mask")[ii, jj] > 0.5
    return overlay_arrows(ax, np.stack([jj[keep] + 0.5, ii[keep] + 0.5], -1), np.stack([dx[keep], dy[keep]], -1),
                          color=color, max_length=step if max_length is None else max_length)


def overlay_arrows(ax, points, vectors, color="white", max_length: float = 8.0):
    """Arrows at ``[N,2]`` pixel positions along ``[N,2]`` vectors (x right, y down), longest = max_length px."""
    p, d = _to_numpy(points, "points"), _to_numpy(vectors, "vectors")
    if p.ndim != 2 or p.shape[1] != 2 or d.shape != p.shape:
        raise ValueError(f"points and vectors must both be [N,2], got {p.shape} and {d.shape}")
    if p.shape[0] == 0:
        return None
    longest = float(np.sqrt((d ** 2).sum(-1)).max())
    scale = longest / max_length if longest > 0 else 1.0
    return ax.quiver(p[:, 0], p[:, 1], d[:, 0], d[:, 1], color=color, angles="xy", scale_units="xy", scale=scale,
                     width=0.006, zorder=3)


def _per_image(value, n: int, name: str) -> list:
    """None -> [None]*n; a batch tensor [B,...] or a sequence of length n -> list of n items."""
    if value is None:
        return [None] * n
    if isinstance(value, (torch.Tensor, np.ndarray)) or not isinstance(value, Sequence):
        if len(value) != n:
            raise ValueError(f"{name} must have one entry per image ({n}), got {len(value)}")
        return [value[i] for i in range(n)]
    if len(value) != n:
        raise ValueError(f"{name} must have one entry per image ({n}), got {len(value)}")
    return list(value)


def image_grid(images, titles: Sequence[str] | None = None, ncols: int | None = None, *,
               masks=None, mask_color=(1.0, 0.2, 0.2), mask_alpha: float = 0.4,
               keypoints=None, keypoint_names: Sequence[str] | None = None,
               scalars=None, scalar_cmap: str = "viridis", scalar_alpha: float = 1.0,
               vectors=None, vector_step: int = 4, vector_color="white",
               cmap: str = "gray", vmin=None, vmax=None, colorbar: bool = False,
               size: float = 2.4, suptitle: str | None = None, axis_off: bool = True):
    """Draw images in a grid, each with optional overlays; returns the matplotlib Figure.

    images: a batch tensor ``[B,C,H,W]`` / ``[B,H,W]`` or a sequence of single images.
    The overlay arguments take one entry per image (a sequence, or a batch tensor), and an
    entry may be None:

    - masks: ``[1,H,W]`` / ``[H,W]`` tinted with ``mask_color``.
    - keypoints: ``[K,2|3]`` pixels, labelled with ``keypoint_names`` (shared by all images).
    - scalars: ``[1,H,W]`` maps drawn with ``scalar_cmap`` (NaN pixels see-through) and a colour bar.
    - vectors: a dense ``[2,H,W]`` field, or a ``(points [N,2], vectors [N,2])`` pair, as arrows.

    Single-channel images use ``cmap``/``vmin``/``vmax`` (and a colour bar with ``colorbar``).
    """
    import matplotlib.pyplot as plt

    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim in (3, 4) and not (
            isinstance(images, np.ndarray) and images.ndim == 3):
        items = [images[i] for i in range(images.shape[0])]
    elif isinstance(images, Sequence) and len(images) > 0:
        items = list(images)
    else:
        raise ValueError("images must be a [B,C,H,W] or [B,H,W] tensor or a non-empty sequence of images, got "
                         f"{type(images).__name__}{list(images.shape) if hasattr(images, 'shape') else ''}")
    n = len(items)
    titles = _per_image(titles, n, "titles")
    masks, keypoints = _per_image(masks, n, "masks"), _per_image(keypoints, n, "keypoints")
    scalars, vectors = _per_image(scalars, n, "scalars"), _per_image(vectors, n, "vectors")
    ncols = min(n, 6) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        show_image(ax, items[k], cmap=cmap, vmin=vmin, vmax=vmax, colorbar=colorbar, title=titles[k])
        if masks[k] is not None:
            overlay_mask(ax, masks[k], color=mask_color, alpha=mask_alpha)
        if scalars[k] is not None:
            overlay_scalar_map(ax, scalars[k], cmap=scalar_cmap, alpha=scalar_alpha)
        if vectors[k] is not None:
            if isinstance(vectors[k], tuple):
                overlay_arrows(ax, *vectors[k], color=vector_color, max_length=2.0 * vector_step)
            else:
                overlay_vector_field(ax, vectors[k], step=vector_step, color=vector_color)
        if keypoints[k] is not None:
            overlay_keypoints(ax, keypoints[k], names=keypoint_names)
        H, W = to_numpy_image(items[k]).shape[:2]
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        if axis_off:
            ax.set_xticks([])
            ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
