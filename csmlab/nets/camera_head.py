"""Multi-hypothesis scaled-orthographic camera head (CSM, ACSM) and its quaternion helpers.

Moved here from ``csmlab.methods.csm.network`` (which re-exports every name) so that CSM
and ACSM share it. ``CameraHead.features`` exposes the pooled encoder features, which
ACSM's part-transform head reads as well (ACSM predicts cameras and parts from one encoder).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from csmlab.geometry import quaternion_multiply

from .imagenet import imagenet_normalize
from .resnet import resnet18
from .unet import ConvBlock

CAMERA_ENCODERS = ("convs", "resnet18")


class ResNet18Trunk(nn.Module):
    """ResNet-18 up to layer4 (stride 32, 512 channels) on RGB in [0, 1], ImageNet-normalised inside.

    ``self.resnet`` keeps torchvision's names, so ``csmlab.nets.load_official(trunk.resnet, file)``
    loads the ImageNet checkpoint strictly (its ``fc`` is kept for that and left unused).
    """

    channels = 512

    def __init__(self):
        super().__init__()
        self.resnet = resnet18()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.resnet(imagenet_normalize(img))["s32"]


def _axis_quaternion(axis: int, angle: torch.Tensor) -> torch.Tensor:
    half = angle / 2
    parts = [torch.cos(half)] + [torch.sin(half) if i == axis else torch.zeros_like(half) for i in range(3)]
    return torch.stack(parts, -1)


def azel_to_quaternion(azimuth: torch.Tensor, elevation: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """The quaternion of ``azel_to_matrix`` (Rz(roll) Rx(elevation) Ry(-azimuth)), smooth in the angles."""
    q = quaternion_multiply(_axis_quaternion(0, elevation), _axis_quaternion(1, -azimuth))
    return quaternion_multiply(_axis_quaternion(2, roll), q)


def base_quaternions(n: int, elevation_deg: float = 0.0) -> torch.Tensor:
    """[n,4] rotations at azimuths 360 k / n degrees and a common elevation (the hypotheses' starting points)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    az = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return azel_to_quaternion(az, torch.full_like(az, math.radians(elevation_deg)), torch.zeros_like(az)).float()


def mirror_quaternion(q: torch.Tensor) -> torch.Tensor:
    """The camera rotation of the horizontally flipped image: ``M R M`` with ``M = diag(-1, 1, 1)``.

    Reflecting across the mirror plane x = 0 keeps the rotation angle and maps the
    axis (a rotation's axis is a pseudo-vector) to (a_x, -a_y, -a_z): (w,x,y,z) -> (w,x,-y,-z).
    """
    return q * torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)


class CameraHead(nn.Module):
    """Image -> K camera hypotheses: scale [B,K], quat [B,K,4], trans [B,K,2], logits and prob [B,K].

    Hypothesis k is an azimuth/elevation/roll camera (``csmlab.geometry.azel_to_matrix``)
    whose azimuth stays within ``azimuth_range`` of its base 360 k / K degrees, as in CSM
    (bounded offsets through tanh: the hypotheses keep covering the circle and cannot
    drift into upside-down poses). Elevation and roll are bounded by ``max_elevation_deg``
    and ``max_roll_deg``, scale is ``init_scale * exp(0.5 tanh(a))``, translation
    ``0.3 tanh(c)`` (NDC). The output layer starts at zero: every hypothesis starts at its
    base view, elevation ``elevation_deg``, with probability 1/K.
    """

    def __init__(self, n_hypotheses: int = 8, base: int = 16, n_down: int = 4, init_scale: float = 0.7,
                 elevation_deg: float = 0.0, max_elevation_deg: float = 40.0, max_roll_deg: float = 20.0,
                 encoder: str = "convs"):
        super().__init__()
        if n_hypotheses < 1 or init_scale <= 0:
            raise ValueError(f"need n_hypotheses >= 1 and init_scale > 0, got {n_hypotheses}, {init_scale}")
        if encoder not in CAMERA_ENCODERS:
            raise ValueError(f"encoder must be one of {CAMERA_ENCODERS}, got {encoder!r}")
        if encoder == "resnet18":   # CSM's choice; ImageNet weights are loaded by fit (cfg['encoder_weights'])
            self.encoder = ResNet18Trunk()
            feat = ResNet18Trunk.channels
        else:                       # ``base`` and ``n_down`` size this small encoder only
            widths = [base * 2 ** min(i, 3) for i in range(n_down + 1)]
            self.encoder = nn.Sequential(ConvBlock(3, widths[0], stride=2),
                                         *[ConvBlock(widths[i], widths[i + 1], stride=2) for i in range(n_down)])
            feat = widths[-1]
        self.mlp = nn.Sequential(nn.Linear(feat, 2 * feat), nn.ReLU(inplace=True))
        self.n = n_hypotheses
        self.out = nn.Linear(2 * feat, n_hypotheses * 7)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        base_azimuth = torch.arange(n_hypotheses, dtype=torch.float32) * (2 * math.pi / n_hypotheses)
        self.register_buffer("base_azimuth", base_azimuth)
        self.azimuth_range = min(math.pi, (2 / 3) * 2 * math.pi / n_hypotheses)   # 30 degrees either side for K = 8
        self.elevation0 = math.radians(elevation_deg)
        self.max_elevation = math.radians(max_elevation_deg)
        self.max_roll = math.radians(max_roll_deg)
        self.init_scale = float(init_scale)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """[B,C] globally pooled encoder features of [B,3,H,W] images."""
        return self.encoder(img).mean(dim=(2, 3))

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.from_features(self.features(img))

    def from_features(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The hypotheses from :meth:`features` (ACSM feeds the same features to its part head)."""
        out = self.out(self.mlp(h)).reshape(h.shape[0], self.n, 7)
        raw, logits = torch.tanh(out[..., :6]), out[..., 6]
        az = self.base_azimuth + self.azimuth_range * raw[..., 0]
        el = (self.elevation0 + self.max_elevation * raw[..., 1]).clamp(-math.pi / 2, math.pi / 2)
        roll = self.max_roll * raw[..., 2]
        quat = azel_to_quaternion(az, el, roll)
        return {"scale": self.init_scale * torch.exp(0.5 * raw[..., 3]), "quat": quat, "trans": 0.3 * raw[..., 4:6],
                "logits": logits, "prob": torch.softmax(logits, dim=-1), "azimuth": az, "elevation": el,
                "roll": roll}
