"""Train and evaluate CSM from the command line.

    python -m csmlab.methods.csm --scale medium                        # masks only, synthetic birds, 64^2, CPU
    python -m csmlab.methods.csm --scale medium --ablations --iters 1000  # the ablation table (shorter runs)
    python -m csmlab.methods.csm --scale full                          # the paper's recipe: CUB, GPU
    python -m csmlab.methods.csm --scale full --set device=cpu --set iters=20 ...   # a CPU try-out

The full recipe reads CUB lazily (a DataLoader with ``loader_workers`` processes), maps
onto CMR's SfM mean bird (``template="cub_sfm"``), checkpoints every tenth of the run
and resumes after an interruption (rerun the same command).

Training writes ``<out>/csm_<scale>.pt`` (a small float16 pretrained file, see
``pretrained.py``) and ``<out>/csm_<scale>.json`` with the command, the config,
the metrics (and the untrained baseline's) and the run time; it resumes from
``<workdir>/csm_<scale>_seed<S>[_KEY=VALUE...]/train.pt`` if a previous run of the same
seed and overrides was interrupted, and refuses a checkpoint whose config or data
differ (naming the keys) unless ``--restart`` is given.
``--init FILE`` fine-tunes the network of a pretrained file (same network keys) instead of a
fresh one, e.g. the committed full-prior checkpoint on rung B's birds; the JSON records it.
``--ablations`` instead trains every variant (untrained, CSM, no cycle, no
visibility, one hypothesis, with pose) and writes ``<out>/csm_<scale>_ablations.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from csmlab.io import atomic_write_text
from csmlab.train import ResumeMismatch, run_name

from .experiments import ablation_table, make_splits, run_variant, split_sizes, untrained_metrics
from .presets import PAPER_APK, VARIANTS, get_config
from .pretrained import load_pretrained, save_pretrained
from .template import load_template


def parse_overrides(items: list[str]) -> dict:
    """``["key=value", ...]`` -> dict; values are JSON when they parse (numbers, true, [1, 2]), else strings."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def stored_command(argv: list[str]) -> str:
    """The command line as it is stored: ``--out``/``--workdir`` outside the working directory become placeholders.

    A machine-local path (``/tmp/run42/work``) in a shipped JSON tells a reader nothing and
    cannot be rerun elsewhere; ``<workdir>``-style placeholders say what went there.
    """
    shown, path_flags = [], {"--out": "<out>", "--workdir": "<workdir>"}
    argv = list(argv)
    for i, a in enumerate(argv):
        flag, eq, value = a.partition("=")
        if eq and flag in path_flags:
            a = f"{flag}={_portable(value, path_flags[flag])}"
        elif i > 0 and argv[i - 1] in path_flags:
            a = _portable(a, path_flags[argv[i - 1]])
        shown.append(shlex.quote(a) if not a.startswith("<") else a)
    return "python -m csmlab.methods.csm " + " ".join(shown)


def _portable(value: str, placeholder: str) -> str:
    p = Path(value)
    if not p.is_absolute():
        return value
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return placeholder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csmlab.methods.csm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke", choices=["smoke", "medium", "full"])
    parser.add_argument("--variant", default="csm", choices=sorted(VARIANTS))
    parser.add_argument("--iters", type=int, default=None, help="override the preset's iteration count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default="notebooks/assets", help="folder for the pretrained file and the JSON")
    parser.add_argument("--workdir", default="build", help="folder for the resumable training checkpoint")
    parser.add_argument("--ablations", action="store_true",
                        help="train every variant (with --iters each) and write the ablation table instead")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any preset key, e.g. --set eval_every=1000 (value read as JSON if it "
                             "parses, else as a string); repeatable")
    parser.add_argument("--variants", nargs="+", default=None, choices=sorted(VARIANTS),
                        help="with --ablations: only these variants (default: all)")
    parser.add_argument("--restart", action="store_true",
                        help="start training over, ignoring (and replacing) a checkpoint in the run's work folder")
    parser.add_argument("--init", default=None, metavar="FILE",
                        help="fine-tune the network of this pretrained file (its network keys must match the "
                             "config) instead of starting from a fresh one")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"seed": args.seed, **parse_overrides(args.set)}
    if args.iters is not None:
        overrides["iters"] = args.iters
    cfg = get_config(args.scale, args.variant, **overrides)
    if cfg["data"] == "cub" and not torch.cuda.is_available() and cfg["device"] is None:
        print("The full recipe trains on CUB-200-2011 with the CMR annotations on a GPU; no CUDA device here.\n"
              "To try the data path on a CPU anyway, pass --set device=cpu with small overrides.", file=sys.stderr)
        return 2
    out, work = Path(args.out), Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    name = f"csm_{args.scale}" + ("" if args.variant == "csm" else f"_{args.variant}")
    command = stored_command(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    train, val = make_splits(cfg)
    category = load_template(cfg)
    n_train, n_val = split_sizes(train, val)
    print(f"data: {n_train} train / {n_val} held-out images at "
          f"{cfg['resolution']}^2 ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.ablations:
        table = ablation_table(args.scale, args.variants or list(VARIANTS), train, val, category,
                               progress=not args.no_progress,
                               **overrides)
        for row, metrics in table.items():
            print(f"{row:15s}", metrics, flush=True)
        report = {"command": command, "cfg": cfg, "ablations": table, "torch_threads": torch.get_num_threads(),
                  "wall_seconds": round(time.perf_counter() - start, 1), "paper_transfer_apk_cub": PAPER_APK}
        path = out / f"csm_{args.scale}_ablations.json"
        atomic_write_text(path, json.dumps(report, indent=1, default=str))
        print(f"wrote {path}", flush=True)
        return 0
    baseline = untrained_metrics(cfg, train, val, category)
    print("untrained:", baseline, flush=True)
    start_model, init_info = initial_network(args.init, cfg, category)
    run_keys = {**overrides, **({"init": Path(args.init).stem} if args.init else {})}
    try:
        model, history, metrics = run_variant(cfg, train, val, category, progress=not args.no_progress,
                                              model=start_model,
                                              checkpoint_path=work / run_name(name, args.seed, run_keys) / "train.pt",
                                              restart=args.restart)
    except ResumeMismatch as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.variant}:", metrics, flush=True)
    report = {"command": command, "cfg": cfg, "metrics": metrics, "untrained": baseline,
              "torch_threads": torch.get_num_threads(), "wall_seconds": round(time.perf_counter() - start, 1),
              "final_losses": {k: history.mean_last(k, 50) for k in history.names},
              "validation_curve": {k: list(zip(history.steps(k), history[k])) for k in ("val_pck", "val_surface_error")
                                   if k in history},
              "paper_transfer_apk_cub": PAPER_APK, **init_info}
    path = save_pretrained(out / f"{name}.pt", model, cfg, metrics, history, command,
                           extra={"untrained": baseline, **init_info})
    atomic_write_text(out / f"{name}.json", json.dumps(report, indent=1, default=str))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {out / (name + '.json')}", flush=True)
    return 0


# The config keys that shape the network: a fine-tuned file must agree on all of them.
NETWORK_KEYS = ("n_hypotheses", "unet_base", "unet_depth", "cam_base", "cam_down", "squash", "norm", "coords",
                "stem_stride", "uv_grid", "camera_encoder", "elevation_deg", "max_elevation_deg", "max_roll_deg")


def initial_network(path, cfg: dict, category) -> tuple[object, dict]:
    """(network to fine-tune or None, what the JSON records about it) for ``--init``."""
    if path is None:
        return None, {}
    model, info = load_pretrained(path, category)
    stored = {"camera_encoder": "convs", **info["cfg"]}       # files from before the key existed used convs
    differ = {k: (stored.get(k), cfg[k]) for k in NETWORK_KEYS if _as_list(stored.get(k)) != _as_list(cfg[k])}
    if differ:
        raise SystemExit(f"--init {path}: its network differs from the config's (file, config): {differ}")
    return model, {"init": {"file": Path(path).name, "command": info["command"], "metrics": info["metrics"],
                            "data": "rung " + str(info["cfg"].get("rung")) if info["cfg"].get("rung")
                            else "full priors (make_dataset defaults)"}}


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


if __name__ == "__main__":
    sys.exit(main())
