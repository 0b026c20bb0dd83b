"""Viewpoint from an image: azimuth in 24 circular bins, elevation in 12, soft two-bin labels, KL loss.

Follows SemanticTransfer (``models/viewpoint.py``: a 24 + 12 output head with
``log_softmax`` and ``KLDivLoss``; ``demo.py``: ``real2prob`` / ``prob2real``):

- **Azimuth** a in [0, 2 pi), 24 bins of width w = 2 pi / 24 whose centres are
  (i + 1/2) w. The label puts weight on the two centres around a, linearly (so an
  angle at a centre is one-hot), and bin 23 wraps to bin 0: an angle just below 2 pi
  or just above 0 (w/2 from a centre) shares its weight between bins 23 and 0.
  Decoding is the direction of the probability-weighted sum of the centres' unit vectors.
- **Elevation** e in [0, pi] (SemanticTransfer's polar angle; here e = elevation + pi/2
  with our elevation in [-pi/2, pi/2]), 12 *points* i pi / 11, not circular. Decoding
  is the expectation.

The angles are ``csmlab.geometry.matrix_to_azel``'s: azimuth in (-pi, pi] maps to
[0, 2 pi) by ``remainder``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

N_AZIMUTH, N_ELEVATION = 24, 12


def _check_angles(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or not torch.isfinite(x).all():
        raise ValueError(f"{name} must be a finite float tensor (radians), got "
                         f"{x if not isinstance(x, torch.Tensor) else f'dtype {x.dtype} with non-finite values'}")
    return x


def soft_bins(angle: torch.Tensor, num_bins: int, max_val: float, circular: bool) -> torch.Tensor:
    """[...] angles -> [..., num_bins] two-bin soft labels that sum to 1 (``real2prob``)."""
    _check_angles("angle", angle)
    if circular:
        width = max_val / num_bins
        pos = torch.remainder(torch.remainder(angle, max_val) - width / 2, max_val) / width  # [0, num_bins)
        low = pos.floor().long().clamp(0, num_bins - 1)
        high = (low + 1) % num_bins
    else:
        if (angle < 0).any() or (angle > max_val).any():
            raise ValueError(f"a non-circular angle must be in [0, {max_val:.4f}], got "
                             f"[{float(angle.min()):.4f}, {float(angle.max()):.4f}]")
        pos = angle / (max_val / (num_bins - 1))
        low = pos.floor().long().clamp(0, num_bins - 2)
        high = low + 1
    frac = (pos - low.to(pos.dtype)).clamp(0, 1)
    out = torch.zeros(angle.shape + (num_bins,), dtype=angle.dtype, device=angle.device)
    out.scatter_add_(-1, low[..., None], (1 - frac)[..., None])
    out.scatter_add_(-1, high[..., None], frac[..., None])
    return out


def decode_bins(prob: torch.Tensor, max_val: float, circular: bool) -> torch.Tensor:
    """[..., num_bins] probabilities -> [...] angles (``prob2real``)."""
    n = prob.shape[-1]
    if circular:
        centres = (torch.arange(n, dtype=prob.dtype, device=prob.device) + 0.5) * (max_val / n)
        ang = torch.atan2((prob * centres.sin()).sum(-1), (prob * centres.cos()).sum(-1))
        return torch.remainder(ang, max_val)
    return (prob * torch.arange(n, dtype=prob.dtype, device=prob.device)).sum(-1) * (max_val / (n - 1))


def viewpoint_labels(azimuth: torch.Tensor, elevation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our (azimuth, elevation) radians -> (azimuth labels [...,24], elevation labels [...,12])."""
    _check_angles("elevation", elevation)
    if (elevation.abs() > math.pi / 2 + 1e-6).any():
        raise ValueError(f"elevation must be in [-pi/2, pi/2], got max |e| = {float(elevation.abs().max()):.4f}")
    return (soft_bins(azimuth, N_AZIMUTH, 2 * math.pi, True),
            soft_bins((elevation + math.pi / 2).clamp(0, math.pi), N_ELEVATION, math.pi, False))


def decode_viewpoint(az_logits: torch.Tensor, el_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits -> (azimuth in (-pi, pi], elevation in [-pi/2, pi/2]) in our convention."""
    az = decode_bins(az_logits.softmax(-1), 2 * math.pi, True)
    az = torch.where(az > math.pi, az - 2 * math.pi, az)
    return az, decode_bins(el_logits.softmax(-1), math.pi, False) - math.pi / 2


def azimuth_bin_distance(pred: torch.Tensor, true: torch.Tensor, num_bins: int = N_AZIMUTH) -> torch.Tensor:
    """Circular distance, in bins, between the azimuth bins of two angle tensors."""
    width = 2 * math.pi / num_bins
    a, b = (torch.floor(torch.remainder(x, 2 * math.pi) / width).long() % num_bins for x in (pred, true))
    d = (a - b).abs()
    return torch.minimum(d, num_bins - d)


def twin_azimuths(azimuth: torch.Tensor) -> dict:
    """The azimuths whose views a bilaterally symmetric object confuses with ``azimuth`` (radians).

    With the mirror M = diag(-1, 1, 1) the bird is M-symmetric, so the view from azimuth -a is
    the mirror image of the view from a (``"mirror"``: told apart by which way the head points),
    and the view from the opposite direction -M d, i.e. azimuth pi - a at elevation -e, has the
    *same silhouette* as the view from a (``"silhouette"``: front and back three-quarter views,
    told apart only by the texture of head and tail). Diagnostics only; the score is on a itself.
    """
    _check_angles("azimuth", azimuth)
    return {"mirror": -azimuth, "silhouette": math.pi - azimuth}


def viewpoint_loss(az_logits, el_logits, azimuth, elevation) -> dict:
    """KL(label || prediction) per head, averaged over the batch (``KLDivLoss`` on ``log_softmax``)."""
    az_t, el_t = viewpoint_labels(azimuth, elevation)
    kl = lambda logits, t: F.kl_div(F.log_softmax(logits, -1), t, reduction="batchmean")  # noqa: E731
    return {"azimuth": kl(az_logits, az_t), "elevation": kl(el_logits, el_t)}


class ViewpointNet(nn.Module):
    """A small CNN (stride-2 conv blocks) with SemanticTransfer's FC head 256-128-(24+12)."""

    def __init__(self, base: int = 16, blocks: int = 4, in_channels: int = 3, downsample: int = 1):
        super().__init__()
        self.downsample = int(downsample)  # average-pool the input first (CPU presets read 32 px of 64 px images)
        layers, c = [], in_channels
        for i in range(blocks):
            o = base * 2 ** i
            layers += [nn.Conv2d(c, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                       nn.Conv2d(o, o, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
            c = o
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.decoder_azimuth_elevation = nn.Sequential(
            nn.Linear(16 * c, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
            nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
            nn.Linear(128, N_AZIMUTH + N_ELEVATION))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            raise ValueError(f"image must be [B,C,H,W], got "
                             f"{list(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
        if self.downsample > 1:
            image = F.avg_pool2d(image, self.downsample)
        out = self.decoder_azimuth_elevation(self.encoder(image))
        return out[:, :N_AZIMUTH], out[:, N_AZIMUTH:]
