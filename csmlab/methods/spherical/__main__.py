"""Train and evaluate Spherical Maps on the synthetic birds from the command line.

    python -m csmlab.methods.spherical --scale medium --out notebooks/assets/spherical_medium.pt

Trains the label-free feature net (source a), a sphere model on it and one on the stand-in
(source b), evaluates both on the benchmark rung, and writes the checkpoint plus a ``.json``
beside it with the command, config and metrics. ``--scale full`` is the paper's recipe and
needs SPair-71k, the DINOv2 weights and a GPU (``csmlab.methods.spherical.full``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .evaluate import oracle_metrics
from .experiment import run
from .presets import spherical_preset
from .pretrained import save_pretrained


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m csmlab.methods.spherical", description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="smoke", choices=("smoke", "medium", "full"))
    ap.add_argument("--out", required=True, help="checkpoint path (.pt); metrics go to the same name with .json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=None, help="override the sphere-mapper iterations")
    ap.add_argument("--feat-iters", type=int, default=None, help="override the feature-net iterations")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.scale == "full":
        from .full import explain_requirements
        print(explain_requirements())
        return 2
    torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in (("iters", args.iters), ("feat_iters", args.feat_iters)) if v is not None}
    cfg = spherical_preset(args.scale, **overrides)
    t0 = time.time()
    a = run({**cfg, "source": "net"}, progress=not args.no_progress)
    t_a = time.time() - t0
    b = run({**cfg, "source": "standin"}, progress=not args.no_progress)
    metrics = {"net": a["metrics"], "standin": b["metrics"]}
    # what a perfect sphere would reach under the same evaluation: the bound on the targets
    oracle = {src: oracle_metrics(r["test"], cfg["n_pairs"], cfg["seed"], cfg["alphas"], cfg["fuse"])
              for src, r in (("net", a), ("standin", b))}
    command = "python -m csmlab.methods.spherical " + " ".join(sys.argv[1:] if argv is None else argv)
    timing = {"wall_s_source_a": round(t_a, 1), "wall_s_total": round(time.time() - t0, 1)}
    out = Path(args.out)
    save_pretrained(out, cfg, {"net": a["model"], "standin": b["model"]}, a["net"], metrics,
                    {"net": a["history"], "standin": b["history"]}, command,
                    {"feature_losses": a["feature_losses"][::max(1, len(a["feature_losses"]) // 300)],
                     "oracle": oracle, **timing})
    out.with_suffix(".json").write_text(json.dumps({"command": command, "cfg": cfg, "metrics": metrics,
                                                    "oracle": oracle, **timing}, indent=1, default=str))
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
