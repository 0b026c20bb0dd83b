"""``antialias_compiled``: ``nvdiffrast.torch.antialias`` on CPU tensors by the numba kernels of
:mod:`csmlab.dr.kernels_antialias`, under a ``torch.autograd.Function`` with a hand-written backward.

Inputs, the topology table and ``pos_gradient_boost`` are handled as by the twin
(:func:`csmlab.dr.antialias_twin.antialias_torch`); ``rast`` gets no gradient, as in nvdiffrast.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from csmlab.dr import kernels_antialias as K
from csmlab.dr.antialias_twin import _check_inputs, _resolve_topology
from csmlab.dr.kernels import pooled_tensor, scratch, threads_for

# Topology tables of the last few index buffers, keyed by their bytes (an exact match, not an
# identity guess): building one costs milliseconds, comparing the key microseconds.
_TOPOLOGY_CACHE: dict = {}
_TOPOLOGY_CACHE_SIZE = 8


def _topology(topology_hash, tri):
    if topology_hash is not None:
        return _resolve_topology(topology_hash, tri)
    key = (tuple(tri.shape), tri.detach().to(torch.int64).contiguous().numpy().tobytes())
    table = _TOPOLOGY_CACHE.pop(key, None)
    if table is None:
        table = _resolve_topology(None, tri).contiguous()
    _TOPOLOGY_CACHE[key] = table              # most recently used last
    while len(_TOPOLOGY_CACHE) > _TOPOLOGY_CACHE_SIZE:
        _TOPOLOGY_CACHE.pop(next(iter(_TOPOLOGY_CACHE)))
    return table


def _hit_capacity(H, W):
    """Hits to reserve per image: silhouettes cross a few pairs per boundary pixel."""
    return 4 * (H + W) + 256


class _Antialias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, color, pos, rast, tri64, opposite, boost):
        c = color.detach().contiguous()
        r = rast.detach().contiguous()
        p = pos.detach().to(torch.float64).contiguous()
        p3 = p if p.dim() == 3 else p[None]
        B, H, W, _ = c.shape
        cand = torch.from_numpy(scratch("aa.cand", (p3.shape[0], tri64.shape[0]), np.bool_))   # all written
        K.silhouette_candidates(p3.numpy(), tri64.numpy(), opposite.numpy(), H, W, cand.numpy())
        n_hits = torch.zeros(B, dtype=torch.int64)
        max_id = torch.empty(B, dtype=torch.float64)
        cap = _hit_capacity(H, W)
        while True:   # rarely more than once: only when an image has more hits than reserved
            out = pooled_tensor("aa.out", c.shape, c.dtype).copy_(c)
            # hit lists: internal (saved for the backward only), so reused between calls
            hit_i = torch.from_numpy(scratch("aa.hit_i", (B, cap, K.HIT_INTS), np.int64))
            hit_f = torch.from_numpy(scratch("aa.hit_f", (B, cap, K.HIT_FLOATS)))
            with threads_for(B * H * W) as threads:
                kernel = K.antialias_forward if threads > 1 else K.antialias_forward_serial
                kernel(c.numpy(), r.numpy(), p3.numpy(), tri64.numpy(), opposite.numpy(), cand.numpy(),
                       out.numpy(), hit_i.numpy(), hit_f.numpy(), n_hits.numpy(), max_id.numpy())
            if float(max_id.max()) > tri64.shape[0]:   # checked here, in the pass that reads the ids
                raise ValueError(f"rast holds triangle ids up to {int(max_id.max())} but tri has only "
                                 f"{tri64.shape[0]} triangles: rast must come from rasterize() with this tri")
            if int(n_hits.max()) <= cap:
                break
            cap = int(n_hits.max())
        ctx.save_for_backward(c, hit_i, hit_f, n_hits)
        ctx.boost, ctx.pos_dtype, ctx.pos_shape = boost, pos.dtype, p3.shape
        ctx.range_mode = p.dim() == 2
        return out

    @staticmethod
    @once_differentiable  # hand-written backward: double backward raises instead of returning zeros
    def backward(ctx, g_out):
        c, hit_i, hit_f, n_hits = ctx.saved_tensors
        g_out = g_out.detach().contiguous()
        g_color = pooled_tensor("aa.g_color", g_out.shape, g_out.dtype).copy_(g_out)
        g_pos = torch.zeros(c.shape[0], *ctx.pos_shape[1:], dtype=torch.float64)
        K.antialias_backward(c.numpy(), hit_i.numpy(), hit_f.numpy(), n_hits.numpy(), g_out.numpy(),
                             g_color.numpy(), g_pos.numpy())
        g_pos = g_pos.sum(0) if ctx.range_mode else g_pos
        if ctx.boost != 1.0:
            g_pos = g_pos * ctx.boost
        return g_color, g_pos.to(ctx.pos_dtype), None, None, None, None


def antialias_compiled(color, rast, pos, tri, topology_hash=None, pos_gradient_boost=1.0):
    """Antialias ``color`` [B,H,W,C] across silhouette edges (CPU tensors); same output shape."""
    _check_inputs(color, rast, pos, tri, check_ids=False)   # the kernel checks the ids
    opposite = _topology(topology_hash, tri).contiguous()
    return _Antialias.apply(color, pos, rast, tri.detach().to(torch.int64).contiguous(), opposite,
                            float(pos_gradient_boost))
