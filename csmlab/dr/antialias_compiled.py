"""``antialias_compiled``: ``nvdiffrast.torch.antialias`` on CPU tensors by the numba kernels of
:mod:`csmlab.dr.kernels_antialias`, under a ``torch.autograd.Function`` with a hand-written backward.

Inputs, the topology table and ``pos_gradient_boost`` are handled as by the twin
(:func:`csmlab.dr.antialias_twin.antialias_torch`); ``rast`` gets no gradient, as in nvdiffrast.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from csmlab.dr import kernels_antialias as K
from csmlab.dr.antialias_twin import _check_inputs, _resolve_topology
from csmlab.dr.kernels import threads_for

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


class _Antialias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, color, pos, rast, tri64, opposite, boost):
        c = color.detach().contiguous()
        r = rast.detach().contiguous()
        p = pos.detach().to(torch.float64).contiguous()
        p3 = p if p.dim() == 3 else p[None]
        out = c.clone()
        cand = torch.empty(p3.shape[0], tri64.shape[0], dtype=torch.bool)
        K.silhouette_candidates(p3.numpy(), tri64.numpy(), opposite.numpy(), c.shape[1], c.shape[2], cand.numpy())
        with threads_for(c.shape[0] * c.shape[1] * c.shape[2]) as threads:
            kernel = K.antialias_forward if threads > 1 else K.antialias_forward_serial
            kernel(c.numpy(), r.numpy(), p3.numpy(), tri64.numpy(), opposite.numpy(), cand.numpy(),
                                out.numpy())
        ctx.save_for_backward(c, p, r, tri64, opposite, cand)
        ctx.boost, ctx.pos_dtype = boost, pos.dtype
        return out

    @staticmethod
    @once_differentiable  # hand-written backward: double backward raises instead of returning zeros
    def backward(ctx, g_out):
        c, p, r, tri64, opposite, cand = ctx.saved_tensors
        g_out = g_out.detach().contiguous()
        g_color = g_out.clone()
        p3 = p if p.dim() == 3 else p[None]
        g_pos = torch.zeros(c.shape[0], *p3.shape[1:], dtype=torch.float64)
        with threads_for(c.shape[0] * c.shape[1] * c.shape[2]) as threads:
            kernel = K.antialias_backward if threads > 1 else K.antialias_backward_serial
            kernel(c.numpy(), r.numpy(), p3.numpy(), tri64.numpy(), opposite.numpy(), cand.numpy(),
                                 g_out.numpy(), g_color.numpy(), g_pos.numpy())
        g_pos = (g_pos if p.dim() == 3 else g_pos.sum(0)) * ctx.boost
        return g_color, g_pos.to(ctx.pos_dtype), None, None, None, None


def antialias_compiled(color, rast, pos, tri, topology_hash=None, pos_gradient_boost=1.0):
    """Antialias ``color`` [B,H,W,C] across silhouette edges (CPU tensors); same output shape."""
    _check_inputs(color, rast, pos, tri)
    opposite = _topology(topology_hash, tri).contiguous()
    return _Antialias.apply(color, pos, rast, tri.detach().to(torch.int64).contiguous(), opposite,
                            float(pos_gradient_boost))
