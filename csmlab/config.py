"""Scale presets, the data root and the device choice.

This is the lowest layer: it imports nothing from csmlab.
"""

from __future__ import annotations

import os
from pathlib import Path

SCALES = ("smoke", "medium", "full")


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is a known preset name, else raise ValueError."""
    if scale not in SCALES:
        raise ValueError(f"SCALE must be one of {SCALES}, got {scale!r}")
    return scale


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds datasets and caches.

    Order: the explicit ``root`` argument, then ``$CSMLAB_DATA``, then ``./data``.
    The folder is not created here; writers create what they need.
    """
    if root is None:
        root = os.environ.get("CSMLAB_DATA", "data")
    return Path(root).expanduser().resolve()


def get_device(device=None):
    """Pick the compute device (a ``torch.device``): the argument, else CUDA when available, else CPU."""
    import torch  # imported here so that data scripts start without loading torch

    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def preset(presets: dict[str, dict], scale: str, **overrides) -> dict:
    """Pick one scale's hyper-parameters from a method's ``{scale: dict}`` table.

    Methods keep their own tables (the paper's recipe under "full"); this only
    validates the scale and applies keyword overrides, refusing unknown keys.
    """
    check_scale(scale)
    if scale not in presets:
        raise ValueError(f"this method has no {scale!r} preset; available: {sorted(presets)}")
    cfg = dict(presets[scale])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    cfg["scale"] = scale
    return cfg
