"""Train and evaluate the KeypointNet pipeline from the command line.

    python -m csmlab.methods.keypointnet --scale medium --budget-min 60     # synthetic birds, CPU
    python -m csmlab.methods.keypointnet --scale full                      # KeypointNet + ShapeNet, GPU

Writes ``<out>/keypointnet_<scale>.pt`` (float16 pipeline, :mod:`.pretrained`) and
``<out>/keypointnet_<scale>.json`` (command, config, metrics of the trained pipeline and of
an untrained one, iterations reached, run time).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from .evaluation import evaluate
from .presets import get_config
from .pretrained import load_pretrained, save_pretrained
from .training import fit, make_data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csmlab.methods.keypointnet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke", choices=["smoke", "medium", "full"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--budget-min", type=float, default=None, help="wall-clock cap for training, minutes")
    parser.add_argument("--out", default="notebooks/assets")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate <out>/keypointnet_<scale>.pt with the current code and update its JSON")
    parser.add_argument("--backbone", default=None, choices=["pointnet", "dgcnn"],
                        help="with --evaluate-only: the backbone whose embeddings are projected "
                             "(default: the preset's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_config(args.scale, seed=args.seed)
    if args.scale == "full":
        print("The full recipe needs KeypointNet (annotations + pcds), ShapeNet renders and a GPU; "
              "see notebook 07's last section.", file=sys.stderr)
        return 2
    out, name = Path(args.out), f"keypointnet_{args.scale}"
    if args.evaluate_only:
        return _reevaluate(out, name, argv, not args.no_progress, args.backbone)
    start = time.time()
    data = make_data(cfg, progress=not args.no_progress)
    torch.manual_seed(args.seed)
    pipe, histories = fit(cfg, data, progress=not args.no_progress,
                          budget_s=None if args.budget_min is None else 60 * args.budget_min)
    train_s = time.time() - start
    metrics = evaluate(pipe, data)
    out.mkdir(parents=True, exist_ok=True)
    save_pretrained(out / f"{name}.pt", pipe, metrics)
    args_text = " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    report = {"command": "python -m csmlab.methods.keypointnet " + args_text,
              "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
              "iterations": {k: len(h["total"]) for k, h in histories.items()},
              "final_losses": {k: {n: h.mean_last(n) for n in h.names} for k, h in histories.items()},
              "train_seconds": round(train_s, 1), "total_seconds": round(time.time() - start, 1),
              "torch_threads": torch.get_num_threads(), "metrics": metrics}
    _write_json(out / f"{name}.json", report)
    print(json.dumps({"iterations": report["iterations"], "seconds": report["total_seconds"]}))
    return 0


def _write_json(path: Path, report: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=float))
    tmp.replace(path)


def _reevaluate(out: Path, name: str, argv, progress: bool, backbone: str | None = None) -> int:
    """Evaluate a saved pipeline again (same data, current evaluation code); the training record is kept."""
    pipe, _ = load_pretrained(out / f"{name}.pt")
    start = time.time()
    pipe.cfg["n_images_test"] = None          # the whole benchmark split
    if backbone is not None:
        pipe.cfg["headline_backbone"] = backbone
    metrics = evaluate(pipe, make_data(pipe.cfg, progress=progress, train_images=False))
    save_pretrained(out / f"{name}.pt", pipe, metrics)
    path = out / f"{name}.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report["metrics"] = metrics
    report["evaluation"] = {"command": "python -m csmlab.methods.keypointnet " + " ".join(argv or sys.argv[1:]),
                            "seconds": round(time.time() - start, 1)}
    _write_json(path, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
