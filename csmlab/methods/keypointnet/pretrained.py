"""Save and load a trained :class:`KeypointPipeline` as one small float16 file (the committed medium checkpoint).

Written atomically by :func:`csmlab.train.save_checkpoint`. The file holds the
config (which rebuilds the networks), the float16 state dicts, the mean keypoint
embeddings and, optionally, the metrics it reached.
"""

from __future__ import annotations

from csmlab.train import load_checkpoint, save_checkpoint

from .networks import KeypointModel
from .training import KeypointPipeline
from .viewpoint import ViewpointNet

FORMAT = "csmlab.keypointnet/1"


def _half(state: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def save_pretrained(path, pipe: KeypointPipeline, metrics: dict | None = None):
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pipe.cfg.items()}
    return save_checkpoint(path, {
        "format": FORMAT, "cfg": cfg, "keypoint_names": pipe.keypoint_names,
        "models": {b: _half(m.state_dict()) for b, m in pipe.models.items()},
        "means": {b: m.half() for b, m in pipe.means.items()},
        "viewpoint": _half(pipe.viewpoint.state_dict()) if pipe.viewpoint is not None else None,
        "metrics": metrics})


def load_pretrained(path) -> tuple[KeypointPipeline, dict | None]:
    """(pipeline in eval mode, stored metrics) from a file written by :func:`save_pretrained`."""
    state = load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a KeypointNet pipeline file (format {state.get('format')!r}, "
                         f"expected {FORMAT!r})")
    cfg = state["cfg"]
    pipe = KeypointPipeline(cfg=cfg, keypoint_names=state["keypoint_names"])
    for b, sd in state["models"].items():
        width = cfg["width"] if b == "pointnet" else cfg["dgcnn_width"]
        model = KeypointModel(b, cfg["emb_dim"], width, cfg["knn"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
        pipe.models[b] = model.eval()
        pipe.means[b] = state["means"][b].float()
    if state["viewpoint"] is not None:
        net = ViewpointNet(cfg["view_base"], downsample=cfg["view_downsample"])
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["viewpoint"].items()})
        pipe.viewpoint = net.eval()
    return pipe, state.get("metrics")
