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


def flip_rows(x: torch.Tensor) -> torch.Tensor:
    """nvdiffrast [B,H,W,C] (bottom-up) <-> top-row-first [B,C,H,W]. The only row flip in csmlab.

    It is its own inverse up to the channel move; :func:`image_to_nv` goes back.
    """
    return x.flip(1).permute(0, 3, 1, 2).contiguous()


def image_to_nv(img: torch.Tensor) -> torch.Tensor:
    """Top-row-first [B,C,H,W] -> nvdiffrast [B,H,W,C] bottom-up (inverse of :func:`flip_rows`)."""
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
    """Rasterize [B,V,4] clip-space positions with [F,3] faces at resolution (H, W)."""
    if not isinstance(pos, torch.Tensor) or pos.dim() != 3 or pos.shape[-1] != 4:
        raise ValueError(f"pos must be a [B,V,4] clip-space tensor, got "
                         f"{list(pos.shape) if isinstance(pos, torch.Tensor) else type(pos).__name__}")
    H, W = _resolution(resolution)
    tri = faces.to(device=pos.device, dtype=torch.int32).contiguous()
    ctx = ctx if ctx is not None else get_context(pos.device)
    rast, rast_db = dr.rasterize(ctx, pos.contiguous(), tri, resolution=[H, W])
    return Raster(rast, rast_db, pos, tri)


def _resolution(resolution) -> tuple[int, int]:
    if isinstance(resolution, int):
        resolution = (resolution, resolution)
    if len(resolution) != 2 or min(resolution) < 1:
        raise ValueError(f"resolution must be an int or (H, W) with positive entries, got {resolution!r}")
    return int(resolution[0]), int(resolution[1])


def _attr_batch(attr: torch.Tensor, r: Raster) -> torch.Tensor:
    """Accept [V,C], [B,V,C] or [B,V] per-vertex attributes; return contiguous [B,V,C]."""
    B, V = r.pos.shape[:2]
    if attr.dim() == 2 and attr.shape[0] == B and attr.shape[1] == V and B != V:
        attr = attr[..., None]
    if attr.dim() == 2:
        attr = attr[None].expand(B, -1, -1)
    if attr.dim() != 3 or attr.shape[0] != B or attr.shape[1] != V:
        raise ValueError(f"attr must be [V,C], [B,V] or [B,V,C] with B={B}, V={V}, got {list(attr.shape)}")
    return attr.to(r.pos.dtype).contiguous()


def interpolate_image(r: Raster, attr: torch.Tensor, antialias: bool = False) -> torch.Tensor:
    """Interpolate per-vertex attributes -> [B,C,H,W] top-row-first; 0 on the background."""
    out, _ = dr.interpolate(_attr_batch(attr, r), r.rast, r.tri)
    if antialias:
        out = dr.antialias(out.contiguous(), r.rast, r.pos, r.tri)
    return flip_rows(out)


def silhouette(r: Raster, antialias: bool = True) -> torch.Tensor:
    """[B,1,H,W] silhouette in [0,1]. With ``antialias`` it has gradients wrt the vertices."""
    cov = (r.rast[..., 3:4] > 0).to(r.pos.dtype)
    if antialias:
        cov = dr.antialias(cov.contiguous(), r.rast, r.pos, r.tri)
    return flip_rows(cov)


def depth_image(r: Raster, depth: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] depth of the visible surface, from per-vertex depth [B,V]; 0 off the mask.

    Pass the camera depth (``ortho_depth`` or ``-z_cam``): it is linear in
    screen space for orthographic views and interpolated perspective-correctly otherwise.
    """
    return interpolate_image(r, depth)


def textured_image(r: Raster, uv: torch.Tensor, texture_img: torch.Tensor, uv_faces: torch.Tensor | None = None,
                   filter_mode: str = "linear", boundary_mode: str = "wrap", antialias: bool = True) -> torch.Tensor:
    """Sample a texture with per-vertex UV -> [B,C,H,W] top-row-first.

    texture_img: [B,C,Ht,Wt] or [C,Ht,Wt], top-row-first, with v = 1 at its top row
    (the sphere-UV convention of ``csmlab.geometry.sphere``). ``uv_faces`` indexes
    ``uv`` when the UV layout has seams (its own vertices); default: ``r.tri``.
    """
    if texture_img.dim() == 3:
        texture_img = texture_img[None]
    if texture_img.dim() != 4:
        raise ValueError(f"texture_img must be [B,C,Ht,Wt] or [C,Ht,Wt], got {list(texture_img.shape)}")
    tri = r.tri if uv_faces is None else uv_faces.to(device=r.pos.device, dtype=torch.int32).contiguous()
    if uv.dim() == 2:
        uv = uv[None].expand(r.pos.shape[0], -1, -1)
    uv_img, _ = dr.interpolate(uv.to(r.pos.dtype).contiguous(), r.rast, tri)
    tex = image_to_nv(texture_img.to(r.pos.dtype))  # bottom-up rows: v = 0 is texel row 0, as nvdiffrast wants
    col = dr.texture(tex, uv_img.contiguous(), filter_mode=filter_mode, boundary_mode=boundary_mode)
    col = col * (r.rast[..., 3:4] > 0)
    if antialias:
        col = dr.antialias(col.contiguous(), r.rast, r.pos, r.tri)
    return flip_rows(col)


def lambertian(albedo: torch.Tensor, normals: torch.Tensor, light_dir: torch.Tensor,
               ambient: torch.Tensor | float = 0.5, diffuse: torch.Tensor | float = 0.5) -> torch.Tensor:
    """Shade [B,C,H,W] albedo with [B,3,H,W] unit normals: ``albedo * (ambient + diffuse * max(0, n.l))``.

    light_dir: [B,3] or [3], pointing from the surface towards the light (normalised here).
    """
    if albedo.dim() != 4 or normals.dim() != 4 or normals.shape[1] != 3:
        raise ValueError(f"albedo must be [B,C,H,W] and normals [B,3,H,W], got "
                         f"{list(albedo.shape)} and {list(normals.shape)}")
    # Lights and coefficients may come as Python numbers or CPU tensors; put them beside the normals (CUDA).
    light = torch.nn.functional.normalize(torch.as_tensor(light_dir, dtype=normals.dtype, device=normals.device),
                                          dim=-1)
    if light.dim() == 1:
        light = light[None].expand(normals.shape[0], 3)
    cos = (normals * light[:, :, None, None]).sum(1, keepdim=True).clamp_min(0.0)
    amb = torch.as_tensor(ambient, dtype=normals.dtype, device=normals.device).reshape(-1, 1, 1, 1)
    dif = torch.as_tensor(diffuse, dtype=normals.dtype, device=normals.device).reshape(-1, 1, 1, 1)
    return albedo * (amb + dif * cos)
