"""The compiled ARAP energy: :mod:`.kernels_arap` behind an autograd Function (CPU tensors, numba installed).

Same energy, same rotations as the PyTorch paths of :func:`csmlab.geometry.arap_energy`
(which the tests hold it to), computed in float64 whatever the input dtype. The forward pass
also computes the gradient (it is a second sweep over the same edges); the backward only
scales it by the incoming gradient. The rotations are held fixed in the gradient, which is
exact because they are optimal (envelope theorem).
"""

from __future__ import annotations

import functools
import importlib.util

import torch


@functools.cache
def _numba_installed() -> bool:
    # Asked once per process: the lookup costs about 0.1 ms, and this runs at every training step. (Geometry may not
    # import csmlab.dr, which asks the same question for the renderer.)
    return importlib.util.find_spec("numba") is not None


def compiled_available(t: torch.Tensor) -> bool:
    """True when the compiled kernels can serve tensor ``t``: a CPU tensor and numba importable."""
    return t.device.type == "cpu" and _numba_installed()


def local_rotations(x64, rest64, nbrs, w64) -> torch.Tensor:
    """[B,V,3,3] float64 ARAP rotations (Horn's closed form; the SVD where the rotation is not unique)."""
    from . import kernels_arap as K
    from .arap import nearest_rotations

    B, V, _ = x64.shape
    S = torch.empty(B, V, 3, 3, dtype=torch.float64)
    K.covariances(x64.numpy(), rest64.numpy(), nbrs.numpy(), w64.numpy(), S.numpy())
    R = torch.empty_like(S)
    unsolved = torch.empty(B, V, dtype=torch.bool)
    K.horn_rotations(S.numpy(), R.numpy(), unsolved.numpy())
    if bool(unsolved.any()):
        R[unsolved] = nearest_rotations(S[unsolved], method="svd")
    return R


class _CompiledArap(torch.autograd.Function):
    @staticmethod
    def forward(ctx, verts, rest, nbrs, w):
        from . import kernels_arap as K

        x64 = verts.detach().to(torch.float64).contiguous()
        r64 = rest.detach().to(torch.float64).contiguous()
        w64 = w.detach().to(torch.float64).contiguous()
        nb = nbrs.to(torch.int64).contiguous()
        R = local_rotations(x64, r64, nb, w64)
        B, V, _ = x64.shape
        want_rest = bool(ctx.needs_input_grad[1])
        E = torch.empty(B, dtype=torch.float64)
        gx = torch.zeros(B, V, 3, dtype=torch.float64)
        grest = torch.zeros(B if want_rest else 1, V, 3, dtype=torch.float64)
        K.energy_and_gradient(x64.numpy(), r64.numpy(), nb.numpy(), w64.numpy(), R.numpy(), want_rest,
                              E.numpy(), gx.numpy(), grest.numpy())
        ctx.save_for_backward(gx, grest)
        ctx.rest_shape, ctx.dtypes = rest.shape, (verts.dtype, rest.dtype)
        return E.to(verts.dtype)

    @staticmethod
    def backward(ctx, grad_e):
        gx, grest = ctx.saved_tensors
        ge = grad_e.to(torch.float64)[:, None, None]
        g_verts = (ge * gx).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        g_rest = None
        if ctx.needs_input_grad[1]:
            g_rest = ge * grest
            g_rest = (g_rest if len(ctx.rest_shape) == 3 and ctx.rest_shape[0] > 1 else g_rest.sum(0, keepdim=True))
            g_rest = g_rest.reshape(ctx.rest_shape).to(ctx.dtypes[1])
        return g_verts, g_rest, None, None


def compiled_arap_energy(verts, rest, nbrs, w) -> torch.Tensor:
    """[B] ARAP energy of ``verts`` [B,V,3] against ``rest`` [1 or B,V,3] with one-rings ``nbrs`` [V,D],
    weights ``w`` [...,V,D] (constants: no gradient reaches them). Inputs checked by the caller."""
    w3 = w.reshape(-1, *w.shape[-2:])
    if w3.shape[0] not in (1, verts.shape[0]):
        raise ValueError(f"weights must be [V,D], [1,V,D] or [{verts.shape[0]},V,D], got {list(w.shape)}")
    return _CompiledArap.apply(verts, rest, nbrs, w3)
