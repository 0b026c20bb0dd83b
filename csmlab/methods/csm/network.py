"""CSM's networks, written here without torchvision.

The smoke and medium presets train everything from scratch. The full preset's
camera encoder is CSM's ImageNet ResNet-18 (``camera_encoder="resnet18"``, from
:mod:`csmlab.nets`; CSM's ``icn_net.py`` feeds its camera predictor from
``ResNetConv``, torchvision's pretrained ``resnet18`` up to layer4, while its
U-Net starts from scratch, as here).

- :class:`UNet` maps an image to a 3-vector per pixel (normalised onto the unit
  sphere, then converted to sphere UV and looked up on the template) and a mask logit.
- :class:`CameraHead` predicts K scaled-orthographic camera hypotheses (s, q, t)
  with a probability each. Hypothesis k starts at a fixed base rotation whose
  azimuth is 360 k / K degrees, so at initialisation the hypotheses cover every
  side of the object and training only has to refine them.
- :class:`CSMNet` puts them together with the :class:`TemplateUV` lookup.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from csmlab.geometry import quaternion_multiply, sphere_to_uv
from csmlab.nets import imagenet_normalize, resnet18

from .uvmap import TemplateUV


def _groups(channels: int) -> int:
    return max(1, min(8, channels // 4))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(_groups(channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be 'group' or 'batch', got {kind!r}")


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each with a normalisation (GroupNorm by default) and ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "group"):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), _norm(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _norm(norm, c_out),
            nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Encoder-decoder with skip connections: [B,3,H,W] -> [B,out,H,W]. H and W must divide by 2**depth."""

    def __init__(self, in_channels: int = 3, out_channels: int = 4, base: int = 16, depth: int = 4,
                 norm: str = "group", coords: bool = False, stem_stride: int = 1):
        super().__init__()
        if depth < 1 or base < 4 or stem_stride not in (1, 2, 4):
            raise ValueError(f"need depth >= 1, base >= 4, stem_stride in (1, 2, 4); got depth={depth}, base={base}, "
                             f"stem_stride={stem_stride}")
        widths = [base * 2 ** min(i, 3) for i in range(depth + 1)]
        self.depth = depth
        self.coords = coords   # CoordConv: x, y of every pixel as two extra input channels
        # stem_stride > 1 computes at a coarser grid and upsamples the output: a 64^2 model at 32^2 cost.
        self.stem = stem_stride
        self.inc = ConvBlock(in_channels + 2 * coords, widths[0], stride=stem_stride, norm=norm)
        self.down = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], stride=2, norm=norm) for i in range(depth))
        self.up = nn.ModuleList(ConvBlock(widths[i + 1] + widths[i], widths[i], norm=norm)
                                for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.stem * 2 ** self.depth
        if x.dim() != 4 or x.shape[-1] % k or x.shape[-2] % k:
            raise ValueError(f"x must be [B,C,H,W] with H and W divisible by {k}, got {list(x.shape)}")
        size = x.shape[-2:]
        if self.coords:
            B, _, H, W = x.shape
            ys = torch.linspace(-1, 1, H, device=x.device, dtype=x.dtype)
            xs = torch.linspace(-1, 1, W, device=x.device, dtype=x.dtype)
            grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), 0)[None].expand(B, 2, H, W)
            x = torch.cat([x, grid], 1)
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], 1))
        y = self.head(y)
        return y if self.stem == 1 else F.interpolate(y, size=size, mode="bilinear", align_corners=False)


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

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.encoder(img).mean(dim=(2, 3))
        out = self.out(self.mlp(h)).reshape(img.shape[0], self.n, 7)
        raw, logits = torch.tanh(out[..., :6]), out[..., 6]
        az = self.base_azimuth + self.azimuth_range * raw[..., 0]
        el = (self.elevation0 + self.max_elevation * raw[..., 1]).clamp(-math.pi / 2, math.pi / 2)
        roll = self.max_roll * raw[..., 2]
        quat = azel_to_quaternion(az, el, roll)
        return {"scale": self.init_scale * torch.exp(0.5 * raw[..., 3]), "quat": quat, "trans": 0.3 * raw[..., 4:6],
                "logits": logits, "prob": torch.softmax(logits, dim=-1), "azimuth": az, "elevation": el,
                "roll": roll}


class CSMNet(nn.Module):
    """The CSM model: the U-Net surface map, the camera head and the template UV table.

    ``forward(img)`` returns a dict with ``sphere`` [B,3,H,W] (unit vectors), ``uv`` [B,2,H,W],
    ``points`` [B,3,H,W] (template points), ``mask_logit`` [B,1,H,W] and the camera
    hypotheses from :class:`CameraHead` (``scale``, ``quat``, ``trans``, ``logits``, ``prob``).
    """

    def __init__(self, template_uv: TemplateUV, n_hypotheses: int = 8, unet_base: int = 16, unet_depth: int = 4,
                 cam_base: int = 16, cam_down: int = 4, init_scale: float = 0.7, elevation_deg: float = 0.0,
                 max_elevation_deg: float = 40.0, max_roll_deg: float = 20.0, squash: bool = True,
                 norm: str = "group", coords: bool = False, stem_stride: int = 1, camera_encoder: str = "convs"):
        super().__init__()
        self.squash = squash
        if not isinstance(template_uv, TemplateUV):
            raise ValueError(f"template_uv must be a TemplateUV, got {type(template_uv).__name__}")
        self.template = template_uv
        self.unet = UNet(3, 4, unet_base, unet_depth, norm=norm, coords=coords, stem_stride=stem_stride)
        self.camera = CameraHead(n_hypotheses, cam_base, cam_down, init_scale, elevation_deg, max_elevation_deg,
                                 max_roll_deg, encoder=camera_encoder)

    @property
    def n_hypotheses(self) -> int:
        return self.camera.n

    def surface(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """Only the per-pixel outputs (no camera)."""
        if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"img must be a [B,3,H,W] tensor, got "
                             f"{list(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}")
        out = self.unet(img)
        # tanh keeps the raw 3-vector bounded (as CSM does) before it is put on the sphere.
        raw = torch.tanh(out[:, :3]) if self.squash else out[:, :3]
        sphere = F.normalize(raw, dim=1, eps=1e-6)
        uv = sphere_to_uv(sphere.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return {"sphere": sphere, "uv": uv, "points": self.template.uv_image_to_points(uv),
                "mask_logit": out[:, 3:4]}

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**self.surface(img), **self.camera(img)}
