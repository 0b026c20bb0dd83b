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

from csmlab.checks import FLOAT_DTYPES, check_tensor


def sphere_to_uv(p: torch.Tensor) -> torch.Tensor:
    """[...,3] finite points (normalised here) -> [...,2] UV in [0,1]^2.

    A zero vector has no direction; it maps to (0.5, 0.5). That is allowed on purpose: image-shaped
    inputs hold zeros off the mask (``sphere_to_uv(img) * mask`` is the common use).
    """
    check_tensor("p", p, shape="...,3", dtypes=FLOAT_DTYPES, finite=True)
    p = torch.nn.functional.normalize(p, dim=-1)
    u = 0.5 + torch.atan2(p[..., 0], p[..., 2]) / (2 * math.pi)
    # clamp only absorbs rounding (|y| <= 1 after normalisation) so asin has no NaN gradient at the pole.
    v = 0.5 + torch.asin(p[..., 1].clamp(-1 + 1e-7, 1 - 1e-7)) / math.pi
    return torch.stack([u, v], dim=-1)


def uv_to_sphere(uv: torch.Tensor) -> torch.Tensor:
    """[...,2] UV -> [...,3] unit vectors (inverse of :func:`sphere_to_uv`)."""
    check_tensor("uv", uv, shape="...,2", dtypes=FLOAT_DTYPES, finite=True)
    theta = 2 * math.pi * (uv[..., 0] - 0.5)
    phi = math.pi * (uv[..., 1] - 0.5)
    return torch.stack([torch.cos(phi) * torch.sin(theta), torch.sin(phi),
                        torch.cos(phi) * torch.cos(theta)], dim=-1)
