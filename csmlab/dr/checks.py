"""Input validation shared by every op in ``csmlab.dr``.

nvdiffrast asserts on bad input (or, worse, reads out of bounds on the GPU).
The twin raises ``ValueError`` instead, and every message names the argument,
the form that was expected and what was received, e.g.::

    ValueError: pos must have 4 values in its last dimension ([..., 4]), got shape (2, 10, 3)

The helpers are generic so that every op module (rasterize, interpolate,
texture, antialias) can reuse them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)
INDEX_DTYPES = (torch.int32, torch.int64)


def _dtype_names(dtypes: Iterable[torch.dtype]) -> str:
    return " or ".join(str(d).replace("torch.", "") for d in dtypes)


def describe(x) -> str:
    """A short description of ``x`` for error messages."""
    if isinstance(x, torch.Tensor):
        return f"a {str(x.dtype).replace('torch.', '')} tensor of shape {tuple(x.shape)} on {x.device}"
    return f"{type(x).__name__} {x!r}"[:200]


def check_tensor(name: str, x, *, ndim: int | Sequence[int] | None = None,
                 last_dim: int | None = None, dtypes: Sequence[torch.dtype] | None = None,
                 device: torch.device | str | None = None, contiguous: bool = False,
                 finite: bool = False) -> torch.Tensor:
    """Validate one tensor argument and return it unchanged.

    Args:
        name: the argument's name, used in the message.
        ndim: allowed number of dimensions (an int or a sequence of ints).
        last_dim: required size of the last dimension.
        dtypes: allowed dtypes.
        device: the device the tensor must be on (compared by type and index).
        contiguous: require ``x.is_contiguous()`` (nvdiffrast requires it; the twin
            only checks where a caller asks).
        finite: reject NaN (and inf) values.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {describe(x)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            forms = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {forms}, got shape {tuple(x.shape)}")
    if last_dim is not None and (x.dim() == 0 or x.shape[-1] != last_dim):
        raise ValueError(f"{name} must have {last_dim} values in its last dimension ([..., {last_dim}]), "
                         f"got shape {tuple(x.shape)}")
    if dtypes is not None and x.dtype not in tuple(dtypes):
        raise ValueError(f"{name} must have dtype {_dtype_names(dtypes)}, got {x.dtype}")
    if device is not None and not same_device(x.device, torch.device(device)):
        raise ValueError(f"{name} must be on device {device}, got {x.device}")
    if contiguous and not x.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous()), got strides {tuple(x.stride())}")
    if finite and x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must hold finite values only, got {bad} NaN/inf entries")
    return x


def same_device(a: torch.device, b: torch.device) -> bool:
    """True when ``a`` and ``b`` are the same device ('cuda' matches the current CUDA index)."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        return True
    return a.index == b.index


def check_same_device(**tensors: torch.Tensor) -> None:
    """All keyword tensors must be on one device; the message lists each one's device."""
    items = [(k, v) for k, v in tensors.items() if v is not None]
    if not items:
        return
    first = items[0][1].device
    if any(not same_device(v.device, first) for _, v in items[1:]):
        where = ", ".join(f"{k} on {v.device}" for k, v in items)
        raise ValueError(f"all inputs must be on one device, got {where}")


def check_indices(name: str, idx: torch.Tensor, upper: int, what: str = "vertices") -> None:
    """Every entry of the integer tensor ``idx`` must lie in ``[0, upper)``."""
    if idx.numel() == 0:
        return
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= upper:
        raise ValueError(f"{name} must index {what} in [0, {upper}), got values in [{lo}, {hi}]")


def check_resolution(name: str, resolution) -> tuple[int, int]:
    """``resolution`` must be a pair of positive ints (height, width); returns it as a tuple."""
    try:
        res = tuple(int(r) for r in resolution)
        ok = len(res) == 2 and all(r > 0 for r in res) and all(int(r) == r for r in resolution)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a pair of positive ints (height, width), got {resolution!r}")
    return res


def check_choice(name: str, value, choices: Sequence) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
