"""``python -m csmlab.methods.ttp --scale medium``: train end-to-end To The Point, save it, evaluate it.

Writes ``<out>/ttp_<scale>[_<variant>].pt`` (the network in float32, the config, the
loss history, the command) and, unless ``--no-eval``, ``<out>/ttp_<scale>[_<variant>].json``
(the metrics of :func:`.evaluate_e2e.evaluate_rungs`; at ``--scale full``, on CUB's test split:
:func:`.full_scale.evaluate_cub`, beside the paper's numbers). ``--evaluate CKPT`` only evaluates.
``--ablations`` trains every variant of :data:`.presets.VARIANTS` at the chosen scale and
``--iters`` (the ablation budget) and writes ``<out>/ttp_ablations.json``: each variant's
metrics on rung B of the shared split, the table of notebook 03's section 8.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch


def save_model(path: Path, model, cfg: dict, history, command: str, seconds: float) -> None:
    from csmlab.train import save_checkpoint

    save_checkpoint(path, {"model": {k: v.float() for k, v in model.state_dict().items()}, "cfg": cfg,
                           "history": history.state_dict(), "iterations": len(history["total"]),
                           "command": command, "train_seconds": seconds})


def load_model(path):
    """(model, cfg, checkpoint dict) of a checkpoint written by this command."""
    from csmlab.train import load_checkpoint

    from .fit_e2e import build_model
    from .full_scale import category_for

    state = load_checkpoint(path)
    cfg = state["cfg"]
    model = build_model(cfg, category_for(cfg))
    model.load_state_dict(state["model"])
    model.eval()
    return model, cfg, state


def main(argv=None) -> int:
    from .fit_e2e import fit, training_data
    from .presets import VARIANTS, get_config

    p = argparse.ArgumentParser(prog="python -m csmlab.methods.ttp", description=__doc__)
    p.add_argument("--scale", default="medium", choices=("smoke", "medium", "full"))
    p.add_argument("--variant", default="ttp", choices=sorted(VARIANTS))
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock cap of the training loop")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="notebooks/assets")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--evaluate", default=None, metavar="CKPT", help="only evaluate this checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry")
    p.add_argument("--ablations", action="store_true", help="train every variant, write ttp_ablations.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m csmlab.methods.ttp " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.evaluate:
        return _evaluate(Path(args.evaluate), command)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    if args.iters is not None:
        overrides["iters"] = args.iters
    if args.max_minutes is not None:
        overrides["max_minutes"] = args.max_minutes
    if args.ablations:
        return _ablations(args.scale, overrides, out, command, not args.no_progress)
    cfg = get_config(args.scale, args.variant, **overrides)
    if cfg["data"] == "cub":
        from .full_scale import cub_splits

        data, test = cub_splits(cfg)
        print(f"data: {len(data)} train / {test['image'].shape[0]} test images (CUB, CMR's splits)", flush=True)
    else:
        data = training_data(cfg)
    start = time.monotonic()
    def log(iteration, model, history):   # a line every 50 iterations, for logs on disk
        if iteration % 50 == 0:
            keys = [k for k in ("total", "mask", "texture", "cycle", "arap", "deformation", "equivariance", "mask_iou",
                                "camera_error_deg") if k in history]
            print(f"[{time.monotonic() - start:7.0f}s] it {iteration} "
                  + " ".join(f"{k}={history.mean_last(k, 50):.4g}" for k in keys), flush=True)

    model, history = fit(cfg, data, progress=not args.no_progress, callback=log)
    seconds = time.monotonic() - start
    name = f"ttp_{args.scale}" + ("" if args.variant == "ttp" else f"_{args.variant}")
    ckpt = out / f"{name}.pt"
    save_model(ckpt, model, cfg, history, command, seconds)
    print(f"saved {ckpt} after {len(history['total'])} iterations, {seconds / 60:.1f} min")
    # the command that re-scores this checkpoint (not the training command that happened to score it first)
    return 0 if args.no_eval else _evaluate(ckpt, f"python -m csmlab.methods.ttp --evaluate {shlex.quote(str(ckpt))}")


def _evaluate_cub(ckpt: Path, command: str, model, cfg: dict, state: dict) -> int:
    from .full_scale import PAPER, category_for, cub_splits, evaluate_cub

    _, test = cub_splits(cfg)
    metrics = evaluate_cub(model, test, cfg, category_for(cfg))
    record = {"command": state.get("command", command), "evaluate_command": command, "cfg": cfg,
              "train_seconds": state.get("train_seconds"), "iterations": state.get("iterations"),
              "metrics": {"cub_test": metrics}, "paper": PAPER}
    ckpt.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str))
    for key in ("mask_iou", "keypoint_pck"):
        paper = PAPER[key]
        print(f"CUB test {key}: ours {metrics[key]:.3f}, paper {'not verified' if paper is None else paper}")
    return 0


def _ablations(scale: str, overrides: dict, out: Path, command: str, progress: bool) -> int:
    from .evaluate_e2e import evaluate, evaluation_sets
    from .fit_e2e import fit, training_data
    from .presets import VARIANTS, get_config

    rows, seconds = {}, {}
    base = get_config(scale, **overrides)
    if base["data"] != "synthetic":
        print("The ablations run on the synthetic birds (smoke or medium scale).")
        return 2
    data = training_data(base)
    rung_b = evaluation_sets(base)["rungs"]["B"]
    for variant in VARIANTS:
        cfg = get_config(scale, variant, **overrides)
        start = time.monotonic()
        model, history = fit(cfg, data, progress=progress)
        seconds[variant] = round(time.monotonic() - start, 1)
        metrics = evaluate(model, rung_b, cfg)
        metrics.pop("per_image")
        rows[f"{variant} ({len(history['total'])} it.)"] = metrics
        print(variant, json.dumps(metrics), flush=True)
    changed = {k: v for k, v in overrides.items() if k not in ("iters", "max_minutes")}
    recipe = f"{scale} preset" + (" with " + ", ".join(f"{k}={v}" for k, v in changed.items()) if changed else "")
    budget = f"{recipe}, {base['iters']} iterations per variant, rung B of the shared split"
    record = {"command": command, "budget": budget, "train_seconds": seconds, "rows": rows}
    (out / "ttp_ablations.json").write_text(json.dumps(record, indent=1, default=str))
    return 0


def _evaluate(ckpt: Path, command: str) -> int:
    from csmlab.data.synthetic import get_category

    from .evaluate_e2e import evaluate, evaluate_rungs, evaluation_sets
    from .fit_e2e import build_model

    model, cfg, state = load_model(ckpt)
    if cfg.get("data") == "cub":
        return _evaluate_cub(ckpt, command, model, cfg, state)
    metrics = evaluate_rungs(model, cfg)
    # the same network untrained (its regressor starts at the template seen from the side): what training moved
    fresh = build_model(cfg, get_category(cfg["category"])).eval()
    untrained = evaluate(fresh, evaluation_sets(cfg)["rungs"]["B"], cfg)
    untrained.pop("per_image")
    metrics["untrained_B"] = untrained
    record = {"command": state.get("command", command), "evaluate_command": command, "cfg": cfg,
              "train_seconds": state.get("train_seconds"),
              "iterations": state.get("iterations"), "metrics": metrics}
    path = ckpt.with_suffix(".json")
    path.write_text(json.dumps(record, indent=1, default=str))
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
