"""Unsup3D's five networks (Wu et al. 2020, ``unsup3d/networks.py``), written without torchvision.

At 64x64 with the paper's widths these are the authors' layers, one for one:

- :class:`Encoder` (light and view nets, ``nf=32``): stride-2 4x4 convolutions with ReLU
  down to 4x4, a 4x4 convolution to 1x1, a 1x1 convolution to ``cout`` and ``tanh``.
- :class:`EDDeconv` (depth and albedo nets, ``nf=64, zdim=256``): the same encoder with
  GroupNorm and LeakyReLU to a ``zdim`` code, then transposed convolutions back up to half
  resolution, a nearest upsampling and 3x3 / 5x5 / 5x5 convolutions.
- :class:`ConfNet` (``nf=64, zdim=128``): the encoder, a decoder up to 1/4 resolution where a
  3x3 convolution and Softplus give the two sigma maps of the perceptual loss, and two more
  transposed convolutions to full resolution where a 5x5 convolution and Softplus give the two
  sigma maps of the photometric loss (channel 0: the reconstruction, 1: the flipped one).

Other resolutions (any power of two >= 16; the course's smoke and medium use 32) keep the same
pattern with ``log2(S) - 2`` stride-2 levels; the channel width doubles per level up to ``8 nf``.
GroupNorm uses 4 channels per group, the paper's ratio (16 groups at ``nf = 64``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def check_resolution(resolution: int) -> int:
    """The number of stride-2 levels for a square input of side ``resolution`` (a power of two >= 16)."""
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 16 \
            or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 16 (square images), got {resolution!r}")
    return int(math.log2(resolution)) - 2


def _width(nf: int, level: int) -> int:
    return nf * 2 ** min(level, 3)


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // 4), channels)


def _down(resolution: int, cin: int, nf: int, zdim: int, norm: bool) -> list[nn.Module]:
    """Stride-2 4x4 convolutions down to 4x4, then a 4x4 convolution to a 1x1 code of ``zdim`` channels."""
    levels = check_resolution(resolution)
    layers, c = [], cin
    for i in range(levels):
        out = _width(nf, i)
        layers.append(nn.Conv2d(c, out, 4, stride=2, padding=1, bias=False))
        if norm and i < levels - 1:   # the paper has no norm on the level that reaches 4x4
            layers.append(_gn(out))
        layers.append(nn.LeakyReLU(0.2, inplace=True) if norm else nn.ReLU(inplace=True))
        c = out
    layers += [nn.Conv2d(c, zdim, 4, stride=1, padding=0, bias=False), nn.ReLU(inplace=True)]
    return layers


class Encoder(nn.Module):
    """Image [B,cin,S,S] -> [B,cout] in (-1, 1) (``tanh``); Unsup3D's light and view nets."""

    def __init__(self, cin: int, cout: int, nf: int = 32, resolution: int = 64, activation=nn.Tanh):
        super().__init__()
        levels = check_resolution(resolution)
        layers = _down(resolution, cin, nf, _width(nf, levels), norm=False)
        layers.append(nn.Conv2d(_width(nf, levels), cout, 1, bias=False))
        if activation is not None:
            layers.append(activation())
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).reshape(x.shape[0], -1)


class EDDeconv(nn.Module):
    """Image [B,cin,S,S] -> map [B,cout,S,S]; Unsup3D's depth (no activation) and albedo (``tanh``) nets."""

    def __init__(self, cin: int, cout: int, zdim: int = 256, nf: int = 64, resolution: int = 64,
                 activation=nn.Tanh):
        super().__init__()
        levels = check_resolution(resolution)
        top = _width(nf, levels - 1)
        layers = _down(resolution, cin, nf, zdim, norm=True)
        layers += [nn.ConvTranspose2d(zdim, top, 4, stride=1, padding=0, bias=False), nn.ReLU(inplace=True),
                   nn.Conv2d(top, top, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        c = top
        for i in range(levels - 2, -1, -1):            # 4x4 -> S/2
            out = _width(nf, i)
            layers += [nn.ConvTranspose2d(c, out, 4, stride=2, padding=1, bias=False), _gn(out), nn.ReLU(inplace=True),
                       nn.Conv2d(out, out, 3, padding=1, bias=False), _gn(out), nn.ReLU(inplace=True)]
            c = out
        layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                   nn.Conv2d(nf, nf, 3, padding=1, bias=False), _gn(nf), nn.ReLU(inplace=True),
                   nn.Conv2d(nf, nf, 5, padding=2, bias=False), _gn(nf), nn.ReLU(inplace=True),
                   nn.Conv2d(nf, cout, 5, padding=2, bias=False)]
        if activation is not None:
            layers.append(activation())
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class ConfNet(nn.Module):
    """Image -> (sigma [B,2,S,S] for the photometric loss, sigma [B,2,S/4,S/4] for the perceptual loss)."""

    def __init__(self, cin: int = 3, zdim: int = 128, nf: int = 64, resolution: int = 64):
        super().__init__()
        levels = check_resolution(resolution)
        top = _width(nf, levels - 1)
        layers = _down(resolution, cin, nf, zdim, norm=True)
        layers += [nn.ConvTranspose2d(zdim, top, 4, stride=1, padding=0, bias=False), nn.ReLU(inplace=True)]
        c = top
        for i in range(levels - 2, 0, -1):             # 4x4 -> S/4
            out = _width(nf, i)
            layers += [nn.ConvTranspose2d(c, out, 4, stride=2, padding=1, bias=False), _gn(out), nn.ReLU(inplace=True)]
            c = out
        self.network = nn.Sequential(*layers)
        self.out_net1 = nn.Sequential(
            nn.ConvTranspose2d(c, nf, 4, stride=2, padding=1, bias=False), _gn(nf), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(nf, nf, 4, stride=2, padding=1, bias=False), _gn(nf), nn.ReLU(inplace=True),
            nn.Conv2d(nf, 2, 5, padding=2, bias=False), nn.Softplus())
        self.out_net2 = nn.Sequential(nn.Conv2d(c, 2, 3, padding=1, bias=False), nn.Softplus())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.network(x)
        return self.out_net1(h), self.out_net2(h)
