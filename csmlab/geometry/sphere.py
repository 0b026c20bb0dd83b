"""Sphere UV maps: the parametrisation shared by CSM, the templates and the textures.

For a unit vector p = (x, y, z) in the canonical frame (y up, z to the viewer):
    u = 0.5 + atan2(x, z) / (2 pi)     in [0, 1), u = 0.5 at the front (+z)
    v = 0.5 + asin(y) / pi             in [0, 1], v = 1 at the top (+y)
Inverse: theta = 2 pi (u - 0.5), phi = pi (v - 0.5),
    p = (cos phi sin theta, sin phi, cos phi cos theta).
The seam (u = 0 ~ 1) is at the back (-z), and the poles are at v = 0 and 1.
"""

from __future__ import annotations

import math

import torch


def sphere_to_uv(p: torch.Tensor) -> torch.Tensor:
    """[...,3] points (normalised here) -> [...,2] UV in [0,1]^2."""
    if not isinstance(p, torch.Tensor) or p.shape[-1:] != (3,) or not p.is_floating_point():
        raise ValueError(f"p must be a float tensor [...,3], got "
                         f"{list(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__}")
    p = torch.nn.functional.normalize(p, dim=-1)
    u = 0.5 + torch.atan2(p[..., 0], p[..., 2]) / (2 * math.pi)
    # clamp only absorbs rounding (|y| <= 1 after normalisation) so asin has no NaN gradient at the pole.
    v = 0.5 + torch.asin(p[..., 1].clamp(-1 + 1e-7, 1 - 1e-7)) / math.pi
    return torch.stack([u, v], dim=-1)


def uv_to_sphere(uv: torch.Tensor) -> torch.Tensor:
    """[...,2] UV -> [...,3] unit vectors (inverse of :func:`sphere_to_uv`)."""
    if not isinstance(uv, torch.Tensor) or uv.shape[-1:] != (2,) or not uv.is_floating_point():
        raise ValueError(f"uv must be a float tensor [...,2], got "
                         f"{list(uv.shape) if isinstance(uv, torch.Tensor) else type(uv).__name__}")
    theta = 2 * math.pi * (uv[..., 0] - 0.5)
    phi = math.pi * (uv[..., 1] - 0.5)
    return torch.stack([torch.cos(phi) * torch.sin(theta), torch.sin(phi),
                        torch.cos(phi) * torch.cos(theta)], dim=-1)
