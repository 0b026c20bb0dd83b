"""``interpolate_compiled``: ``nvdiffrast.torch.interpolate`` on CPU tensors by the numba kernels of
:mod:`csmlab.dr.kernels_interpolate`, under a ``torch.autograd.Function`` with a hand-written backward.

Inputs are checked as by the twin (:func:`csmlab.dr.interpolation.interpolate_torch`). With
``diff_attrs`` (image-space attribute derivatives, used for mipmapping) the call goes to the twin.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from csmlab.dr import kernels_interpolate as K
from csmlab.dr.checks import FLOAT_DTYPES, check_tensor
from csmlab.dr.interpolation import _check_interpolate_inputs, _diff_attr_list, interpolate_torch
from csmlab.dr.kernels import pooled_tensor, scratch, threads_for


class _Interpolate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attr3, rast, tri64):
        B, H, W, _ = rast.shape
        a = attr3.detach().contiguous()
        r = rast.detach().contiguous()
        out = pooled_tensor("interp.out", (B, H, W, a.shape[2]), a.dtype)   # every pixel is written
        max_id = torch.empty(B, dtype=torch.float64)
        with threads_for(B * H * W) as threads:
            kernel = K.interpolate_forward if threads > 1 else K.interpolate_forward_serial
            kernel(a.numpy(), r.numpy(), tri64.numpy(), out.numpy(), max_id.numpy())
        largest = float(max_id.max()) if B else 0.0   # checked here, in the pass that reads the ids
        if largest > tri64.shape[0]:
            raise ValueError(f"rast holds triangle ids up to {int(largest)} but tri has only "
                             f"{tri64.shape[0]} triangles: rast must come from rasterize with this tri")
        ctx.save_for_backward(a, r, tri64)
        return out

    @staticmethod
    @once_differentiable  # hand-written backward: double backward raises instead of returning zeros
    def backward(ctx, g_out):
        a, r, tri64 = ctx.saved_tensors
        want_attr, want_rast = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        B = r.shape[0]
        if want_attr:   # written in full by the kernel, summed in float64 (acc) first
            g_attr = torch.empty(B, *a.shape[1:], dtype=a.dtype)
            acc = g_attr.numpy() if a.dtype == torch.float64 else scratch("interp.acc", (B, *a.shape[1:]))
        else:
            g_attr = a.new_zeros(B, 1, a.shape[2])
            acc = np.zeros((B, 1, a.shape[2]))
        # written in full by the kernel
        g_rast = pooled_tensor("interp.g_rast", r.shape, r.dtype) if want_rast else r.new_zeros(1, 1, 1, 4)
        with threads_for(r.shape[0] * r.shape[1] * r.shape[2]) as threads:
            kernel = K.interpolate_backward if threads > 1 else K.interpolate_backward_serial
            kernel(a.numpy(), r.numpy(), tri64.numpy(), g_out.detach().contiguous().numpy(),
                   want_attr, want_rast, acc, g_attr.numpy(), g_rast.numpy())
        if a.shape[0] != B:
            g_attr = g_attr.sum(0, keepdim=True)
        return (g_attr if want_attr else None), (g_rast if want_rast else None), None


def interpolate_compiled(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                         rast_db: torch.Tensor | None = None, diff_attrs=None):
    """:func:`csmlab.dr.interpolation.interpolate_torch`'s contract, by compiled kernels (CPU only)."""
    check_tensor("attr", attr, ndim=(2, 3), dtypes=FLOAT_DTYPES)
    if _diff_attr_list(diff_attrs, attr.shape[-1]):
        return interpolate_torch(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)
    _check_interpolate_inputs(attr, rast, tri, rast_db, want_da=False)
    n_img, H, W, _ = rast.shape
    attr3 = attr if attr.dim() == 3 else attr[None]
    out = _Interpolate.apply(attr3, rast, tri.detach().to(torch.int64).contiguous())
    return out, attr.new_zeros(n_img, H, W, 0)
