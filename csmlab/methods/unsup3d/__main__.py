"""Train and evaluate Unsup3D from the command line.

    python -m csmlab.methods.unsup3d --scale medium --threads 1            # synthetic faces, 32^2, CPU
    python -m csmlab.methods.unsup3d --scale medium --ablations --iters 800  # the ablation table
    python -m csmlab.methods.unsup3d --scale full                          # the paper's synface recipe, GPU
    python -m csmlab.methods.unsup3d --scale medium --set resolution=64    # any config key (Python literals)

Training writes ``<out>/unsup3d_<scale>.pt`` (float16 weights, see ``pretrained.py``) and
``<out>/unsup3d_<scale>.json``: the command, the config, the metrics on all / symmetric /
asymmetric test faces, the baselines (constant null depth, average GT depth, supervised),
the validation curve, the renderer backend and the wall time. It resumes from
``<workdir>/unsup3d_<scale>_train.pt``. ``--ablations`` trains every variant with the same
budget and writes ``<out>/unsup3d_<scale>_ablations.json``. ``--max-minutes`` caps the training
time: it stops at the first iteration past the cap and records how many iterations it ran.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from csmlab import dr

from .experiments import ablation_table, baselines, evaluate_split
from .fit import fit, load_faces
from .presets import PAPER_TABLE2, VARIANTS, get_config
from .pretrained import save_pretrained


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csmlab.methods.unsup3d", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke", choices=["smoke", "medium", "full"])
    parser.add_argument("--variant", default="full", choices=sorted(VARIANTS))
    parser.add_argument("--iters", type=int, default=None, help="override the preset's iteration count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default="notebooks/assets", help="folder for the checkpoint and the JSON")
    parser.add_argument("--workdir", default="build", help="folder for the resumable training checkpoint")
    parser.add_argument("--ablations", action="store_true", help="train every variant and write the ablation table")
    parser.add_argument("--variants", nargs="*", default=None, help="with --ablations: which variants (default: all)")
    parser.add_argument("--no-supervised", action="store_true", help="skip the supervised baseline")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop training after this many minutes of wall time (the JSON records where)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, Python literals (e.g. resolution=64 lam_depth_sm=1.0)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"seed": args.seed}
    if args.iters is not None:
        overrides["iters"] = args.iters
    for kv in args.set:
        key, sep, value = kv.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE pairs, got {kv!r}")
        overrides[key] = ast.literal_eval(value)
    cfg = get_config(args.scale, args.variant, **overrides)
    if cfg["data"] != "synthetic":
        print("The full recipe trains on Unsup3D's synface (csmlab.data.real.synface: synface/{train,test}/"
              "{image,depth}) on a GPU with VGG16 from csmlab.nets; run it from notebook 05, section 11.",
              file=sys.stderr)
        return 2
    out, work = Path(args.out), Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    name = f"unsup3d_{args.scale}" + ("" if args.variant == "full" else f"_{args.variant}")
    command = "python -m csmlab.methods.unsup3d " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    start = time.perf_counter()
    train, test = load_faces(cfg, "train"), load_faces(cfg, "test")
    print(f"data: {train['image'].shape[0]} train / {test['image'].shape[0]} test faces at {cfg['resolution']}^2 "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    common = {"command": command, "torch_threads": torch.get_num_threads(),
              "renderer": dr.backend_for(train["image"]), "paper_table2_synface": PAPER_TABLE2}
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
    if args.ablations:
        rows = {} if args.no_supervised else baselines(cfg, train, test, progress=not args.no_progress)
        print("baselines:", json.dumps(rows), flush=True)
        table = ablation_table(args.scale, args.variants or list(VARIANTS), train, test,
                               progress=not args.no_progress, deadline=deadline, **overrides)
        for row, metrics in table.items():
            print(f"{row:15s}", json.dumps(metrics.get("all", metrics)), flush=True)
        report = {**common, "cfg": cfg, "ablations": table, "baselines": rows,
                  "wall_seconds": round(time.perf_counter() - start, 1)}
        path = out / f"{name}_ablations.json"
        _atomic_write_text(path, json.dumps(report, indent=1, default=str))
        print(f"wrote {path}", flush=True)
        return 0
    rows = baselines(cfg, train, test, progress=not args.no_progress, supervised=not args.no_supervised)
    print("baselines:", json.dumps(rows), flush=True)
    if deadline is not None:   # the cap is on the training, which starts now
        deadline = time.time() + 60 * args.max_minutes
    t0 = time.perf_counter()
    model, history = fit(cfg, train, progress=not args.no_progress, checkpoint_path=work / f"{name}_train.pt",
                         eval_data=test, deadline=deadline)
    train_seconds = time.perf_counter() - t0
    metrics = evaluate_split(model, test)
    print(f"{args.variant}:", json.dumps(metrics), flush=True)
    report = {**common, "cfg": cfg, "metrics": metrics, "baselines": rows,
              "train_seconds": round(train_seconds, 1), "iterations_done": int(history["iterations_done"][-1]),
              "wall_seconds": round(time.perf_counter() - start, 1),
              "final_losses": {k: history.mean_last(k, 50) for k in history.names},
              "validation_curve": {k: list(zip(history.steps(k), history[k])) for k in ("val_side", "val_mad")
                                   if k in history}}
    path = save_pretrained(out / f"{name}.pt", model, cfg, metrics, history, command, extra={"baselines": rows})
    _atomic_write_text(out / f"{name}.json", json.dumps(report, indent=1, default=str))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {out / (name + '.json')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
