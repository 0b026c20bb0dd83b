"""Cube-map texturing (``boundary_mode='cube'``): the PyTorch twin of nvdiffrast's cube mode.

Conventions, read from nvdiffrast's ``common/texture.cu`` (``indexCubeMap``, ``wrapCubeMap``,
``indexCubeMapGradST``, ``fetchQuad``):

- ``tex`` is [Bt, 6, S, S, C] (square faces), ``uv`` [B, H, W, 3] lookup directions (any
  length), ``uv_da`` [B, H, W, 6] = (dx/dX, dx/dY, dy/dX, dy/dY, dz/dX, dz/dY).
- **Face** by the largest axis, faces ordered +x, -x, +y, -y, +z, -z (0..5); ties go to
  z only when |z| is strictly largest, then to y when |y| > |x|, else to x.
- **Face coordinates** (s, t) in [0, 1] (s indexes the width, t the rows), with c the major
  component: +x: s = 0.5 - z/2|c|, t = 0.5 - y/2|c|;  -x: s = 0.5 + z/2|c|, t = 0.5 - y/2|c|;
  +y: s = 0.5 + x/2|c|, t = 0.5 + z/2|c|;  -y: s = 0.5 + x/2|c|, t = 0.5 - z/2|c|;
  +z: s = 0.5 + x/2|c|, t = 0.5 - y/2|c|;  -z: s = 0.5 - x/2|c|, t = 0.5 - y/2|c|.
  A direction whose (s, t) is not finite (e.g. the zero vector) reads 0 and gets no gradient.
- **Filtering** is the 2-D twin's (texel centres at (i + 0.5) / S), except that a bilinear
  tap beyond a face edge reads the adjacent face's border texel at the same place along the
  shared edge, and the tap beyond a face *corner* (where three faces meet) reads the average
  of the other three taps. The twin finds the adjacent texel geometrically: the point just
  beyond the edge, on the extended face plane, is projected onto the cube again.
- **Mipmaps**: every face is its own pyramid (:mod:`csmlab.dr.mipmap`); the level of detail
  uses d(s,t)/d(X,Y) = d(s,t)/d(x,y,z) . d(x,y,z)/d(X,Y), scaled by the face size.
- Gradients reach ``tex``, ``uv`` (also through the level of detail, as nvdiffrast's
  cube mode does), ``uv_da`` and ``mip_level_bias``, by autograd of these torch ops.
"""

from __future__ import annotations

import torch

from csmlab.dr.checks import FLOAT_DTYPES, check_same_device, check_tensor, describe
from csmlab.dr.mipmap import (
    FlatLevels,
    blend_levels,
    level_of_detail,
    resolve_levels,
    split_level,
)

# Per face (+x, -x, +y, -y, +z, -z): the axes of s and t and their signs, s = 0.5 + k_s p / 2|c|.
S_AXIS = torch.tensor([2, 2, 0, 0, 0, 0])
T_AXIS = torch.tensor([1, 1, 2, 2, 1, 1])
K_S = torch.tensor([-1.0, 1.0, 1.0, 1.0, 1.0, -1.0])
K_T = torch.tensor([-1.0, -1.0, 1.0, -1.0, -1.0, -1.0])
EDGE_NUDGE = 1e-7  # how far beyond a face edge the neighbour lookup steps (in face units)


def _check_cube_inputs(tex, uv, uv_da, mip_level_bias):
    check_tensor("tex", tex, dtypes=FLOAT_DTYPES)
    if tex.dim() != 5 or tex.shape[1] != 6 or tex.shape[2] != tex.shape[3] or min(tex.shape) < 1:
        raise ValueError(f"tex must be [Bt, 6, S, S, C] (six square faces) for boundary_mode='cube', "
                         f"got {describe(tex)}")
    check_tensor("uv", uv, ndim=4, last_dim=3, dtypes=(tex.dtype,))
    check_same_device(tex=tex, uv=uv)
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ValueError(f"tex minibatch must be 1 or equal to uv's ({uv.shape[0]}), got {describe(tex)}")
    from csmlab.dr.texture_twin import check_mip_inputs
    check_mip_inputs(uv, uv_da, mip_level_bias, coord_dim=3)


def face_coordinates(uv):
    """(face [B,H,W] long, s, t differentiable, valid mask) of directions uv [B,H,W,3]."""
    ax, ay, az = uv.detach().abs().unbind(-1)
    face = torch.where(az > torch.maximum(ax, ay), 4, torch.where(ay > ax, 2, 0))
    major = torch.gather(uv, -1, (face // 2).unsqueeze(-1)).squeeze(-1)
    face = face + (major.detach() < 0).long()
    dev = uv.device
    p = torch.gather(uv, -1, S_AXIS.to(dev)[face].unsqueeze(-1)).squeeze(-1)
    q = torch.gather(uv, -1, T_AXIS.to(dev)[face].unsqueeze(-1)).squeeze(-1)
    # Where 1/|c| is not finite the lookup is invalid; a stand-in c = 1 keeps gradients finite.
    usable = (major.detach() != 0) & torch.isfinite(uv.detach()).all(-1)
    half = 0.5 / torch.where(usable, major, torch.ones_like(major)).abs()
    s = p * K_S.to(dev, uv.dtype)[face] * half + 0.5
    t = q * K_T.to(dev, uv.dtype)[face] * half + 0.5
    valid = usable & torch.isfinite(s.detach()) & torch.isfinite(t.detach())
    # Invalid lookups (masked to 0 by the caller) sit at the face centre, so that their taps
    # need no neighbour search across a face edge (background pixels are often all of them).
    centre = torch.full_like(s, 0.5)
    s, t = torch.where(valid, s, centre).clamp(0.0, 1.0), torch.where(valid, t, centre).clamp(0.0, 1.0)
    return face, s, t, valid


def face_direction(face, s, t):
    """The inverse map: the point (s, t) of ``face`` on the cube [-1, 1]^3 (any s, t)."""
    a, b = 2.0 * s - 1.0, 2.0 * t - 1.0
    one = torch.ones_like(a)
    table = [(one, -b, -a), (-one, -b, a), (a, one, b), (a, -one, -b), (a, -b, one), (-a, -b, -one)]
    out = torch.zeros(*face.shape, 3, dtype=a.dtype, device=a.device)
    for f, vec in enumerate(table):
        out = torch.where((face == f).unsqueeze(-1), torch.stack(vec, -1), out)
    return out


@torch.no_grad()
def neighbour_texel(face, ix, iy, size):
    """(face, ix, iy) of the texel across the edge for taps with exactly one index outside
    [0, size); callers mask out the rest. All arguments are long tensors of one shape."""
    size_f = size.to(torch.float64)

    def beyond(i):
        inside = (i.to(torch.float64) + 0.5) / size_f
        return torch.where(i < 0, -EDGE_NUDGE, torch.where(i >= size, 1.0 + EDGE_NUDGE, inside))

    nface, s, t, _ = face_coordinates(face_direction(face, beyond(ix), beyond(iy)))
    nix = torch.minimum(torch.floor(s * size_f).long().clamp(min=0), size - 1)
    niy = torch.minimum(torch.floor(t * size_f).long().clamp(min=0), size - 1)
    return nface, nix, niy


def sample_level_cube(store: FlatLevels, level, batch_plane, face, s, t):
    """Bilinear lookup with cube-edge wrapping on a per-pixel ``level`` -> [B,H,W,C]."""
    size = store.widths[level]
    x = s * size.to(s.dtype) - 0.5
    y = t * size.to(t.dtype) - 0.5
    x0, y0 = torch.floor(x.detach()).long(), torch.floor(y.detach()).long()
    fx, fy = (x - x0.to(x.dtype)).unsqueeze(-1), (y - y0.to(y.dtype)).unsqueeze(-1)
    ix = torch.stack([x0, x0 + 1, x0, x0 + 1])
    iy = torch.stack([y0, y0, y0 + 1, y0 + 1])
    size4, face4 = size.expand_as(ix), face.expand_as(ix)
    out_x, out_y = (ix < 0) | (ix >= size4), (iy < 0) | (iy >= size4)
    corner = out_x & out_y
    # Only the few taps just across one face edge need the (float64, geometric) neighbour search.
    across = out_x ^ out_y
    face4, ix, iy = face4.clone(), ix.clone(), iy.clone()
    face4[across], ix[across], iy[across] = neighbour_texel(face4[across], ix[across], iy[across], size4[across])
    ix, iy = ix.clamp(min=0), iy.clamp(min=0)
    ix, iy = torch.minimum(ix, size4 - 1), torch.minimum(iy, size4 - 1)
    idx = store.index(level.unsqueeze(0), batch_plane * 6 + face4, iy, ix)
    texels = store.gather(idx, ~corner)
    # The tap beyond a corner takes the average of the other three (nvdiffrast's fetchQuad).
    has_corner = corner.any(0, keepdim=True).unsqueeze(-1)
    avg = texels.sum(0, keepdim=True) * (1.0 / 3.0)
    texels = torch.where(corner.unsqueeze(-1) & has_corner, avg.expand_as(texels), texels)
    a00, a10, a01, a11 = texels.unbind(0)
    top = a00 + fx * (a10 - a00)
    bottom = a01 + fx * (a11 - a01)
    return top + fy * (bottom - top)


def face_uv_da(uv, uv_da, face):
    """d(s,t)/d(X,Y) [..., 4] = (ds/dX, ds/dY, dt/dX, dt/dY) from uv_da [..., 6]."""
    dev = uv.device
    d = uv_da.view(*uv_da.shape[:-1], 3, 2)                         # [..., xyz, XY]
    major_axis = (face // 2).unsqueeze(-1)
    c = torch.gather(uv, -1, major_axis)
    c = torch.where(c.detach() != 0, c, torch.ones_like(c))  # invalid lookups: finite stand-in
    dc = torch.gather(d, -2, major_axis.unsqueeze(-1).expand(*face.shape, 1, 2)).squeeze(-2)
    out = []
    for axes, signs in ((S_AXIS, K_S), (T_AXIS, K_T)):
        ax = axes.to(dev)[face].unsqueeze(-1)
        p = torch.gather(uv, -1, ax)
        dp = torch.gather(d, -2, ax.unsqueeze(-1).expand(*face.shape, 1, 2)).squeeze(-2)
        k = signs.to(dev, uv.dtype)[face].unsqueeze(-1)
        out.append(k * 0.5 / c.abs() * (dp - p * dc / c))            # d(p / 2|c|) * k
    ds, dt = out
    return torch.cat([ds, dt], -1)


def texture_cube(tex, uv, uv_da, mip_level_bias, mip, filter_mode, max_mip_level):
    """Cube-map lookup; ``filter_mode`` already resolved by the texture twin."""
    _check_cube_inputs(tex, uv, uv_da, mip_level_bias)
    face, s, t, valid = face_coordinates(uv)
    per_image = tex.shape[0] > 1
    batch_plane = (torch.arange(uv.shape[0], device=uv.device).view(-1, 1, 1) if per_image
                   else torch.zeros(1, 1, 1, dtype=torch.long, device=uv.device))
    if bool(valid.all()) or not bool(valid.any()):
        out = _lookup(tex, uv, uv_da, mip_level_bias, mip, filter_mode, max_mip_level, face, s, t, batch_plane)
        return out * valid.unsqueeze(-1).to(out.dtype)
    # Only the valid lookups are computed (the zero directions of a background, often half
    # the image, read 0 and get no gradient anyway), as one [1, 1, N] image.
    sel = valid.nonzero(as_tuple=True)

    def pick(x):
        return None if x is None else x[sel].view(1, 1, *x[sel].shape)

    plane = sel[0].view(1, 1, -1) if per_image else batch_plane
    sub = _lookup(tex, pick(uv), pick(uv_da), pick(mip_level_bias), mip, filter_mode, max_mip_level,
                  pick(face), pick(s), pick(t), plane)
    return tex.new_zeros(*uv.shape[:3], tex.shape[-1]).index_put(sel, sub[0, 0])


def _lookup(tex, uv, uv_da, mip_level_bias, mip, filter_mode, max_mip_level, face, s, t, batch_plane):
    """The filtered lookup at (face, s, t) [B, H, W] -> [B, H, W, C], invalid lookups not masked."""
    size = tex.shape[2]
    if filter_mode == "nearest":
        ix = (s.detach() * size).floor().long().clamp(0, size - 1)
        iy = (t.detach() * size).floor().long().clamp(0, size - 1)
        flat = tex.reshape(-1, tex.shape[-1])
        idx = ((batch_plane * 6 + face) * size + iy) * size + ix
        return flat.index_select(0, idx.reshape(-1)).view(*idx.shape, tex.shape[-1])
    planes = tex.reshape(-1, *tex.shape[2:])
    if "mipmap" in filter_mode:
        levels = resolve_levels(tex, planes, mip, max_mip_level, cube_mode=True)
        st_da = None
        if uv_da is not None:
            st_da = face_uv_da(uv, uv_da, face)
            st_da = torch.where(torch.isfinite(st_da.detach()), st_da, torch.zeros_like(st_da))
        flevel = level_of_detail(st_da, mip_level_bias, size, size, len(levels) - 1)
        level0, level1, frac = split_level(flevel, len(levels) - 1, filter_mode)
    else:
        levels = [planes]
        level0, level1, frac = torch.zeros_like(face), None, None
    store = FlatLevels(levels)
    return blend_levels(lambda lv: sample_level_cube(store, lv, batch_plane, face, s, t), level0, level1, frac)
