"""High-level rendering on top of ``csmlab.dr`` (nvdiffrast's API).

Everything here takes clip-space vertex positions ``pos`` [B,V,4] (make them
with ``csmlab.geometry.ortho_clip`` or ``perspective_clip``) and integer
``faces`` [F,3], and returns images **top-row-first** ``[B,C,H,W]``, the layout
of matplotlib and of the datasets. nvdiffrast works bottom-up (row 0 is
NDC y = -1); the conversion happens in exactly one place, :func:`flip_rows`.

Typical use: rasterize once, then shade several images from the same raster::

    r = rasterize_mesh(pos, faces, (H, W))
    mask = silhouette(r)                       # antialiased, has vertex gradients
    depth = interpolate_image(r, depth_attr)   # any per-vertex attribute
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import dr
from .checks import check_number, check_tensor
from .geometry.mesh import check_faces

_FLOATS = (torch.float32, torch.float64)   # what nvdiffrast (and the twin) take


def flip_rows(x: torch.Tensor) -> torch.Tensor:
    """nvdiffrast [B,H,W,C] (bottom-up) <-> top-row-first [B,C,H,W]. The only row flip in csmlab.

    It is its own inverse up to the channel move; :func:`image_to_nv` goes back.
    """
    check_tensor("x", x, ndim=4)
    return x.flip(1).permute(0, 3, 1, 2).contiguous()


def image_to_nv(img: torch.Tensor) -> torch.Tensor:
    """Top-row-first [B,C,H,W] -> nvdiffrast [B,H,W,C] bottom-up (inverse of :func:`flip_rows`)."""
    check_tensor("img", img, ndim=4)
    return img.permute(0, 2, 3, 1).flip(1).contiguous()


_CONTEXTS: dict[str, object] = {}


def get_context(device: torch.device | str):
    """One rasterizer context per device, created on first use (nvdiffrast contexts are costly)."""
    key = str(torch.device(device))
    if key not in _CONTEXTS:
        _CONTEXTS[key] = dr.RasterizeContext(device=torch.device(device))
    return _CONTEXTS[key]


@dataclass
class Raster:
    """The result of one rasterization, kept with its inputs so shading calls need no repeats."""

    rast: torch.Tensor      # [B,H,W,4] nvdiffrast layout (u, v, z/w, tri_id + 1), bottom-up
    rast_db: torch.Tensor
    pos: torch.Tensor       # [B,V,4] clip space
    tri: torch.Tensor       # [F,3] int32

    @property
    def mask(self) -> torch.Tensor:
        """[B,1,H,W] hard coverage, top-row-first (no gradient)."""
        return flip_rows((self.rast[..., 3:4] > 0).to(self.pos.dtype))

    @property
    def face_ids(self) -> torch.Tensor:
        """[B,H,W] long, top-row-first: the covering face index, -1 on the background."""
        return flip_rows(self.rast[..., 3:4])[:, 0].long() - 1


def rasterize_mesh(pos: torch.Tensor, faces: torch.Tensor, resolution, ctx=None) -> Raster:
    """Rasterize [B,V,4] clip-space positions with [F,3] faces at resolution (H, W).

    ``faces`` must be int32 or int64 (floats are refused, not truncated) and index ``pos``'s
    vertices; they are moved to ``pos``'s device (a mesh often lives on the CPU).
    """
    check_tensor("pos", pos, shape="B,V,4", dtypes=_FLOATS, finite=True)
    check_faces(faces, pos.shape[1])
    H, W = _resolution(resolution)
    tri = faces.to(device=pos.device, dtype=torch.int32).contiguous()
    ctx = ctx if ctx is not None else get_context(pos.device)
    rast, rast_db = dr.rasterize(ctx, pos.contiguous(), tri, resolution=[H, W])
    return Raster(rast, rast_db, pos, tri)


def _resolution(resolution) -> tuple[int, int]:
    pair = (resolution, resolution) if isinstance(resolution, int) and not isinstance(resolution, bool) else resolution
    ok = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(
        isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in pair)
    if not ok:
        raise ValueError(f"resolution must be an int or (H, W) with positive int entries, got {resolution!r}")
    return int(pair[0]), int(pair[1])


def _check_raster(r) -> None:
    if not isinstance(r, Raster):
        raise ValueError(f"r must be a Raster from rasterize_mesh, got {type(r).__name__}")


def _antialias(color: torch.Tensor, r: Raster) -> torch.Tensor:
    """``dr.antialias``, except for a mesh with no triangles: no edges, so nothing changes."""
    if r.tri.shape[0] == 0:
        return color
    return dr.antialias(color.contiguous(), r.rast, r.pos, r.tri)


def _attr_batch(attr: torch.Tensor, r: Raster, name: str = "attr") -> torch.Tensor:
    """Accept [V,C], [B,V,C] or [B,V] per-vertex attributes; return contiguous [B,V,C]."""
    _check_raster(r)
    check_tensor(name, attr, ndim=(2, 3), dtypes=_FLOATS + (torch.float16, torch.bfloat16), finite=True)
    if attr.device != r.pos.device:
        raise ValueError(f"{name} must be on the device of the raster's pos ({r.pos.device}), got {attr.device}")
    B, V = r.pos.shape[:2]
    if attr.dim() == 2 and attr.shape[0] == B and attr.shape[1] == V and B != V:
        attr = attr[..., None]
    if attr.dim() == 2:
        attr = attr[None].expand(B, -1, -1)
    if attr.dim() != 3 or attr.shape[0] != B or attr.shape[1] != V:
        raise ValueError(f"{name} must be [V,C], [B,V] or [B,V,C] with B={B}, V={V}, got {list(attr.shape)}")
    return attr.to(r.pos.dtype).contiguous()


def interpolate_image(r: Raster, attr: torch.Tensor, antialias: bool = False) -> torch.Tensor:
    """Interpolate per-vertex attributes -> [B,C,H,W] top-row-first; 0 on the background."""
    out, _ = dr.interpolate(_attr_batch(attr, r), r.rast, r.tri)
    if antialias:
        out = _antialias(out, r)
    return flip_rows(out)


def silhouette(r: Raster, antialias: bool = True) -> torch.Tensor:
    """[B,1,H,W] silhouette in [0,1]. With ``antialias`` it has gradients wrt the vertices."""
    _check_raster(r)
    cov = (r.rast[..., 3:4] > 0).to(r.pos.dtype)
    if antialias:
        cov = _antialias(cov, r)
    return flip_rows(cov)


def depth_image(r: Raster, depth: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] depth of the visible surface, from per-vertex depth [B,V]; 0 off the mask.

    Pass the camera depth (``ortho_depth`` or ``-z_cam``): it is linear in
    screen space for orthographic views and interpolated perspective-correctly otherwise.
    """
    _check_raster(r)
    B, V = r.pos.shape[:2]
    check_tensor("depth", depth, shape=f"{B},{V}", dtypes=_FLOATS, finite=True)
    return interpolate_image(r, depth)


def textured_image(r: Raster, uv: torch.Tensor, texture_img: torch.Tensor, uv_faces: torch.Tensor | None = None,
                   filter_mode: str = "linear", boundary_mode: str = "wrap", antialias: bool = True) -> torch.Tensor:
    """Sample a texture with per-vertex UV -> [B,C,H,W] top-row-first.

    texture_img: [B,C,Ht,Wt] or [C,Ht,Wt], top-row-first, with v = 1 at its top row
    (the sphere-UV convention of ``csmlab.geometry.sphere``). ``uv_faces`` indexes
    ``uv`` when the UV layout has seams (its own vertices); default: ``r.tri``.
    """
    _check_raster(r)
    B, F = r.pos.shape[0], r.tri.shape[0]
    check_tensor("texture_img", texture_img, ndim=(3, 4), dtypes=_FLOATS, finite=True)
    if texture_img.dim() == 3:
        texture_img = texture_img[None]
    if texture_img.shape[0] not in (1, B) or min(texture_img.shape) == 0:
        raise ValueError(f"texture_img must be [B,C,Ht,Wt] (B=1 or {B}) or [C,Ht,Wt] with sizes > 0, "
                         f"got {tuple(texture_img.shape)}")
    check_tensor("uv", uv, ndim=(2, 3), last_dim=2, dtypes=_FLOATS, finite=True)
    if uv.dim() == 3 and uv.shape[0] != B:
        raise ValueError(f"uv must be [U,2] or [B,U,2] with B={B}, got {tuple(uv.shape)}")
    n_uv = uv.shape[-2]
    if uv_faces is None:
        if n_uv != r.pos.shape[1]:
            raise ValueError(f"uv must have one row per vertex of pos ({r.pos.shape[1]}) when uv_faces is None, "
                             f"got {n_uv}")
        tri = r.tri
    else:
        check_tensor("uv_faces", uv_faces, shape=f"{F},3", dtypes=(torch.int32, torch.int64))
        check_faces(uv_faces, n_uv)
        tri = uv_faces.to(device=r.pos.device, dtype=torch.int32).contiguous()
    if uv.dim() == 2:
        uv = uv[None].expand(B, -1, -1)
    uv_img, _ = dr.interpolate(uv.to(r.pos.dtype).contiguous(), r.rast, tri)
    tex = image_to_nv(texture_img.to(r.pos.dtype))  # bottom-up rows: v = 0 is texel row 0, as nvdiffrast wants
    col = dr.texture(tex, uv_img.contiguous(), filter_mode=filter_mode, boundary_mode=boundary_mode)
    col = col * (r.rast[..., 3:4] > 0)
    if antialias:
        col = _antialias(col, r)
    return flip_rows(col)


def lambertian(albedo: torch.Tensor, normals: torch.Tensor, light_dir: torch.Tensor,
               ambient: torch.Tensor | float = 0.5, diffuse: torch.Tensor | float = 0.5) -> torch.Tensor:
    """Shade [B,C,H,W] albedo with [B,3,H,W] unit normals: ``albedo * (ambient + diffuse * max(0, n.l))``.

    light_dir: [B,3] or [3], pointing from the surface towards the light (normalised here).
    """
    dims: dict = {}
    check_tensor("albedo", albedo, shape="B,C,H,W", dims=dims, dtypes=_FLOATS, same_dtype=True)
    check_tensor("normals", normals, shape="B,3,H,W", dims=dims, dtypes=_FLOATS, same_dtype=True)
    if not isinstance(light_dir, torch.Tensor):
        try:
            light_dir = torch.as_tensor(light_dir, dtype=normals.dtype)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"light_dir must be a [3] or [B,3] tensor or sequence, got {light_dir!r}") from None
    check_tensor("light_dir", light_dir, ndim=(1, 2), last_dim=3, finite=True)
    if light_dir.dim() == 2 and light_dir.shape[0] != albedo.shape[0]:
        raise ValueError(f"light_dir must be [3] or [B,3] with B={albedo.shape[0]}, got {tuple(light_dir.shape)}")
    if bool((light_dir.norm(dim=-1) == 0).any()):
        raise ValueError("light_dir must be non-zero (it is normalised here), got a zero vector")
    for name, value in (("ambient", ambient), ("diffuse", diffuse)):
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            check_tensor(name, value, shape=f"{albedo.shape[0]}", dtypes=_FLOATS, finite=True)
            if bool((value < 0).any()):
                raise ValueError(f"{name} must be >= 0 (light adds, never takes away), got a negative entry")
        else:
            check_number(name, value, low=0)
    # Lights and coefficients may come as Python numbers or CPU tensors; put them beside the normals (CUDA).
    light = torch.nn.functional.normalize(torch.as_tensor(light_dir, dtype=normals.dtype, device=normals.device),
                                          dim=-1)
    if light.dim() == 1:
        light = light[None].expand(normals.shape[0], 3)
    cos = (normals * light[:, :, None, None]).sum(1, keepdim=True).clamp_min(0.0)
    amb = torch.as_tensor(ambient, dtype=normals.dtype, device=normals.device).reshape(-1, 1, 1, 1)
    dif = torch.as_tensor(diffuse, dtype=normals.dtype, device=normals.device).reshape(-1, 1, 1, 1)
    return albedo * (amb + dif * cos)
