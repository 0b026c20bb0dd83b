"""Mipmapped texturing: the PyTorch twin of nvdiffrast's ``linear-mipmap-*`` filter modes.

Conventions, read from nvdiffrast's ``common/texture.cpp`` / ``texture.cu`` / ``torch/ops.py``:

- **Pyramid.** Level k has size ``max(W >> k, 1)`` x ``max(H >> k, 1)``. Each texel is the
  box average of the 2x2 texels above it, ``0.25 * (v0 + v1 + v2 + v3)``; once one extent
  is 1, the other is halved by ``0.5 * (v0 + v1)``. An odd extent greater than 1 cannot be
  halved: nvdiffrast stops with "Mip-map size error", the twin raises ValueError (resize
  the texture or limit ``max_mip_level``). The pyramid ends at 1x1 or at ``max_mip_level``
  (None: no limit; a limit beyond the 1x1 level is allowed and changes nothing).
- **Level of detail.** From ``uv_da`` [..., 4] = (du/dX, du/dY, dv/dX, dv/dY) scaled to
  base-level texels (s = u * W, t = v * H), with A = |d(s,t)/dX|^2, B = |d(s,t)/dY|^2,
  C = their dot product: ``lod = 0.5 * log2(l2b + sqrt(0.25 (A-B)^2 + C^2))``, l2b = (A+B)/2,
  i.e. log2 of the footprint's major axis. ``mip_level_bias`` [B,H,W] is added (without
  ``uv_da`` the bias *is* the level), then the level is clamped to [0, max level].
- **Filtering.** ``linear-mipmap-nearest`` samples level ``floor(lod)`` bilinearly;
  ``linear-mipmap-linear`` lerps bilinear samples of levels ``floor(lod)`` and
  ``min(floor(lod) + 1, max)`` by the fraction. Each level uses the 2-D twin's texel
  centres and boundary modes with its own size.
- **Gradients** (autograd of these torch ops, as nvdiffrast returns them): ``tex`` (through
  the pyramid's box filter), ``uv``; ``uv_da`` and ``mip_level_bias`` in
  ``linear-mipmap-linear`` only (the floor in ``-nearest`` has none, and nvdiffrast returns
  None there). Where the footprint is exactly isotropic (A = B, C = 0) nvdiffrast's closed
  form divides by zero and it drops the level gradient; the twin does the same.
- ``mip``: a :class:`TextureMip` from :func:`texture_construct_mip` (built once and reused;
  level 0 is always the ``tex`` passed to ``texture``, and gradients of the coarser levels
  still reach ``tex`` through the box filter, as in nvdiffrast), or a list of tensors for
  levels 1.. (a custom stack: those tensors get their own gradients, ``tex`` none from them).

Cube maps reuse the pyramid, the level formula and the flat level storage below
(:mod:`csmlab.dr.cube`).
"""

from __future__ import annotations

import math

import torch

from csmlab.dr.checks import describe

INV_2LN2 = 0.5 / math.log(2.0)  # 0.5 * log2(x) = INV_2LN2 * ln(x)


# ----------------------------------------------------------------------------- pyramid

def mip_sizes(height: int, width: int, max_mip_level=None) -> list[tuple[int, int]]:
    """(h, w) of every level, base first, as nvdiffrast's ``calculateMipInfo`` walks them."""
    sizes = [(height, width)]
    h, w = height, width
    while (h > 1 or w > 1) and (max_mip_level is None or len(sizes) - 1 < max_mip_level):
        if (w > 1 and w % 2) or (h > 1 and h % 2):
            raise ValueError(
                f"tex of spatial size {height}x{width} cannot be mipmapped: level {len(sizes) - 1} "
                f"is {h}x{w} and an odd extent greater than 1 cannot be halved (nvdiffrast's "
                f"'Mip-map size error'); resize tex to powers of two or lower max_mip_level "
                f"(got {max_mip_level!r}; at most {len(sizes) - 1} works here)")
        h, w = max(h // 2, 1), max(w // 2, 1)
        sizes.append((h, w))
    return sizes


def downsample(x: torch.Tensor) -> torch.Tensor:
    """One pyramid step for x [N, H, W, C], the box filter of nvdiffrast's MipBuildKernel."""
    _, h, w, _ = x.shape
    if h == 1:
        return 0.5 * (x[:, :, 0::2] + x[:, :, 1::2])
    if w == 1:
        return 0.5 * (x[:, 0::2] + x[:, 1::2])
    return 0.25 * (x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2])


def build_levels(planes: torch.Tensor, max_mip_level=None) -> list[torch.Tensor]:
    """All levels of planes [N, H, W, C] (N = minibatch, or minibatch * 6 for cube maps)."""
    sizes = mip_sizes(planes.shape[1], planes.shape[2], max_mip_level)
    levels = [planes]
    for _ in sizes[1:]:
        levels.append(downsample(levels[-1]))
    return levels


def upsample_adjoint(g: torch.Tensor, finer_shape) -> torch.Tensor:
    """The transpose of :func:`downsample`: spreads a coarse gradient onto the finer level."""
    _, h, w, _ = finer_shape
    if h == 1:
        return (0.5 * g).repeat_interleave(2, dim=2)
    if w == 1:
        return (0.5 * g).repeat_interleave(2, dim=1)
    return (0.25 * g).repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)


class TextureMip:
    """A prebuilt mip stack (what :func:`texture_construct_mip` returns); opaque to callers."""

    def __init__(self, levels, max_mip_level, cube_mode, base_shape):
        self.levels = levels              # levels 1.. as detached [N, h, w, C] tensors
        self.max_mip_level = max_mip_level
        self.cube_mode = cube_mode
        self.base_shape = tuple(base_shape)

    def __repr__(self):
        return (f"TextureMip(base_shape={self.base_shape}, levels={len(self.levels) + 1}, "
                f"cube_mode={self.cube_mode})")


def check_max_mip_level(max_mip_level):
    if max_mip_level is not None and (isinstance(max_mip_level, bool)
                                      or not isinstance(max_mip_level, int) or max_mip_level < 0):
        raise ValueError(f"max_mip_level must be None or an int >= 0, got {max_mip_level!r}")


def as_planes(tex: torch.Tensor, cube_mode: bool) -> torch.Tensor:
    """tex [Bt,H,W,C] (or cube [Bt,6,H,W,C]) as [N,H,W,C] planes."""
    return tex.reshape(-1, *tex.shape[-3:]) if cube_mode else tex


def texture_construct_mip(tex, max_mip_level=None, cube_mode=False) -> TextureMip:
    """``nvdiffrast.torch.texture_construct_mip``: build the pyramid once for a constant texture."""
    if not isinstance(tex, torch.Tensor):
        raise ValueError(f"tex must be a torch.Tensor, got {describe(tex)}")
    if cube_mode not in (True, False):
        raise ValueError(f"cube_mode must be True or False, got {cube_mode!r}")
    check_max_mip_level(max_mip_level)
    want = 5 if cube_mode else 4
    if tex.dim() != want or (cube_mode and (tex.shape[1] != 6 or tex.shape[2] != tex.shape[3])):
        form = "[Bt, 6, H, H, C]" if cube_mode else "[Bt, H, W, C]"
        raise ValueError(f"tex must be {form} for cube_mode={cube_mode}, got {describe(tex)}")
    with torch.no_grad():
        levels = build_levels(as_planes(tex.detach(), cube_mode), max_mip_level)
    return TextureMip(levels[1:], max_mip_level, cube_mode, tex.shape)


class _ReuseLevels(torch.autograd.Function):
    """Prebuilt levels 1.. in the forward; their gradients folded into tex in the backward."""

    @staticmethod
    def forward(ctx, planes, *levels):
        ctx.shapes = [planes.shape] + [lv.shape for lv in levels]
        return tuple(lv.clone() for lv in levels)

    @staticmethod
    def backward(ctx, *grads):
        g = None
        for k in range(len(grads), 0, -1):  # coarsest first: g_{k-1} += adjoint(g_k)
            gk = grads[k - 1] if g is None else grads[k - 1] + g
            g = upsample_adjoint(gk, ctx.shapes[k - 1])
        return (g,) + (None,) * len(grads)


def resolve_levels(tex, planes, mip, max_mip_level, cube_mode):
    """The list of level tensors [N, h, w, C], base first, for one texture call."""
    if mip is None:
        return build_levels(planes, max_mip_level)
    if isinstance(mip, TextureMip):
        if mip.cube_mode != cube_mode or mip.base_shape != tuple(tex.shape):
            raise ValueError(f"mip was built for tex of shape {mip.base_shape} with cube_mode="
                             f"{mip.cube_mode}, but tex is {describe(tex)} (cube={cube_mode})")
        levels = [lv.to(planes.dtype) for lv in mip.levels]
        if planes.requires_grad and levels:
            levels = list(_ReuseLevels.apply(planes, *levels))
        return [planes] + levels
    if isinstance(mip, (list, tuple)) and all(isinstance(m, torch.Tensor) for m in mip):
        sizes = mip_sizes(planes.shape[1], planes.shape[2], len(mip))
        levels = [as_planes(m, cube_mode) for m in mip]
        for k, lv in enumerate(levels, start=1):
            if k >= len(sizes) or tuple(lv.shape) != (planes.shape[0], *sizes[k], planes.shape[3]):
                want = (planes.shape[0], *sizes[k], planes.shape[3]) if k < len(sizes) else "none"
                raise ValueError(f"mip[{k - 1}] (level {k}) must have planes of shape {want}, "
                                 f"got {describe(mip[k - 1])}")
        return [planes] + levels
    raise ValueError(f"mip must be None, a TextureMip from texture_construct_mip, or a list of "
                     f"tensors, got {describe(mip)}")


# ----------------------------------------------------------------------------- level of detail

def level_of_detail(uv_da, mip_level_bias, height, width, max_level):
    """nvdiffrast's ``calculateMipLevel``: the clamped fractional level [B, H, W] (float)."""
    if uv_da is None:
        flevel = mip_level_bias
    else:
        dsdx, dsdy = uv_da[..., 0] * width, uv_da[..., 1] * width
        dtdx, dtdy = uv_da[..., 2] * height, uv_da[..., 3] * height
        a = dsdx * dsdx + dtdx * dtdx
        b = dsdy * dsdy + dtdy * dtdy
        c = dsdx * dsdy + dtdx * dtdy
        l2b = 0.5 * (a + b)
        l2n = 0.25 * (a - b) * (a - b) + c * c
        positive = l2n > 0
        # sqrt with a zero (not infinite) derivative at 0, so the masked pixels stay finite.
        l2a = torch.where(positive, torch.sqrt(torch.where(positive, l2n, torch.ones_like(l2n))),
                          torch.zeros_like(l2n))
        flevel = INV_2LN2 * torch.log(l2b + l2a)
        # nvdiffrast zeroes the level gradient where its closed form is not finite
        # (l2n + l2a * l2b == 0: isotropic or degenerate footprints).
        finite_grad = (l2n + l2a * l2b).detach() > 0
        flevel = torch.where(finite_grad, flevel, flevel.detach())
        if mip_level_bias is not None:
            flevel = flevel + mip_level_bias
    # log2(0) = -inf and NaN clamp to level 0 (nvdiffrast: "May be inf/NaN, but clamp fixes it").
    flevel = torch.nan_to_num(flevel, nan=0.0, neginf=0.0, posinf=float(max_level))
    return flevel.clamp(0.0, float(max_level))


def split_level(flevel, max_level, filter_mode):
    """(level0, level1, fraction) as nvdiffrast derives them from the clamped level."""
    level0 = torch.floor(flevel.detach()).long().clamp(0, max_level)
    if filter_mode == "linear-mipmap-nearest":
        return level0, None, None
    level1 = (level0 + 1).clamp(max=max_level)
    return level0, level1, flevel - level0.to(flevel.dtype)


# ----------------------------------------------------------------------------- flat storage

class FlatLevels:
    """Every level's texels in one [sum N*h*w, C] tensor, so that one gather serves pixels that
    sit on different levels; ``index`` turns (level, plane, row, column) into a row of it."""

    def __init__(self, levels):
        self.flat = torch.cat([lv.reshape(-1, lv.shape[-1]) for lv in levels], dim=0)
        device = levels[0].device
        self.heights = torch.tensor([lv.shape[1] for lv in levels], device=device)
        self.widths = torch.tensor([lv.shape[2] for lv in levels], device=device)
        counts = torch.tensor([lv[..., 0].numel() for lv in levels], device=device)
        self.offsets = torch.cumsum(counts, 0) - counts

    def index(self, level, plane, iy, ix):
        h, w = self.heights[level], self.widths[level]
        return self.offsets[level] + (plane * h + iy) * w + ix

    def gather(self, idx, valid=None):
        """Rows ``idx`` (any shape) -> [..., C]; rows where ``valid`` is False read zero."""
        safe = idx if valid is None else torch.where(valid, idx, torch.zeros_like(idx))
        out = self.flat.index_select(0, safe.reshape(-1)).view(*idx.shape, self.flat.shape[-1])
        if valid is not None:
            out = out * valid.unsqueeze(-1).to(out.dtype)
        return out


def sample_level_2d(store: FlatLevels, level, plane, u, v, boundary_mode):
    """Bilinear lookup of uv on a per-pixel ``level`` [B,H,W] -> [B,H,W,C] (the 2-D twin's rules)."""
    from csmlab.dr.texture_twin import _taps  # one place for the per-axis tap rules

    hl, wl = store.heights[level], store.widths[level]  # per-pixel level sizes (long)
    if boundary_mode == "wrap":
        u = u - torch.floor(u.detach())
        v = v - torch.floor(v.detach())
    x0, x1, fx = _taps(u * wl.to(u.dtype) - 0.5, wl, boundary_mode)
    y0, y1, fy = _taps(v * hl.to(v.dtype) - 0.5, hl, boundary_mode)
    iy = torch.stack([y0, y0, y1, y1])
    ix = torch.stack([x0, x1, x0, x1])
    hl, wl = hl.unsqueeze(0), wl.unsqueeze(0)
    valid = (ix >= 0) & (ix < wl) & (iy >= 0) & (iy < hl)
    iy = torch.minimum(iy.clamp(min=0), hl - 1)
    ix = torch.minimum(ix.clamp(min=0), wl - 1)
    texels = store.gather(store.index(level.unsqueeze(0), plane, iy, ix),
                          valid if boundary_mode == "zero" else None)
    a00, a10, a01, a11 = texels.unbind(0)
    fx, fy = fx.unsqueeze(-1), fy.unsqueeze(-1)
    top = a00 + fx * (a10 - a00)
    bottom = a01 + fx * (a11 - a01)
    return top + fy * (bottom - top)


def blend_levels(sample, level0, level1, frac):
    """nvdiffrast's trilinear step: ``lerp(a, b, frac)`` (just ``a`` in mipmap-nearest)."""
    a = sample(level0)
    if level1 is None:
        return a
    b = sample(level1)
    return a + frac.unsqueeze(-1) * (b - a)


def texture_mipmap_2d(tex, uv, uv_da, mip_level_bias, mip, filter_mode, boundary_mode,
                      max_mip_level):
    """Mipmapped lookup of a 2-D texture [Bt,Ht,Wt,C] (inputs already validated)."""
    levels = resolve_levels(tex, tex, mip, max_mip_level, cube_mode=False)
    max_level = len(levels) - 1
    store = FlatLevels(levels)
    flevel = level_of_detail(uv_da, mip_level_bias, tex.shape[1], tex.shape[2], max_level)
    level0, level1, frac = split_level(flevel, max_level, filter_mode)
    batch = uv.shape[0]
    plane = (torch.arange(batch, device=uv.device).view(-1, 1, 1) if tex.shape[0] > 1
             else torch.zeros(1, 1, 1, dtype=torch.long, device=uv.device))
    u, v = uv[..., 0], uv[..., 1]
    return blend_levels(lambda lv: sample_level_2d(store, lv, plane, u, v, boundary_mode),
                        level0, level1, frac)
