"""Input validation shared by every op in ``csmlab.dr``.

nvdiffrast asserts on bad input (or, worse, reads out of bounds on the GPU).
The twin raises ``ValueError`` instead, and every message names the argument,
the form that was expected and what was received, e.g.::

    ValueError: pos must have 4 values in its last dimension ([..., 4]), got shape (2, 10, 3)

The generic helpers (``check_tensor``, ``describe``, the device checks) live in
:mod:`csmlab.checks`, shared with geometry, render and metrics; the ones here are
about nvdiffrast's own arguments (index ranges, resolutions, modes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from csmlab.checks import check_same_device, check_tensor, describe, same_device  # noqa: F401 (re-exported)

FLOAT_DTYPES = (torch.float32, torch.float64)
INDEX_DTYPES = (torch.int32, torch.int64)


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
