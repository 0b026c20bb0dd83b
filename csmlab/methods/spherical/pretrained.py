"""Small, self-describing checkpoints: the label-free feature net (source a), the sphere model, config,
metrics, command and a downsampled loss history. Weights are stored in float16 (half the size)."""

from __future__ import annotations

import os
from pathlib import Path

from csmlab.train import History, downsample_history, load_checkpoint, save_checkpoint

from .features import FeatureNet
from .fit import build

FORMAT = "csmlab.spherical/1"


def _half(module) -> dict | None:
    if module is None:
        return None
    return {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in module.state_dict().items()}


def _downsample(history: History | None) -> dict | None:
    return None if history is None else downsample_history(history)


def save_pretrained(path: str | os.PathLike, cfg: dict, models: dict, net: FeatureNet | None = None,
                    metrics: dict | None = None, histories: dict | None = None, command: str | None = None,
                    extra: dict | None = None) -> Path:
    """Write sphere models (one per feature source, ``{source: SphericalMapModel}``) and the feature net."""
    return save_checkpoint(path, {
        "format": FORMAT, "cfg": cfg, "command": command, "metrics": metrics or {}, "extra": extra or {},
        "net": _half(net), "net_dims": None if net is None else {"dim": net.dim, "width": cfg["feat_width"]},
        "models": {k: _half(m) for k, m in models.items()},
        "histories": {k: _downsample(h) for k, h in (histories or {}).items()}})


def load_pretrained(path: str | os.PathLike) -> dict:
    """{cfg, net (FeatureNet or None), models {source: SphericalMapModel}, metrics, command, histories, extra}."""
    state = load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Spherical Maps checkpoint (format {state.get('format')!r}, "
                         f"expected {FORMAT!r})")
    cfg = state["cfg"]
    net = None
    if state["net"] is not None:
        net = FeatureNet(**state["net_dims"])
        net.load_state_dict({k: v.float() for k, v in state["net"].items()})
        net.eval()
    models = {}
    for source, weights in state["models"].items():
        m = build({**cfg, "feat_dim": cfg["feat_dim"]})
        m.load_state_dict({k: v.float() for k, v in weights.items()})
        models[source] = m.eval()
    hist = {k: (History.from_state_dict(h) if h is not None else None) for k, h in state["histories"].items()}
    return {"cfg": cfg, "net": net, "models": models, "metrics": state["metrics"], "command": state["command"],
            "histories": hist, "extra": state["extra"]}
