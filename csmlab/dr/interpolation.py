"""``interpolate_torch``: the pure-PyTorch twin of ``nvdiffrast.torch.interpolate``.

For a pixel drawn by triangle ``t`` (``rast[..., 3] = t + 1``) with barycentrics
(u, v) = ``rast[..., :2]``, the output is ``u a[tri[t,0]] + v a[tri[t,1]] + (1-u-v) a[tri[t,2]]``;
background pixels get 0. With ``rast_db`` and ``diff_attrs``, ``out_da`` holds for
each selected attribute s the pair (ds/dX, ds/dY) = (du/dX (s0-s2) + dv/dX (s1-s2),
du/dY (s0-s2) + dv/dY (s1-s2)); otherwise it is an empty [B, H, W, 0] tensor.

``attr`` is [B, V, C] (instanced mode; B may be 1 to broadcast) or [V, C] (range
mode, or one set of attributes for every image). Gradients flow to ``attr``, to
``rast``'s u and v, and (through ``out_da``) to ``rast_db``. The main output
uses a custom autograd function so that the [pixels, 3, C] gather is never
stored for the backward pass.
"""

from __future__ import annotations

import torch

from csmlab.dr.checks import FLOAT_DTYPES, INDEX_DTYPES, check_indices, check_same_device, check_tensor


class _Interpolate(torch.autograd.Function):
    """(attr_flat, u, v of covered pixels) -> out_flat; the gathers are recomputed in backward.

    Arrays are [K, C] with the barycentrics expanded to the same shape once: PyTorch is
    much slower at broadcasting a [K, 1] column than at same-shape element-wise work.
    """

    @staticmethod
    def forward(ctx, attr_flat, u, v, pix, vidx, n_pix):
        a0, a1, a2 = (attr_flat.index_select(0, vi) for vi in vidx)
        uu, vv = _expand(u, a0), _expand(v, a0)
        vals = a2 + (a0 - a2) * uu + (a1 - a2) * vv
        out = attr_flat.new_zeros(n_pix, attr_flat.shape[1]).index_copy_(0, pix, vals)
        ctx.save_for_backward(attr_flat, u, v, pix, *vidx)
        return out

    @staticmethod
    def backward(ctx, g_out):
        attr_flat, u, v, pix, *vidx = ctx.saved_tensors
        g = g_out.index_select(0, pix)                                      # [K, C]
        g_attr = g_u = g_v = None
        if ctx.needs_input_grad[0]:
            uu, vv = _expand(u, g), _expand(v, g)
            g_attr = torch.zeros_like(attr_flat)
            g_attr.index_add_(0, vidx[0], g * uu)
            g_attr.index_add_(0, vidx[1], g * vv)
            g_attr.index_add_(0, vidx[2], g - g * uu - g * vv)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            a0, a1, a2 = (attr_flat.index_select(0, vi) for vi in vidx)
            ones = g.new_ones(g.shape[1])
            g_u, g_v = (g * (a0 - a2)) @ ones, (g * (a1 - a2)) @ ones       # row sums, fast
        return g_attr, g_u, g_v, None, None, None


def _expand(col: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return col[:, None].expand_as(like).contiguous()


def _diff_attr_list(diff_attrs, n_attr: int) -> list[int]:
    """Normalise ``diff_attrs`` ('all' or a sequence of ints, negatives allowed) to indices."""
    if diff_attrs is None:
        return []
    if isinstance(diff_attrs, str):
        if diff_attrs != "all":
            raise ValueError(f"diff_attrs must be 'all' or a list of attribute indices, got {diff_attrs!r}")
        return list(range(n_attr))
    try:
        idx = [int(i) for i in diff_attrs]
        ok = all(int(i) == i for i in diff_attrs)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"diff_attrs must be 'all' or a list of attribute indices, got {diff_attrs!r}")
    bad = [i for i in idx if not -n_attr <= i < n_attr]
    if bad:
        raise ValueError(f"diff_attrs entries must lie in [-{n_attr}, {n_attr}) for {n_attr} attributes, "
                         f"got {bad}")
    return [i % n_attr for i in idx]


def _check_interpolate_inputs(attr, rast, tri, rast_db, want_da):
    check_tensor("attr", attr, ndim=(2, 3), dtypes=FLOAT_DTYPES)
    check_tensor("rast", rast, ndim=4, last_dim=4, dtypes=FLOAT_DTYPES)
    check_tensor("tri", tri, ndim=2, last_dim=3, dtypes=INDEX_DTYPES)
    check_same_device(attr=attr, rast=rast, tri=tri, rast_db=rast_db if want_da else None)
    if attr.dtype != rast.dtype:
        raise ValueError(f"attr and rast must share a dtype, got attr {attr.dtype} and rast {rast.dtype}")
    n_img = rast.shape[0]
    if attr.dim() == 3 and attr.shape[0] not in (1, n_img):
        raise ValueError(f"attr must be [1 or {n_img}, V, C] to match rast's {n_img} images, "
                         f"got shape {tuple(attr.shape)}")
    check_indices("tri", tri, attr.shape[-2])
    if want_da:
        if rast_db is None:
            raise ValueError("rast_db (the second output of rasterize) is required when diff_attrs is given, "
                             "got None")
        check_tensor("rast_db", rast_db, ndim=4, last_dim=4, dtypes=FLOAT_DTYPES)
        if rast_db.shape != rast.shape:
            raise ValueError(f"rast_db must have rast's shape {tuple(rast.shape)}, got {tuple(rast_db.shape)}")


def interpolate_torch(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                      rast_db: torch.Tensor | None = None, diff_attrs=None):
    """Interpolate vertex attributes over the rasterized triangles (see module docstring).

    Returns:
        out: [B, H, W, C].
        out_da: [B, H, W, 2 * len(diff_attrs)] image-space derivatives, or [B, H, W, 0].
    """
    check_tensor("attr", attr, ndim=(2, 3), dtypes=FLOAT_DTYPES)
    n_verts, n_attr = attr.shape[-2], attr.shape[-1]
    da_list = _diff_attr_list(diff_attrs, n_attr)
    _check_interpolate_inputs(attr, rast, tri, rast_db, want_da=bool(da_list))
    n_img, H, W, _ = rast.shape

    ids = rast.detach().reshape(-1, 4)[:, 3]
    if ids.numel() and float(ids.max()) > tri.shape[0]:
        raise ValueError(f"rast holds triangle ids up to {int(ids.max())} but tri has only "
                         f"{tri.shape[0]} triangles: rast must come from rasterize with this tri")
    pix = (ids > 0).nonzero().squeeze(1)
    tri_id = ids.index_select(0, pix).to(torch.int64) - 1
    tri_t = tri.to(torch.int64).t()
    vidx = [tri_t[i].index_select(0, tri_id) for i in range(3)]           # 3 x [K]
    if attr.dim() == 3 and attr.shape[0] > 1:
        shift = torch.div(pix, H * W, rounding_mode="floor") * n_verts
        vidx = [vi + shift for vi in vidx]
    attr_flat = attr.reshape(-1, n_attr)
    rast_flat = rast.reshape(-1, 4)
    u, v = (rast_flat[:, i].index_select(0, pix) for i in range(2))
    out = _Interpolate.apply(attr_flat, u, v, pix, vidx, n_img * H * W)
    out = out.view(n_img, H, W, n_attr)

    if not da_list:
        return out, attr.new_zeros(n_img, H, W, 0)
    sel = torch.tensor(da_list, device=attr.device)
    s0, s1, s2 = (attr_flat.index_select(0, vi).index_select(1, sel) for vi in vidx)   # [K, D] each
    db = rast_db.reshape(-1, 4).index_select(0, pix)
    dsdu, dsdv = s0 - s2, s1 - s2
    dsdx = db[:, 0:1] * dsdu + db[:, 2:3] * dsdv
    dsdy = db[:, 1:2] * dsdu + db[:, 3:4] * dsdv
    out_da = attr.new_zeros(n_img * H * W, 2 * len(da_list))
    out_da = out_da.index_copy(0, pix, torch.stack([dsdx, dsdy], -1).reshape(pix.numel(), -1))
    return out, out_da.view(n_img, H, W, -1)
