"""The U-Net of the surface-map methods (CSM, ACSM): image -> per-pixel outputs, from scratch.

Moved here from ``csmlab.methods.csm.network`` (which re-exports it) so that CSM and
ACSM share it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def surface_map(out: torch.Tensor, template, squash: bool = True) -> dict[str, torch.Tensor]:
    """The U-Net's [B,4,H,W] output -> ``sphere``, ``uv``, template ``points`` (a ``TemplateUV``) and ``mask_logit``.

    tanh keeps the raw 3-vector bounded (as CSM does) before it is put on the unit sphere.
    ``canonical_points`` are the same UV's points on the rest-pose template: the ``points``
    themselves, unless the template is a posed copy (``TemplateUV(canonical_verts=...)``).
    """
    from csmlab.geometry import sphere_to_uv

    raw = torch.tanh(out[:, :3]) if squash else out[:, :3]
    sphere = F.normalize(raw, dim=1, eps=1e-6)
    uv = sphere_to_uv(sphere.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    points = template.uv_image_to_points(uv)
    canonical = template.uv_image_to_canonical(uv) if getattr(template, "posed", False) else points
    return {"sphere": sphere, "uv": uv, "points": points, "canonical_points": canonical, "mask_logit": out[:, 3:4]}
