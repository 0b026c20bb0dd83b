"""Small checkpoints of trained Unsup3D models: float16 weights, the config, metrics and the command.

Written atomically with ``csmlab.train.save_checkpoint``; ``load_pretrained`` rebuilds the model
from the stored config, checks the weights load strictly and returns it in float32, eval mode.
"""

from __future__ import annotations

from pathlib import Path

from csmlab.train import History, load_checkpoint, save_checkpoint

from .model import MODEL_KEYS, OPTIONAL_DEFAULTS, Unsup3D

FORMAT = "csmlab.unsup3d/1"


def _thin(history: History, keep: int = 300) -> dict:
    """Every term's (steps, values), subsampled to at most ``keep`` points (the loss curves of the notebook)."""
    out = {}
    for name in history.names:
        steps, values = history.steps(name), history[name]
        stride = max(1, len(values) // keep)
        out[name] = {"steps": steps[::stride], "values": values[::stride]}
    return out


def save_pretrained(path, model: Unsup3D, cfg: dict, metrics: dict, history: History, command: str,
                    extra: dict | None = None) -> Path:
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    return save_checkpoint(path, {"format": FORMAT, "model": state, "cfg": cfg, "metrics": metrics,
                                  "history": _thin(history), "command": command, "extra": extra or {}})


def load_pretrained(path) -> tuple[Unsup3D, dict]:
    """(model, record) from a file written by :func:`save_pretrained`; record holds cfg, metrics, history, command."""
    state = load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an Unsup3D checkpoint of format {FORMAT!r} (got {state.get('format')!r})")
    cfg = state["cfg"]
    model = Unsup3D({k: cfg[k] for k in (*MODEL_KEYS, *OPTIONAL_DEFAULTS) if k in cfg})
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()},
                          strict=True)
    return model.eval(), {k: v for k, v in state.items() if k != "model"}
