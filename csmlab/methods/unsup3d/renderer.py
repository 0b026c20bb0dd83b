"""Unsup3D's photo-geometric image formation on ``csmlab.dr`` (``unsup3d/renderer/renderer.py``).

The camera and conventions are those of the synthetic faces
(:mod:`csmlab.data.synthetic.faces_geometry`): a 10-degree pinhole looking down -z,
canonical depth in [0.9, 1.1], views rotating about the point at depth 1. Steps:

1. the canonical depth map becomes a grid mesh: one vertex per pixel on its ray, two
   triangles per pixel quad (:func:`grid_faces`), as the paper's ``get_face_idx``;
2. the mesh is moved by the view and rasterized with ``csmlab.dr`` (nvdiffrast's API;
   the paper used neural_renderer's ``render_depth``): :func:`view_depth` is the depth
   seen from the input view, differentiable through ``dr.interpolate``;
3. the canonical image ``albedo * (a + b max(0, n . l))`` (normals from the depth:
   :func:`normals_from_depth`) is warped into the input view by ``grid_sample`` at the
   back-projection of every view pixel (:func:`reconstruct`).

Depth seen where no triangle lands is set to ``max_depth + margin`` (margin = half the
depth range, the paper's clamp), which is how the paper's mask finds the invalid pixels.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from csmlab import render
from csmlab.data.synthetic.faces import mesh_points
from csmlab.data.synthetic.faces_geometry import (
    DEPTH_MAX,
    DEPTH_MIN,
    FAR,
    FOV_DEG,
    NEAR,
    apply_view,
    depth_to_normals,
    grid_mesh_faces,
    shade,
    warp_canonical,
)
from csmlab.geometry import perspective_clip

MARGIN = (DEPTH_MAX - DEPTH_MIN) / 2       # the paper's clamp of the warped depth
INVALID_DEPTH = DEPTH_MAX + MARGIN          # depth where the moved mesh does not cover the pixel
# Slack on the depth range (float32 rounding).
_TOL = 1e-3


def _shape(x) -> str:
    return str(list(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def check_image(name: str, image, channels: int = 3, resolution: int | None = None) -> None:
    """ValueError unless ``image`` is a float [B,channels,S,S] tensor (square; side ``resolution`` if given)."""
    ok = isinstance(image, torch.Tensor) and image.dim() == 4 and image.is_floating_point() \
        and image.shape[1] == channels
    if not ok:
        raise ValueError(f"{name} must be a float tensor [B,{channels},S,S], got {_shape(image)}")
    if image.shape[2] != image.shape[3]:
        raise ValueError(f"{name} must be square [B,{channels},S,S], got {list(image.shape)} "
                         f"({image.shape[2]}x{image.shape[3]})")
    if resolution is not None and image.shape[2] != resolution:
        raise ValueError(f"{name} must be {resolution}x{resolution} (the model's resolution), got "
                         f"{image.shape[2]}x{image.shape[3]}")


def check_depth(name: str, depth, low: float = DEPTH_MIN, high: float = DEPTH_MAX) -> None:
    """ValueError unless ``depth`` is a square [B,1,S,S] float map with every value in [low, high]."""
    check_image(name, depth, channels=1)
    lo, hi = float(depth.detach().min()), float(depth.detach().max())
    if not (low - _TOL <= lo and hi <= high + _TOL):   # also catches NaN
        raise ValueError(f"{name} must lie in [{low}, {high}] (the canonical depth range), got values in "
                         f"[{lo:.4g}, {hi:.4g}]")


def check_light(light, batch: int) -> None:
    """ValueError unless ``light`` is {ambient [B], diffuse [B], direction [B,3]}."""
    want = {"ambient": (batch,), "diffuse": (batch,), "direction": (batch, 3)}
    if not isinstance(light, dict) or set(light) < set(want):
        raise ValueError(f"light must be a dict with keys {sorted(want)}, got "
                         f"{sorted(light) if isinstance(light, dict) else type(light).__name__}")
    for key, shape in want.items():
        v = light[key]
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape:
            raise ValueError(f"light[{key!r}] must be a tensor of shape {list(shape)}, got {_shape(v)}")


def check_view(view, batch: int) -> None:
    """ValueError unless ``view`` is {rotation [B,3] (yaw, pitch, roll), trans [B,3]}."""
    if not isinstance(view, dict) or not {"rotation", "trans"} <= set(view):
        raise ValueError(f"view must be a dict with keys ['rotation', 'trans'], got "
                         f"{sorted(view) if isinstance(view, dict) else type(view).__name__}")
    for key in ("rotation", "trans"):
        v = view[key]
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != (batch, 3):
            raise ValueError(f"view[{key!r}] must be a tensor of shape [{batch}, 3], got {_shape(v)}")


@lru_cache(maxsize=8)
def grid_faces(resolution: int) -> torch.Tensor:
    """[2 (S-1)^2, 3] triangles of the full pixel grid (vertex of pixel (i, j): ``i * S + j``)."""
    return grid_mesh_faces(torch.ones(resolution, resolution, dtype=torch.bool))


def normals_from_depth(depth: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] depth -> [B,3,H,W] unit normals (the paper's ``get_normal_from_depth``).

    Central differences of the 3D points on the pixel rays; the one-pixel border gets (0, 0, 1).
    Normals face the camera (+z) on a frontal surface.
    """
    check_image("depth", depth, channels=1)
    return depth_to_normals(depth)


def view_depth(canon_depth: torch.Tensor, view: dict, ctx=None) -> torch.Tensor:
    """Depth [B,1,S,S] of the canonical depth's grid mesh seen from ``view``, by ``csmlab.dr``.

    ``dr.rasterize`` finds the visible triangle of every pixel and ``dr.interpolate`` its depth
    (gradients reach the depth through the interpolated vertex depths and the barycentrics).
    Uncovered pixels get ``INVALID_DEPTH``; everything is clamped to [min - margin, max + margin]
    as the paper's ``warp_canon_depth`` does.
    """
    check_depth("canon_depth", canon_depth)
    B, _, S, _ = canon_depth.shape
    check_view(view, B)
    points = apply_view(mesh_points(canon_depth), view["rotation"], view["trans"])       # [B,S*S,3]
    pos = perspective_clip(points, FOV_DEG, NEAR, FAR)
    r = render.rasterize_mesh(pos, grid_faces(S).to(canon_depth.device), (S, S), ctx=ctx)
    depth = render.depth_image(r, -points[..., 2])
    depth = torch.where(r.mask > 0, depth, torch.full_like(depth, INVALID_DEPTH))
    return depth.clamp(DEPTH_MIN - MARGIN, INVALID_DEPTH)


def canonical_image(albedo: torch.Tensor, canon_depth: torch.Tensor, light: dict | None) -> dict:
    """Normals, diffuse shading and the Lambertian canonical image (``light=None``: albedo only)."""
    normals = normals_from_depth(canon_depth)
    if light is None:
        return {"normal": normals, "shading": torch.ones_like(canon_depth), "image": albedo}
    check_light(light, albedo.shape[0])
    diffuse = (normals * light["direction"][:, :, None, None]).sum(1, keepdim=True).clamp_min(0.0)
    image = shade(albedo, normals, light["ambient"], light["diffuse"], light["direction"])
    return {"normal": normals, "shading": diffuse, "image": image}


def reconstruct(canon_depth: torch.Tensor, albedo: torch.Tensor, light: dict | None, view: dict, ctx=None) -> dict:
    """The photo-geometric autoencoder's decoder: factors -> the image seen from ``view``.

    canon_depth [B,1,S,S] in [0.9, 1.1]; albedo [B,3,S,S] in [0, 1]; light
    {ambient [B], diffuse [B], direction [B,3]} (None: no shading); view {rotation [B,3],
    trans [B,3]}. Returns the canonical ``normal``, ``shading`` (max(0, n . l)) and
    ``canonical_image``, the view's ``depth`` and ``mask`` (1 where the moved mesh covers the
    pixel) and ``image`` (the warped canonical image, 0 off the mask).
    """
    check_depth("canon_depth", canon_depth)
    check_image("albedo", albedo, channels=3, resolution=canon_depth.shape[2])
    if albedo.shape[0] != canon_depth.shape[0]:
        raise ValueError(f"albedo and canon_depth must share the batch size, got {albedo.shape[0]} and "
                         f"{canon_depth.shape[0]}")
    canon = canonical_image(albedo, canon_depth, light)
    depth = view_depth(canon_depth, view, ctx=ctx)
    mask = (depth < INVALID_DEPTH).to(depth.dtype)
    image = warp_canonical(canon["image"], depth, view["rotation"], view["trans"]) * mask
    return {"normal": canon["normal"], "shading": canon["shading"], "canonical_image": canon["image"],
            "depth": depth, "mask": mask, "image": image}
