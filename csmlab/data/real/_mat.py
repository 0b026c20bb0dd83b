"""Reading MATLAB annotation files (CMR's CUB files, PASCAL3D+ records) with scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io


def loadmat(path: Path, *keys: str) -> dict:
    """``scipy.io.loadmat`` with structs as attribute objects and singleton dimensions squeezed.

    Raises ValueError naming the file when it cannot be read or lacks one of ``keys``.
    """
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as err:
        raise ValueError(f"{path} is not a readable MATLAB file ({err})") from None
    missing = [k for k in keys if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path} lacks the variables {missing}; found {found}")
    return mat


def as_list(x) -> list:
    """A MATLAB struct array loaded with squeeze_me as a list (a lone struct comes back unwrapped)."""
    return list(np.atleast_1d(x))
