"""Argument checks shared by every layer (geometry, dr, render, metrics, methods).

Bad input raises ``ValueError`` whose message names the argument, the form that
was expected and what was received, e.g.::

    ValueError: mask must be a tensor of shape [B,1,H,W] with B=2, H=8, W=8 (from pred_normals), got shape (2, 8, 8)

Shapes are written as specs: ``"B,3,H,W"`` or ``"...,K,2"``. A letter binds a size
the first time it is seen and must match afterwards; pass one ``dims`` dict to the
checks of all arguments of a call, and batch sizes, dtypes (``same_dtype``) and
devices are checked against each other. ``...`` stands for any leading dimensions,
which must also agree between the arguments that share ``dims``.

This module sits at the lowest layer (beside ``csmlab.config``): it imports only torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INDEX_DTYPES = (torch.int32, torch.int64)


def _dtype_names(dtypes: Iterable[torch.dtype]) -> str:
    return " or ".join(str(d).replace("torch.", "") for d in dtypes)


def describe(x) -> str:
    """A short description of ``x`` for error messages."""
    if isinstance(x, torch.Tensor):
        return f"a {str(x.dtype).replace('torch.', '')} tensor of shape {tuple(x.shape)} on {x.device}"
    return f"{type(x).__name__} {x!r}"[:200]


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


def _check_shape(name: str, x: torch.Tensor, spec: str, dims: dict) -> None:
    tokens = [t.strip() for t in spec.split(",")]
    lead = tokens[0] == "..."
    fixed = tokens[1:] if lead else tokens
    ok = x.dim() >= len(fixed) if lead else x.dim() == len(fixed)
    shape = tuple(x.shape)
    if ok and lead and "..." in dims and shape[:x.dim() - len(fixed)] != dims["..."][0]:
        ok = False
    if ok:
        for tok, size in zip(fixed, shape[x.dim() - len(fixed):]):
            if tok.isdigit():
                ok = ok and size == int(tok)
            elif tok in dims:
                ok = ok and size == dims[tok][0]
    if not ok:
        known = [f"{t}={dims[t][0]}" for t in dict.fromkeys(fixed) if t in dims and not t.isdigit()]
        if lead and "..." in dims:
            known.insert(0, f"...={list(dims['...'][0])}")
        sources = sorted({dims[t][1] for t in list(fixed) + ["..."] if t in dims and not t.isdigit()})
        context = f" with {', '.join(known)} (from {', '.join(sources)})" if known else ""
        raise ValueError(f"{name} must be a tensor of shape [{spec}]{context}, got shape {shape}")
    if lead:
        dims.setdefault("...", (shape[:x.dim() - len(fixed)], name))
    for tok, size in zip(fixed, shape[x.dim() - len(fixed):]):
        if not tok.isdigit():
            dims.setdefault(tok, (size, name))


def check_tensor(name: str, x, *, ndim: int | Sequence[int] | None = None,
                 last_dim: int | None = None, dtypes: Sequence[torch.dtype] | None = None,
                 device: torch.device | str | None = None, contiguous: bool = False,
                 finite: bool = False, shape: str | None = None, dims: dict | None = None,
                 nonempty: bool = False, same_dtype: bool = False) -> torch.Tensor:
    """Validate one tensor argument and return it unchanged.

    Args:
        name: the argument's name, used in the message.
        ndim: allowed number of dimensions (an int or a sequence of ints).
        last_dim: required size of the last dimension.
        dtypes: allowed dtypes (``FLOAT_DTYPES``, ``INDEX_DTYPES`` or your own).
        device: the device the tensor must be on (compared by type and index).
        contiguous: require ``x.is_contiguous()``.
        finite: reject NaN and inf values.
        shape: a shape spec such as ``"B,3,H,W"`` (see the module docstring).
        dims: sizes bound by earlier arguments of the same call; with it the
            device must match theirs (and the dtype too, with ``same_dtype``).
        nonempty: reject tensors with no entries.
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
    if shape is not None:
        _check_shape(name, x, shape, dims if dims is not None else {})
    if dtypes is not None and x.dtype not in tuple(dtypes):
        raise ValueError(f"{name} must have dtype {_dtype_names(dtypes)}, got {x.dtype}")
    if device is not None and not same_device(x.device, torch.device(device)):
        raise ValueError(f"{name} must be on device {device}, got {x.device}")
    if dims is not None:
        first = dims.setdefault("device", (x.device, name))
        if not same_device(x.device, first[0]):
            raise ValueError(f"{name} must be on the device of {first[1]} ({first[0]}), got {x.device}")
        if same_dtype:
            first = dims.setdefault("dtype", (x.dtype, name))
            if x.dtype != first[0]:
                raise ValueError(f"{name} must have the dtype of {first[1]} ({first[0]}), got {x.dtype}")
    if contiguous and not x.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous()), got strides {tuple(x.stride())}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if finite:
        check_finite(name, x)
    return x


def check_finite(name: str, x: torch.Tensor, where: torch.Tensor | None = None, what: str = "") -> None:
    """``x`` (or its entries where the boolean ``where`` is true) must hold no NaN or inf."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    bad = ~torch.isfinite(x)
    if where is not None:
        bad = bad & where
    n = int(bad.sum())
    if n:
        raise ValueError(f"{name} must hold finite values only{what}, got {n} NaN/inf entries")


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False):
    """A finite real number (a Python number or a one-element tensor) in the given range; returns it."""
    v = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    kind = "an int" if integer else "a finite number"
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if integer:
        ok = ok and float(v).is_integer()
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        rng = " and ".join(r for r in (lo, hi) if r)
        raise ValueError(f"{name} must be {kind}{' ' + rng if rng else ''}, got {describe(value)}")
    return v


def check_binary(name: str, x: torch.Tensor) -> torch.Tensor:
    """A mask or visibility: bool, or numbers that are all 0 or 1 (so that nothing is thresholded silently).

    Returns it as a bool tensor.
    """
    if x.dtype == torch.bool:
        return x
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16,
                                                                     torch.int32, torch.int64)):
        raise ValueError(f"{name} must be bool or 0/1 numbers, got {x.dtype}")
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        raise ValueError(f"{name} must be bool or hold only 0 and 1, got {int(bad.sum())} other values "
                         f"(e.g. {x[bad].flatten()[0].item()!r}); threshold it yourself if that is meant")
    return x != 0
