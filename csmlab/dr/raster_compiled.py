"""``rasterize_compiled``: ``nvdiffrast.torch.rasterize`` on CPU tensors, by the numba kernels of
:mod:`csmlab.dr.kernels_raster`, under a ``torch.autograd.Function`` with a hand-written backward.

The inputs are checked exactly as by the twin (:func:`csmlab.dr.raster.rasterize_torch`), and
the outputs follow the same conventions; see :mod:`csmlab.dr` for the contract.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from csmlab.dr import kernels_raster as K
from csmlab.dr.kernels import pooled_tensor, scratch, threads_for
from csmlab.dr.raster import _check_rasterize_inputs


def _triangle_list(pos_np: np.ndarray, tri: np.ndarray, ranges: np.ndarray | None):
    """(vidx [N,3] flat vertex indices, face id [N], first [B+1]: image b draws first[b]..first[b+1]-1)."""
    F = tri.shape[0]
    if ranges is None:
        B, V = pos_np.shape[0], pos_np.shape[1]
        vidx = scratch("raster.vidx", (B, F, 3), np.int64)
        np.add(tri[None], (np.arange(B, dtype=np.int64) * V)[:, None, None], out=vidx)
        vidx = vidx.reshape(-1, 3)
        face = scratch("raster.face", (B, F), np.int64)
        face[:] = np.arange(F, dtype=np.int64)
        face = face.reshape(-1)
        first = np.arange(B + 1, dtype=np.int64) * F
    else:
        counts = ranges[:, 1]
        first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        face = np.concatenate([np.arange(s, s + c, dtype=np.int64) for s, c in ranges]) if first[-1] else \
            np.zeros(0, np.int64)
        vidx = tri[face]
    return np.ascontiguousarray(vidx), face, first


def _bands(n_img: int, H: int, threads: int) -> int:
    """Row bands per image: enough jobs to feed ``threads`` numba threads, at least 8 rows each."""
    if threads <= 1 or n_img >= 2 * threads:
        return 1
    return max(1, min(H // 8, -(-2 * threads // n_img)))


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, tri, resolution, ranges, grad_db):
        H, W = resolution
        ctx.set_materialize_grads(False)   # an unused rast_db gets no zero-filled gradient image
        pos64 = pos.detach().to(torch.float64).contiguous()
        pos_np = pos64.numpy()
        tri_np = tri.detach().to(torch.int64).contiguous().numpy()
        ranges_np = None if ranges is None else ranges.detach().to(torch.int64).cpu().numpy()
        vidx, face, first = _triangle_list(pos_np, tri_np, ranges_np)
        flat = pos_np.reshape(-1, 4)
        n = vidx.shape[0]
        keep = scratch("raster.keep", (n,), np.bool_)   # every row is written by the setup kernel
        rec = scratch("raster.rec", (n, K.REC))
        sign = scratch("raster.sign", (n,))
        n_img = first.shape[0] - 1
        if n:
            with threads_for(n) as threads:
                kernel = K.triangle_setup if threads > 1 else K.triangle_setup_serial
                kernel(flat, vidx, H, W, keep, rec, sign)
        # Pooled outputs (every element is written): fresh ones this size cost page faults on every call.
        rast = pooled_tensor("raster.rast", (n_img, H, W, 4), pos.dtype)
        rast_db = pooled_tensor("raster.rast_db", (n_img, H, W, 4), pos.dtype)
        owner = scratch("raster.owner", (n_img, H, W + K.ROW_PAD), np.int32)   # spare columns: see K
        with threads_for(max(n_img * H * W, n)) as threads:
            bands = _bands(n_img, H, threads)
            # one z-buffer per worker, reset by the kernel for every job
            zbuf = scratch("raster.zbuf", (min(threads, n_img * bands), -(-H // bands), W + K.ROW_PAD))
            kernel = K.rasterize_forward if threads > 1 else K.rasterize_forward_serial
            kernel(flat, vidx, face, first, keep, rec, bands, H, W, zbuf,
                                rast.numpy(), rast_db.numpy(), owner)
        ctx.save_for_backward(pos64)
        ctx.setup = (vidx, first, keep, rec, sign)
        ctx.owner, ctx.grad_db, ctx.range_mode = owner, grad_db, ranges is not None
        ctx.pos_dtype, ctx.image_shape = pos.dtype, (n_img, H, W)
        return rast, rast_db

    @staticmethod
    @once_differentiable  # hand-written backward: double backward raises instead of returning zeros
    def backward(ctx, g_rast, g_db):
        (pos64,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        n_img, H, W = ctx.image_shape
        use_db = bool(ctx.grad_db and g_db is not None)
        if g_rast is None and not use_db:
            return None, None, None, None, None
        if g_rast is None:
            g_rast = torch.zeros_like(g_db)
        if g_db is None:
            g_db = g_rast
        flat = pos64.numpy().reshape(-1, 4)
        g = np.zeros((n_img if ctx.range_mode else 1, flat.shape[0], 4))   # returned: not scratch
        vidx, first, keep, rec, sign = ctx.setup
        n = rec.shape[0]
        g_coef = scratch("raster.g_coef", (n, 9))   # zeroed by the kernel
        with threads_for(max(n_img * H * W, n)) as threads:
            kernel = K.bary_backward if threads > 1 else K.bary_backward_serial
            kernel(flat, vidx, first, keep, rec, sign, ctx.owner, g_rast.detach().contiguous().numpy(),
                   g_db.detach().contiguous().numpy(), use_db, H, W, ctx.range_mode, g_coef, g)
        g_pos = torch.from_numpy(g.sum(0) if ctx.range_mode else g[0]).view(pos64.shape)
        return g_pos.to(ctx.pos_dtype), None, None, None, None


def rasterize_compiled(pos: torch.Tensor, tri: torch.Tensor, resolution, ranges: torch.Tensor | None = None,
                       grad_db: bool = True):
    """:func:`csmlab.dr.raster.rasterize_torch`'s contract, computed by compiled kernels (CPU only)."""
    if grad_db is not True and grad_db is not False:
        raise ValueError(f"grad_db must be True or False, got {grad_db!r}")
    count = (lambda p: K.count_nonfinite(p.detach().numpy())) if pos.device.type == "cpu" else None
    H, W = _check_rasterize_inputs(pos, tri, resolution, ranges, count_nonfinite=count)
    if pos.device.type != "cpu":
        raise ValueError(f"the compiled rasterizer runs on CPU tensors only, got pos on {pos.device}")
    rast, rast_db = _Rasterize.apply(pos, tri, (H, W), ranges if pos.dim() == 2 else None, grad_db)
    if not grad_db:
        rast_db = rast_db.detach()
    return rast, rast_db

