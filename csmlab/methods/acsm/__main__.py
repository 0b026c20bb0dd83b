"""Train and evaluate ACSM from the command line: ``python -m csmlab.methods.acsm --scale medium``.

Trains on synthetic birds drawn with the priors of ``cfg['rung']`` (seed ``10000 + seed``,
apart from the benchmark's; ``rung="B+C"`` mixes rungs in equal parts), evaluates the starting
network (with ``init_from``: the rigid CSM model it starts from) and the trained one on the
shared split's rungs B and C, and writes ``acsm_<scale>[_<variant>].pt`` (float16, <= 5 MB at
medium) and a ``.json`` with the command, the config and every metric into ``--out``.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import torch

from csmlab.io import atomic_write_text

from .evaluate import evaluate, predict
from .fit import build_model, fit, mask_init_scale, stack_dataset
from .network import load_csm_weights
from .presets import VARIANTS, get_config
from .pretrained import save_pretrained

EVAL_RUNGS = ("B", "C")


def parse_overrides(items) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def benchmark_data(cfg: dict, root=None) -> dict:
    from csmlab.data.synthetic import benchmark_split

    return {r: stack_dataset(benchmark_split("birds", r, cfg["resolution"], root=root), cfg) for r in EVAL_RUNGS}


def score(model, cfg: dict, category, bench: dict, use_parts: bool) -> dict:
    return {r: evaluate(model, d, category, cfg["n_pairs"], cfg["threshold"], pred=predict(model, d["image"]),
                        use_parts=use_parts, observable_fraction=cfg["observable_fraction"],
                        joint_hypothesis=0 if cfg.get("gt_cameras") else None)
            for r, d in bench.items()}


def training_data(cfg: dict, root=None, progress: bool = True) -> dict:
    """The training birds of ``cfg['rung']``: one rung ("C"), or an equal mix of several ("B+C"), drawn by
    ``mixed_rung_parts`` from seed ``10000 + seed``; each part is stacked on its own (its contour sample)."""
    from csmlab.data.synthetic import mixed_rung_parts

    parts = [stack_dataset(p, cfg) for p in mixed_rung_parts("birds", cfg["n_train"], cfg["resolution"], cfg["rung"],
                                                             10000 + int(cfg["seed"]), root=root, progress=progress)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def run(cfg: dict, out_dir: Path, progress: bool = True, max_minutes: float | None = None, root=None,
        command: str = "") -> dict:
    from csmlab.data.synthetic import get_category

    category = get_category(cfg["category"])
    t0 = time.time()
    data = training_data(cfg, root, progress)
    bench = benchmark_data(cfg, root)
    model = build_model(cfg, category, cfg["init_scale"] or mask_init_scale(category, data["mask"][:256]))
    if cfg["init_from"]:
        load_csm_weights(model, cfg["init_from"])
    start_metrics = score(model, cfg, category, bench, use_parts=False)
    t1 = time.time()
    model, history = fit(cfg, data, category, model=model, progress=progress,
                         max_seconds=max_minutes * 60 if max_minutes else None)
    train_seconds = time.time() - t1
    metrics = score(model, cfg, category, bench, use_parts=bool(cfg["use_parts"]))
    stopped = history["stopped_at"][-1] if "stopped_at" in history else cfg["iters"]
    name = f"acsm_{cfg['scale']}" + ("" if cfg["variant"] == "acsm" else f"_{cfg['variant']}")
    report = {"command": command, "cfg": cfg, "metrics": metrics, "start_metrics": start_metrics,
              "start": "CSM checkpoint " + cfg["init_from"] if cfg["init_from"] else "untrained",
              "iterations_done": int(stopped), "train_seconds": round(train_seconds, 1),
              "wall_seconds": round(time.time() - t0, 1), "torch_threads": torch.get_num_threads(),
              "final_losses": {k: history[k][-1] for k in history.names if k != "stopped_at"}}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_pretrained(out_dir / f"{name}.pt", model, cfg, metrics, history, command, {"start_metrics": start_metrics})
    atomic_write_text(out_dir / f"{name}.json", json.dumps(report, indent=1, default=float))
    return report


def rescore(path: Path, root=None) -> dict:
    """The metrics of a saved file with the current :func:`evaluate` (e.g. keys added after it was trained)."""
    from csmlab.data.synthetic import get_category

    from .pretrained import load_pretrained

    category = get_category("birds")
    model, info = load_pretrained(path, category)
    cfg = info["cfg"]
    return score(model, cfg, category, benchmark_data(cfg, root), use_parts=bool(cfg["use_parts"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m csmlab.methods.acsm", description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="smoke", choices=("smoke", "medium"))
    p.add_argument("--variant", default="acsm", choices=sorted(VARIANTS))
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--set", nargs="*", default=[], help="config overrides KEY=VALUE")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this wall time")
    p.add_argument("--out", default="notebooks/assets")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--rescore", default=None, metavar="FILE.pt",
                   help="only score a saved ACSM file on rungs B and C (today's evaluate) and print the metrics")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rescore:
        print(json.dumps(rescore(Path(args.rescore)), indent=1))
        return 0
    overrides = parse_overrides(args.set)
    if args.iters is not None:
        overrides["iters"] = args.iters
    cfg = get_config(args.scale, args.variant, **overrides)
    command = "python -m csmlab.methods.acsm " + " ".join(argv if argv is not None else sys.argv[1:])
    report = run(cfg, Path(args.out), progress=not args.no_progress, max_minutes=args.max_minutes, command=command)
    print(json.dumps({"metrics": report["metrics"], "start_metrics": report["start_metrics"],
                      "iterations_done": report["iterations_done"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
