"""ImageNet input normalisation: the one place of this convention for every backbone here.

ResNet, VGG16 and DINOv2 were all trained on ``(x - mean) / std`` of [0, 1] RGB
with ImageNet's mean and std (torchvision's ``ImageClassification`` preset and
DINOv2's ``make_normalize_transform`` use the same numbers).
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(img: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Map an RGB batch [B,3,H,W] with values in ``value_range`` to ImageNet-normalised input."""
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3 or not img.is_floating_point():
        got = f"{list(img.shape)} {img.dtype}" if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"img must be a float [B,3,H,W] RGB tensor, got {got}")
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return ((img - lo) / (hi - lo) - mean) / std
