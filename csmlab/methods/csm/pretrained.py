"""Small, self-describing CSM checkpoints (the committed ``notebooks/assets`` one and any you train).

A pretrained file holds the config, the network weights in float16 (half the
size; the network runs in float32 after loading), the metrics it reached, the
command that produced it and a downsampled loss history for the notebook's
plots. It is written atomically by :func:`csmlab.train.save_checkpoint`.
"""

from __future__ import annotations

import os
from pathlib import Path

from csmlab.train import History, downsample_history, load_checkpoint, restore_pretrained, save_checkpoint  # noqa: F401

from .fit import build_model
from .network import CSMNet
from .template import load_template

# Buffers rebuilt from the category at load time; storing them would only add size.
_REBUILT = ("template.",)


def save_pretrained(path: str | os.PathLike, model: CSMNet, cfg: dict, metrics: dict | None = None,
                    history: History | None = None, command: str | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` (float16 weights) with its config, metrics, command and loss history."""
    if not isinstance(model, CSMNet):
        raise ValueError(f"model must be a CSMNet, got {type(model).__name__}")
    weights = {k: (v.half() if v.is_floating_point() else v).cpu()
               for k, v in model.state_dict().items() if not k.startswith(_REBUILT)}
    return save_checkpoint(path, {
        "format": "csmlab.csm/1", "cfg": cfg, "weights": weights, "metrics": metrics or {},
        "init_scale": model.camera.init_scale, "command": command,
        "history": downsample_history(history) if history is not None else None, "extra": extra or {}})


def load_pretrained(path: str | os.PathLike, category=None, device=None) -> tuple[CSMNet, dict]:
    """Rebuild the network of a :func:`save_pretrained` file. Returns (model in eval mode, info dict).

    ``info`` has ``cfg``, ``metrics``, ``command``, ``history`` (a :class:`History` or None).
    """
    state = load_checkpoint(path)
    if state.get("format") != "csmlab.csm/1":
        raise ValueError(f"{path} is not a CSM pretrained file (format {state.get('format')!r}); "
                         f"training checkpoints from csmlab.train are resumed with fit(checkpoint_path=...)")
    cfg = state["cfg"]
    category = category if category is not None else load_template(cfg)
    model = build_model(cfg, category.template, category.template_uv, init_scale=state["init_scale"],
                        canonical_verts=getattr(category, "canonical_verts", None))
    return restore_pretrained(model, state, path, _REBUILT, device)
