"""Unsup3D's image formation, for the synthetic faces: depth maps to 3D, normals, views, warps.

Camera (Wu et al. 2020, "Unsupervised Learning of Probably Symmetric Deformable
3D Objects from Images in the Wild"): a pinhole with a ``FOV_DEG`` = 10 degree
field of view, square images, looking down -z of the camera frame (x right,
y up), as ``csmlab.geometry.perspective_clip`` wants. Depth is ``d = -z``.
The canonical depth of the object lies in [``DEPTH_MIN``, ``DEPTH_MAX``] = [0.9, 1.1].

- A pixel with NDC centre (x, y) (``csmlab.geometry.pixel_to_ndc``) at depth d
  is the 3D point ``d * (x tan(fov/2), y tan(fov/2), -1)``.
- A view is a rotation ``R = Rz(roll) Ry(yaw) Rx(pitch)`` about the point at
  depth ``ROT_CENTER_DEPTH`` = 1 on the optical axis, then a translation t:
  ``X_view = R (X - c) + c + t`` with ``c = (0, 0, -1)``. Positive yaw turns the
  object's front (+z) towards the image's right (+x).
- Normals come from the depth map by central differences of the 3D points, as
  in Unsup3D (``get_normal_from_depth``); the one-pixel border gets (0, 0, 1).
  They point towards the camera (+z) for a frontal surface.
- Shading is Lambertian in the canonical frame, as in Unsup3D:
  ``image = albedo * (ambient + diffuse * max(0, n . l))``.
"""

from __future__ import annotations

import math

import torch

from csmlab.geometry import axis_angle_to_matrix

FOV_DEG = 10.0
DEPTH_MIN, DEPTH_MAX = 0.9, 1.1
ROT_CENTER_DEPTH = 1.0
# Clip planes for the z-buffer only; every view of the object stays well inside them.
NEAR, FAR = 0.5, 2.0


def _check_map(name: str, x: torch.Tensor, channels: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels or not x.is_floating_point():
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor [B,{channels},H,W], got {got}")


def pixel_ndc_grid(height: int, width: int, dtype=torch.float32, device=None):
    """NDC (x, y) of the pixel centres, each [H,W], top row first (y decreases down the rows)."""
    x = (2 * torch.arange(width, dtype=dtype, device=device) + 1) / width - 1
    y = 1 - (2 * torch.arange(height, dtype=dtype, device=device) + 1) / height
    return x[None, :].expand(height, width), y[:, None].expand(height, width)


def depth_to_points(depth: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] depth -> [B,3,H,W] camera-frame points on each pixel's ray."""
    _check_map("depth", depth, 1)
    x, y = pixel_ndc_grid(depth.shape[2], depth.shape[3], depth.dtype, depth.device)
    k = math.tan(math.radians(FOV_DEG) / 2)
    rays = torch.stack([x * k, y * k, -torch.ones_like(x)], 0)          # [3,H,W]
    return depth * rays[None]


def depth_to_normals(depth: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] depth -> [B,3,H,W] unit normals by central differences (border: (0, 0, 1))."""
    p = depth_to_points(depth)
    tu = p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]          # towards +x (right)
    tv = p[:, :, :-2, 1:-1] - p[:, :, 2:, 1:-1]          # towards +y (up: the row above)
    n = torch.linalg.cross(tu, tv, dim=1)
    out = torch.zeros_like(p)
    out[:, 2] = 1.0
    out[:, :, 1:-1, 1:-1] = torch.nn.functional.normalize(n, dim=1)
    return out


def shade(albedo: torch.Tensor, normals: torch.Tensor, ambient: torch.Tensor, diffuse: torch.Tensor,
          direction: torch.Tensor) -> torch.Tensor:
    """Lambertian image [B,3,H,W]: ``albedo * (ambient + diffuse * max(0, n . l))``; l is [B,3] unit."""
    cos = (normals * direction[:, :, None, None]).sum(1, keepdim=True).clamp_min(0.0)
    return albedo * (ambient[:, None, None, None] + diffuse[:, None, None, None] * cos)


def view_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """[B,3] (yaw, pitch, roll) radians -> [B,3,3] ``Rz(roll) Ry(yaw) Rx(pitch)``."""
    if not isinstance(rotation, torch.Tensor) or rotation.dim() != 2 or rotation.shape[1] != 3:
        raise ValueError(f"rotation must be a float tensor [B,3] (yaw, pitch, roll), got "
                         f"{list(rotation.shape) if isinstance(rotation, torch.Tensor) else type(rotation).__name__}")
    yaw, pitch, roll = rotation.unbind(-1)
    zero = torch.zeros_like(yaw)

    def about(axis, angle):
        return axis_angle_to_matrix(torch.stack([angle if k == axis else zero for k in range(3)], -1))

    return about(2, roll) @ about(1, yaw) @ about(0, pitch)


def apply_view(points: torch.Tensor, rotation: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Canonical camera-frame points [B,N,3] -> view points [B,N,3] (see the module docstring)."""
    R = view_rotation(rotation)
    c = torch.tensor([0.0, 0.0, -ROT_CENTER_DEPTH], dtype=points.dtype, device=points.device)
    return (points - c) @ R.transpose(1, 2) + c + trans[:, None, :]


def invert_view(points: torch.Tensor, rotation: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """View points [B,N,3] -> canonical points (inverse of :func:`apply_view`)."""
    R = view_rotation(rotation)
    c = torch.tensor([0.0, 0.0, -ROT_CENTER_DEPTH], dtype=points.dtype, device=points.device)
    return (points - trans[:, None, :] - c) @ R + c


def warp_canonical(canonical: torch.Tensor, view_depth: torch.Tensor, rotation: torch.Tensor,
                   trans: torch.Tensor) -> torch.Tensor:
    """Unsup3D's warp: sample the canonical image [B,C,H,W] at the reprojection of each view pixel.

    Each view pixel is lifted with its view depth [B,1,H,W], taken back to the
    canonical frame, projected, and the canonical image is sampled there
    bilinearly (``grid_sample``, pixel centres as in NDC, borders repeated).
    Mask the result with the view mask: pixels with depth 0 are meaningless.
    """
    if not isinstance(canonical, torch.Tensor) or canonical.dim() != 4 or not canonical.is_floating_point():
        got = list(canonical.shape) if isinstance(canonical, torch.Tensor) else type(canonical).__name__
        raise ValueError(f"canonical must be a float tensor [B,C,H,W], got {got}")
    _check_map("view_depth", view_depth, 1)
    B, _, H, W = view_depth.shape
    pts = depth_to_points(view_depth).flatten(2).transpose(1, 2)                 # [B,HW,3]
    can = invert_view(pts, rotation, trans)
    k = math.tan(math.radians(FOV_DEG) / 2)
    d = (-can[..., 2]).clamp_min(1e-6)  # background pixels (depth 0) only; masked by the caller
    x, y = can[..., 0] / (d * k), can[..., 1] / (d * k)
    grid = torch.stack([x, -y], -1).reshape(B, H, W, 2)                          # grid_sample: y down
    return torch.nn.functional.grid_sample(canonical, grid.to(canonical.dtype), mode="bilinear",
                                           padding_mode="border", align_corners=False)


def grid_mesh_faces(inside: torch.Tensor) -> torch.Tensor:
    """[F,3] triangles of the pixel-centre grid over cells whose 4 corners are inside ([H,W] bool).

    Vertex index of pixel (i, j) is ``i * W + j``. Triangles are counter-clockwise
    seen from the camera (image y points up in NDC, rows go down).
    """
    H, W = inside.shape
    idx = torch.arange(H * W).reshape(H, W)
    cell = inside[:-1, :-1] & inside[:-1, 1:] & inside[1:, :-1] & inside[1:, 1:]
    tl, tr, bl, br = idx[:-1, :-1][cell], idx[:-1, 1:][cell], idx[1:, :-1][cell], idx[1:, 1:][cell]
    return torch.cat([torch.stack([tl, bl, br], 1), torch.stack([tl, br, tr], 1)], 0)
