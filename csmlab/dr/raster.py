"""``rasterize_torch``: the pure-PyTorch twin of ``nvdiffrast.torch.rasterize``.

Two passes:

1. **Visibility** (:func:`csmlab.dr.zbuffer.zbuffer`, no gradients): which triangle
   owns each pixel centre, by homogeneous edge functions and a scatter-min z-buffer.
2. **Barycentrics** (differentiable, for the visible pixels only): the edge
   functions of the winning triangle, ``e_i = A_i dx + B_i dy + C_i`` (see
   :func:`csmlab.dr.zbuffer.triangle_setup`; A, B, C are differentiable functions of
   ``pos``), give ``u = e_0 / S`` and ``v = e_1 / S`` with ``S = e_0 + e_1 + e_2``.
   These are the perspective-correct barycentrics nvdiffrast computes.

``rast_db`` is analytic: the e_i are affine in the pixel position, so with
A, B in pixel units ``du/dX = (A_0 - u sum(A)) / S``, ``du/dY = (B_0 - u sum(B)) / S``,
``dv/dX = (A_1 - v sum(A)) / S`` and ``dv/dY = (B_1 - v sum(B)) / S``: channels
(du/dX, du/dY, dv/dX, dv/dY), Y along the rows (upwards in NDC), as in nvdiffrast.

Gradients reach ``pos`` through u and v and, with ``grad_db``, through ``rast_db``:
the per-pixel part has a closed-form backward (:class:`_PixelBarycentrics`) into
A, B, C, and autograd carries it through the per-triangle setup to ``pos``. The
per-pixel part runs in float64 (cheap, and u, v agree with a float64 reference to
~1e-7 even on sliver triangles) and is cast to ``pos.dtype``. z/w, from the
triangle's depth plane, and the triangle id carry no gradient.
As in nvdiffrast, the u and v written out are clamped to the triangle
(``u, v >= 0``, ``u + v <= 1``) against rounding, while the gradient is that of
the unclamped formula.
"""

from __future__ import annotations

import torch

from csmlab.dr.checks import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    check_indices,
    check_resolution,
    check_same_device,
    check_tensor,
)
from csmlab.dr.zbuffer import DEFAULT_MAX_CANDIDATES, triangle_setup, zbuffer


def _pixel_terms(cols, dx, dy):
    """1/S, (u, v) and their pixel derivatives from gathered edge coefficients.

    ``cols`` are 9 [K] vectors (A_0, A_1, A_2, B_0, B_1, B_2, C_0, C_1, C_2); (dx, dy) the
    pixels' offsets from their triangle's origin. Everything is kept as separate
    contiguous [K] vectors: reductions over a size-3 axis are slow in PyTorch on CPU.
    """
    a0, a1, a2, b0, b1, b2, c0, c1, c2 = cols
    e0 = a0 * dx + b0 * dy + c0
    e1 = a1 * dx + b1 * dy + c1
    s = e0 + e1 + (a2 * dx + b2 * dy + c2)
    inv_s = 1.0 / torch.where(s == 0, 1.0, s)
    u, v = e0 * inv_s, e1 * inv_s
    sa, sb = a0 + a1 + a2, b0 + b1 + b2
    dudx, dvdx = (a0 - u * sa) * inv_s, (a1 - v * sa) * inv_s
    dudy, dvdy = (b0 - u * sb) * inv_s, (b1 - v * sb) * inv_s
    return inv_s, u, v, sa, sb, (dudx, dudy, dvdx, dvdy)


class _PixelBarycentrics(torch.autograd.Function):
    """Per-triangle edge coefficients -> (rast, rast_db) images, for fixed visibility.

    Backward, with g the incoming gradients of (u, v), (gX, gY) those of (du/dX, dv/dX)
    and (du/dY, dv/dY), S = e_0 + e_1 + e_2 and j over {0, 1} (u and v):

        g'_j    = g_j - (gX_j sum(A) + gY_j sum(B)) / S             (db depends on u, v)
        dL/de_i = (g'_i - sum_j g'_j u_j) / S - sum_j (gX_j dX_j + gY_j dY_j) / S
        dL/dA_i = dL/de_i dx + (gX_i - sum_j gX_j u_j) / S,   dL/dB_i: the same with dy, gY
        dL/dC_i = dL/de_i                                         (g_2 = gX_2 = gY_2 = 0)
    """

    @staticmethod
    def forward(ctx, abc_t, depth_t, owner, pix, offset, ids, shape, grad_db, out_dtype):
        n_pix, W = shape
        dy = torch.div(offset, W, rounding_mode="floor")
        dx, dy = (offset - dy * W).to(abc_t.dtype), dy.to(abc_t.dtype)
        inv_s, u, v, _, _, db = _pixel_terms(_gather_rows(abc_t, owner), dx, dy)
        zx, zy, z0 = _gather_rows(depth_t, owner)
        zw = (zx * dx + zy * dy + z0).clamp(-1.0, 1.0)
        # nvdiffrast's output clamp against rounding: u, v >= 0 and u + v <= 1.
        u_c, v_c = u.clamp(0.0, 1.0), v.clamp(0.0, 1.0)
        shrink = 1.0 / (u_c + v_c).clamp(min=1.0)
        rast = _scatter_columns((u_c * shrink, v_c * shrink, zw, ids), pix, n_pix, out_dtype)
        rast_db = _scatter_columns(db, pix, n_pix, out_dtype)
        ctx.save_for_backward(abc_t, owner, pix, dx, dy)
        ctx.grad_db = grad_db
        return rast, rast_db

    @staticmethod
    def backward(ctx, g_rast, g_db):
        abc_t, owner, pix, dx, dy = ctx.saved_tensors
        inv_s, u, v, sa, sb, (dudx, dudy, dvdx, dvdy) = _pixel_terms(_gather_rows(abc_t, owner), dx, dy)
        if g_rast is not None:
            g_u, g_v = (g_rast[:, c].index_select(0, pix).to(abc_t.dtype) for c in range(2))
        else:
            g_u = g_v = torch.zeros_like(u)
        zero = torch.zeros_like(u)
        g_a = [zero, zero, zero]
        g_b = [zero, zero, zero]
        g_s = zero
        if ctx.grad_db and g_db is not None:
            gux, guy, gvx, gvy = (g_db[:, c].index_select(0, pix).to(abc_t.dtype) for c in range(4))
            g_u = g_u - (gux * sa + guy * sb) * inv_s
            g_v = g_v - (gvx * sa + gvy * sb) * inv_s
            g_s = -(gux * dudx + guy * dudy + gvx * dvdx + gvy * dvdy) * inv_s
            gx_u = (gux * u + gvx * v) * inv_s
            gy_u = (guy * u + gvy * v) * inv_s
            g_a = [gux * inv_s - gx_u, gvx * inv_s - gx_u, -gx_u]
            g_b = [guy * inv_s - gy_u, gvy * inv_s - gy_u, -gy_u]
        g_uv = (g_u * u + g_v * v) * inv_s
        g_e = [g_u * inv_s - g_uv + g_s, g_v * inv_s - g_uv + g_s, g_s - g_uv]
        g_rows = torch.stack([g_e[i] * dx + g_a[i] for i in range(3)]
                             + [g_e[i] * dy + g_b[i] for i in range(3)] + g_e, 0)
        g_abc_t = torch.zeros_like(abc_t).index_add_(1, owner, g_rows)
        return g_abc_t, None, None, None, None, None, None, None, None


def _gather_rows(table_t: torch.Tensor, index: torch.Tensor):
    """Row-wise gather of a [R, N] table: R contiguous [K] vectors."""
    return [row.index_select(0, index) for row in table_t]


def _scatter_columns(cols, pix, n_pix, dtype):
    """An [n_pix, len(cols)] image, zero except at ``pix`` where it holds the columns."""
    out = torch.zeros(n_pix, len(cols), dtype=dtype, device=pix.device)
    for c, col in enumerate(cols):
        out[:, c].index_put_((pix,), col.to(dtype))
    return out


def _triangle_list(pos: torch.Tensor, tri: torch.Tensor, ranges: torch.Tensor | None):
    """Flatten instanced / range mode into per-triangle (image, face id, flat vertex indices)."""
    n_faces = tri.shape[0]
    device = pos.device
    tri = tri.to(torch.int64)
    if pos.dim() == 3:
        n_img, n_verts = pos.shape[0], pos.shape[1]
        image = torch.arange(n_img, device=device).repeat_interleave(n_faces)
        face = torch.arange(n_faces, device=device).repeat(n_img)
        vidx = tri[face] + (image * n_verts)[:, None]
    else:
        rng = ranges.to(device=device, dtype=torch.int64)
        n_img = rng.shape[0]
        counts = rng[:, 1]
        image = torch.repeat_interleave(torch.arange(n_img, device=device), counts)
        first = torch.repeat_interleave(rng[:, 0] - (torch.cumsum(counts, 0) - counts), counts)
        face = torch.arange(image.numel(), device=device) + first
        vidx = tri[face]
    return n_img, image, face, vidx


def _check_rasterize_inputs(pos, tri, resolution, ranges, count_nonfinite=None):
    """The checks of both paths; ``count_nonfinite(pos)`` (the compiled path's, one pass without
    temporaries) replaces the torch check for NaN / inf when given, with the same message."""
    check_tensor("pos", pos, ndim=(2, 3), last_dim=4, dtypes=FLOAT_DTYPES, finite=count_nonfinite is None)
    if count_nonfinite is not None:
        n_bad = count_nonfinite(pos)
        if n_bad:
            raise ValueError(f"pos must hold finite values only, got {n_bad} NaN/inf entries")
    check_tensor("tri", tri, ndim=2, last_dim=3, dtypes=INDEX_DTYPES)
    check_same_device(pos=pos, tri=tri)
    res = check_resolution("resolution", resolution)
    n_verts = pos.shape[-2]
    check_indices("tri", tri, n_verts)
    if pos.dim() == 2:
        if ranges is None:
            raise ValueError("ranges must be given in range mode (pos of shape [V, 4]): an int32 "
                             "tensor [B, 2] of (first triangle, triangle count) per image; "
                             f"got None with pos of shape {tuple(pos.shape)}")
        check_tensor("ranges", ranges, ndim=2, last_dim=2, dtypes=INDEX_DTYPES)
        if ranges.shape[0] == 0:
            raise ValueError("ranges must have at least one row [B>0, 2], got shape (0, 2)")
        start, count = ranges[:, 0].cpu(), ranges[:, 1].cpu()
        if bool((start < 0).any()) or bool((count < 0).any()) or bool((start + count > tri.shape[0]).any()):
            raise ValueError(f"ranges rows (first, count) must select triangles in [0, {tri.shape[0]}), "
                             f"got {ranges.cpu().tolist()}")
    elif pos.shape[0] == 0:
        raise ValueError(f"pos must hold at least one image [B>0, V, 4], got shape {tuple(pos.shape)}")
    return res


def rasterize_torch(pos: torch.Tensor, tri: torch.Tensor, resolution, ranges: torch.Tensor | None = None,
                    grad_db: bool = True, max_candidates: int = DEFAULT_MAX_CANDIDATES):
    """Rasterize triangles like ``nvdiffrast.torch.rasterize`` (without the context argument).

    Args:
        pos: clip-space vertices, [B, V, 4] (instanced mode) or [V, 4] with ``ranges``
            (range mode); float32 or float64 (float64 for gradient checks).
        tri: [F, 3] int32 (or int64) vertex indices.
        resolution: (height, width).
        ranges: range mode only, [B, 2] int (first triangle, count) per output image.
        grad_db: let gradients of ``rast_db`` flow back into ``pos``.
        max_candidates: (pixel, triangle) pairs tested at once; bounds peak memory.
    Returns:
        rast: [B, H, W, 4] (u, v, z/w, triangle_id + 1), zeros where nothing is drawn.
        rast_db: [B, H, W, 4] (du/dX, du/dY, dv/dX, dv/dY) in pixels.
    """
    if grad_db is not True and grad_db is not False:
        raise ValueError(f"grad_db must be True or False, got {grad_db!r}")
    H, W = _check_rasterize_inputs(pos, tri, resolution, ranges)
    n_img, image, face, vidx = _triangle_list(pos, tri, ranges)
    # Vertices as [3, 4, N] (vertex, coordinate, triangle), float64 for the setup.
    verts = pos.reshape(-1, 4).index_select(0, vidx.t().reshape(-1)).view(3, -1, 4)
    setup = triangle_setup(verts.to(torch.float64).permute(0, 2, 1).contiguous(), H, W)
    with torch.no_grad():
        winner = zbuffer(setup, image, n_img, H, W, max_candidates)
    pix = (winner >= 0).nonzero().squeeze(1)
    owner = winner.index_select(0, pix)
    x0, y0 = setup["box"][0], setup["box"][1]
    offset = pix - (image * (H * W) + y0 * W + x0).index_select(0, owner)
    rast, rast_db = _PixelBarycentrics.apply(setup["abc"], setup["depth"], owner, pix, offset,
                                             face.index_select(0, owner) + 1, (n_img * H * W, W),
                                             grad_db, pos.dtype)
    rast, rast_db = rast.view(n_img, H, W, 4), rast_db.view(n_img, H, W, 4)
    if not grad_db:
        rast_db = rast_db.detach()
    return rast, rast_db
