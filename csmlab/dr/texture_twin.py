"""Texture sampling: the pure-PyTorch twin of ``nvdiffrast.torch.texture``.

``texture_torch(tex, uv, ...)`` has nvdiffrast's signature, output and conventions:

- ``tex`` is [Bt, Ht, Wt, C] and ``uv`` is [B, H, W, 2]; the result is [B, H, W, C].
  ``Bt`` is 1 (one texture shared by the whole minibatch) or equal to ``B``.
- ``u`` indexes the texture width and ``v`` its height; texel row 0 is at v ~ 0.
  Texel centres sit at ``(i + 0.5) / Wt``, so the continuous texel coordinate
  of ``u`` is ``u * Wt - 0.5`` (and ``v * Ht - 0.5``).
- ``filter_mode``:
  * ``'nearest'``: the texel ``floor(u * Wt)``, ``floor(v * Ht)``. Gradients reach
    ``tex`` only (``uv`` gets none, as in nvdiffrast).
  * ``'linear'``: bilinear between the four texels around ``u * Wt - 0.5``.
    Differentiable with respect to ``tex`` and ``uv``.
  * ``'linear-mipmap-nearest'`` / ``'linear-mipmap-linear'``: see :mod:`csmlab.dr.mipmap`
    (pyramid, level of detail from ``uv_da`` and ``mip_level_bias``, ``mip``, gradients).
    As in nvdiffrast, ``max_mip_level=0`` turns them into plain ``'linear'``.
  * ``'auto'``: ``'linear'`` when neither ``uv_da`` nor ``mip_level_bias`` is given,
    ``'linear-mipmap-linear'`` otherwise (nvdiffrast's rule).
- ``boundary_mode``:
  * ``'wrap'``: uv is reduced to its fractional part first (``u - floor(u)``), and the
    bilinear footprint wraps around the texture edges.
  * ``'clamp'``: the texel coordinate is clamped to the centres of the border texels;
    when it sits exactly on the border both taps are the same texel, so the uv gradient
    is zero there (as in nvdiffrast).
  * ``'zero'``: the texture is extended with zeros in every direction; each of the four
    bilinear taps (or the single nearest tap) outside the texture reads 0.
  * ``'cube'``: cube maps, ``tex`` [Bt, 6, H, H, C] and ``uv`` [B, H, W, 3] directions; see
    :mod:`csmlab.dr.cube`.

On CPU this PyTorch twin *is* the texture path (no compiled kernel for texturing).

Numerics follow nvdiffrast's kernel (``u - floor(u)`` for wrap, then ``u*W - 0.5``, and
``a + t * (b - a)`` lerps), so float32 results agree to rounding. nvdiffrast only takes
float32; the twin also takes float64 (handy for gradcheck).
"""

from __future__ import annotations

import torch

from csmlab.dr.checks import (
    FLOAT_DTYPES,
    check_choice,
    check_same_device,
    check_tensor,
    describe,
)
from csmlab.dr.mipmap import check_max_mip_level, texture_mipmap_2d

FILTER_MODES = ("auto", "nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear")
BOUNDARY_MODES = ("wrap", "clamp", "zero", "cube")


def texture_torch(tex, uv, uv_da=None, mip_level_bias=None, mip=None, filter_mode="auto",
                  boundary_mode="wrap", max_mip_level=None):
    """Sample ``tex`` [Bt,Ht,Wt,C] at ``uv`` [B,H,W,2] -> [B,H,W,C] (see module docstring)."""
    filter_mode = _resolve_filter_mode(filter_mode, uv_da, mip_level_bias, max_mip_level)
    check_choice("boundary_mode", boundary_mode, BOUNDARY_MODES)
    if boundary_mode == "cube":
        from csmlab.dr.cube import texture_cube  # cube maps: their own module
        return texture_cube(tex, uv, uv_da, mip_level_bias, mip, filter_mode, max_mip_level)
    _check_tex_uv(tex, uv)
    if "mipmap" in filter_mode:
        check_mip_inputs(uv, uv_da, mip_level_bias, coord_dim=2)
        return texture_mipmap_2d(tex, uv, uv_da, mip_level_bias, mip, filter_mode, boundary_mode,
                                 max_mip_level)
    if filter_mode == "nearest":
        return _sample_nearest(tex, uv, boundary_mode)
    return _sample_linear(tex, uv, boundary_mode)


# ----------------------------------------------------------------------------- validation

def _resolve_filter_mode(filter_mode, uv_da, mip_level_bias, max_mip_level):
    check_choice("filter_mode", filter_mode, FILTER_MODES)
    check_max_mip_level(max_mip_level)
    if filter_mode == "auto":
        has_mip_info = uv_da is not None or mip_level_bias is not None
        filter_mode = "linear-mipmap-linear" if has_mip_info else "linear"
    if "mipmap" in filter_mode:
        if uv_da is None and mip_level_bias is None:
            raise ValueError(f"filter_mode={filter_mode!r} needs uv_da or mip_level_bias "
                             "(a tensor), got neither")
        # nvdiffrast's own shortcut: with mipmapping capped at level 0 it filters plain linear.
        if max_mip_level == 0:
            return "linear"
    return filter_mode


def check_mip_inputs(uv, uv_da, mip_level_bias, coord_dim):
    """uv_da [B,H,W,2*coord_dim] and mip_level_bias [B,H,W], same dtype/device as uv."""
    if uv_da is not None:
        check_tensor("uv_da", uv_da, dtypes=(uv.dtype,))
        if tuple(uv_da.shape) != (*uv.shape[:-1], 2 * coord_dim):
            raise ValueError(f"uv_da must have shape {(*uv.shape[:-1], 2 * coord_dim)} (uv's with a "
                             f"last dimension twice as long), got {describe(uv_da)}")
    if mip_level_bias is not None:
        check_tensor("mip_level_bias", mip_level_bias, dtypes=(uv.dtype,))
        if tuple(mip_level_bias.shape) != tuple(uv.shape[:-1]):
            raise ValueError(f"mip_level_bias must have shape {tuple(uv.shape[:-1])} ([B, H, W]), "
                             f"got {describe(mip_level_bias)}")
    check_same_device(uv=uv, uv_da=uv_da, mip_level_bias=mip_level_bias)


def _check_tex_uv(tex, uv):
    check_tensor("tex", tex, ndim=4, dtypes=FLOAT_DTYPES)
    check_tensor("uv", uv, ndim=4, last_dim=2, dtypes=(tex.dtype,))
    if min(tex.shape) < 1 or min(uv.shape) < 1:
        raise ValueError(f"tex [Bt, Ht, Wt, C] and uv [B, H, W, 2] must have all sizes > 0, "
                         f"got tex {describe(tex)} and uv {describe(uv)}")
    check_same_device(tex=tex, uv=uv)
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ValueError(f"tex minibatch must be 1 or equal to uv's ({uv.shape[0]}), got {describe(tex)}")


# ----------------------------------------------------------------------------- sampling

def _gather(tex, iy, ix):
    """Texels tex[b, iy, ix] for integer maps iy, ix [K,B,H,W] (in range) -> [K,B,H,W,C].

    One ``index_select`` for all K taps: its backward is an ``index_add`` into the texture,
    much faster on CPU than the accumulate-scatter of advanced indexing.
    """
    bt, ht, wt, c = tex.shape
    idx = iy * wt + ix
    if bt > 1:  # one texture per minibatch item; bt == 1 broadcasts
        idx = idx + torch.arange(idx.shape[1], device=idx.device).view(1, -1, 1, 1) * (ht * wt)
    flat = tex.reshape(bt * ht * wt, c)
    return flat.index_select(0, idx.reshape(-1)).view(*idx.shape, c)


def _sample_nearest(tex, uv, boundary_mode):
    _, ht, wt, _ = tex.shape
    u, v = uv[..., 0].detach(), uv[..., 1].detach()  # nearest carries no uv gradient
    if boundary_mode == "wrap":
        u = u - torch.floor(u)
        v = v - torch.floor(v)
    ix = _floor_to_long(u * wt)
    iy = _floor_to_long(v * ht)
    inside = (ix >= 0) & (ix < wt) & (iy >= 0) & (iy < ht)
    # wrap can still land on index W when u - floor(u) rounds to 1.0; nvdiffrast clamps then.
    out = _gather(tex, iy.clamp(0, ht - 1).unsqueeze(0), ix.clamp(0, wt - 1).unsqueeze(0))[0]
    if boundary_mode == "zero":
        out = out * inside.unsqueeze(-1).to(out.dtype)
    return out


def _sample_linear(tex, uv, boundary_mode):
    _, ht, wt, _ = tex.shape
    u, v = uv[..., 0], uv[..., 1]
    if boundary_mode == "wrap":
        u = u - torch.floor(u.detach())
        v = v - torch.floor(v.detach())
    x = u * wt - 0.5  # continuous texel coordinate: texel centres at integers
    y = v * ht - 0.5
    x0, x1, fx = _taps(x, wt, boundary_mode)
    y0, y1, fy = _taps(y, ht, boundary_mode)
    fx, fy = fx.unsqueeze(-1), fy.unsqueeze(-1)

    # The four taps (y0,x0), (y0,x1), (y1,x0), (y1,x1) in one gather.
    iy = torch.stack([y0, y0, y1, y1])
    ix = torch.stack([x0, x1, x0, x1])
    texels = _gather(tex, iy.clamp(0, ht - 1), ix.clamp(0, wt - 1))
    if boundary_mode == "zero":  # taps outside the texture read zero
        inside = (ix >= 0) & (ix < wt) & (iy >= 0) & (iy < ht)
        texels = texels * inside.unsqueeze(-1).to(texels.dtype)
    a00, a10, a01, a11 = texels.unbind(0)
    top = a00 + fx * (a10 - a00)  # same lerp form as nvdiffrast: a + t * (b - a)
    bottom = a01 + fx * (a11 - a01)
    return top + fy * (bottom - top)


def _taps(x, size, boundary_mode):
    """Integer taps (i0, i1) and the differentiable fraction for one axis of bilinear filtering."""
    if boundary_mode == "clamp":
        # size may be a per-pixel tensor (mip levels of different sizes), hence minimum().
        x = torch.minimum(x.clamp(min=0.0), torch.as_tensor(size - 1.0, dtype=x.dtype, device=x.device))
        # On the border both taps are the same texel, so the fraction has no effect (and
        # the uv gradient is zero), exactly like nvdiffrast's clampU/clampV.
        on_border = (x.detach() == 0.0) | (x.detach() == size - 1.0)
    i0 = _floor_to_long(x.detach())
    frac = x - i0.to(x.dtype)
    i1 = i0 + 1
    if boundary_mode == "clamp":
        i1 = torch.where(on_border, i0, i1)
    elif boundary_mode == "wrap":
        i0 = torch.where(i0 < 0, i0 + size, i0)
        i1 = torch.where(i1 >= size, i1 - size, i1)
    return i0, i1, frac


def _floor_to_long(x):
    # Non-finite coordinates would make the integer cast undefined; map them far outside so
    # that the later clamp/zero logic handles them (the output is NaN there anyway).
    x = torch.nan_to_num(torch.floor(x), nan=-1.0, posinf=2.0 ** 30, neginf=-(2.0 ** 30))
    return x.clamp(-(2.0 ** 30), 2.0 ** 30).long()
