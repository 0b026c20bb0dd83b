"""Small ACSM checkpoints: float16 weights with the config, metrics, command and a downsampled loss history."""

from __future__ import annotations

import os
from pathlib import Path

from csmlab.train import History, downsample_history, load_checkpoint, restore_pretrained, save_checkpoint

from .fit import build_model
from .network import ACSMNet

# Rebuilt from the template at load time (the UV tables): not stored.
_REBUILT = ("template.", "texel_")


def save_pretrained(path: str | os.PathLike, model: ACSMNet, cfg: dict, metrics: dict | None = None,
                    history: History | None = None, command: str | None = None, extra: dict | None = None) -> Path:
    if not isinstance(model, ACSMNet):
        raise ValueError(f"model must be an ACSMNet, got {type(model).__name__}")
    weights = {k: (v.half() if v.is_floating_point() else v).cpu()
               for k, v in model.state_dict().items() if not k.startswith(_REBUILT)}
    return save_checkpoint(path, {
        "format": "csmlab.acsm/1", "cfg": cfg, "weights": weights, "metrics": metrics or {},
        "init_scale": model.camera.init_scale, "command": command,
        "history": downsample_history(history) if history is not None else None, "extra": extra or {}})


def load_pretrained(path: str | os.PathLike, category, device=None) -> tuple[ACSMNet, dict]:
    """Rebuild an ACSM file's network on ``category``. Returns (model in eval mode, info dict)."""
    state = load_checkpoint(path)
    if state.get("format") != "csmlab.acsm/1":
        raise ValueError(f"path must be an ACSM pretrained file (format 'csmlab.acsm/1'), got {state.get('format')!r}")
    cfg = state["cfg"]
    model = build_model(cfg, category, init_scale=state["init_scale"])
    return restore_pretrained(model, state, path, _REBUILT, device)
