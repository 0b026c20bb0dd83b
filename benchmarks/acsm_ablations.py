"""Notebook 04's comparison table: CSM and every ACSM variant, trained at one scale, scored on rungs B and C.

    python benchmarks/acsm_ablations.py --scale smoke --out notebooks/assets/acsm_ablations.json

Every variant trains from scratch on the same rung-C training birds with the same seed and
is evaluated on the shared split (``benchmark_split``) at the preset's resolution. CSM's row
is notebook 02's smoke preset on the same images (``csmlab.methods.csm``; this script may
import both methods, the library may not).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from csmlab.data.synthetic import benchmark_split, get_category, make_dataset, rung_priors
from csmlab.io import atomic_write_text
from csmlab.methods import acsm, csm

RUNGS = ("B", "C")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="smoke", choices=("smoke",))
    p.add_argument("--variants", nargs="*", default=list(acsm.VARIANTS))
    p.add_argument("--out", default="notebooks/assets/acsm_ablations.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=None, help="override every run's iterations (a dry run)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cat = get_category("birds")
    quick = {} if args.iters is None else {"iters": args.iters, "pose_warmup_iters": min(args.iters // 3, 60),
                                            "articulation_warmup_iters": min(2 * args.iters // 3, 120)}
    base = acsm.get_config(args.scale, **quick)
    res = base["resolution"]
    train_ds = make_dataset("birds", base["n_train"], res, seed=10000 + base["seed"], progress=False,
                            **rung_priors(base["rung"]))
    train = acsm.stack_dataset(train_ds, base)
    bench = {r: acsm.stack_dataset(benchmark_split("birds", r, res), base) for r in RUNGS}
    rows, seconds = {}, {}

    t = time.time()
    ccfg = csm.get_config(args.scale, rung="C", **({} if args.iters is None else {"iters": args.iters}))
    cmodel, _ = csm.fit(ccfg, csm.stack_samples(train_ds), cat, progress=False)
    rows["CSM (rigid)"] = {}
    for r in RUNGS:
        stacked = csm.stack_samples(benchmark_split("birds", r, res))
        m = csm.evaluate(cmodel, stacked, n_pairs=base["n_pairs"])
        # a rigid model predicts the rest pose: score the articulation of zero angles with ACSM's rule
        zero = acsm.evaluate(acsm.build_model(base, cat), bench[r], cat, n_pairs=10, use_parts=False)
        rows["CSM (rigid)"][r] = {**m, "articulation_error_deg": zero["rest_pose_error_deg"],
                                  "rest_pose_error_deg": zero["rest_pose_error_deg"]}
    seconds["CSM (rigid)"] = round(time.time() - t, 1)

    for variant in args.variants:
        t = time.time()
        cfg = acsm.get_config(args.scale, variant, **quick)
        model, _ = acsm.fit(cfg, train, cat, progress=False)
        name = {"acsm": "ACSM, 5 parts, single axis"}.get(variant, f"ACSM {variant.replace('_', ' ')}")
        rows[name] = {r: acsm.evaluate(model, bench[r], cat, n_pairs=cfg["n_pairs"], use_parts=cfg["use_parts"])
                      for r in RUNGS}
        seconds[name] = round(time.time() - t, 1)
        print(name, {r: rows[name][r]["transfer_pck"] for r in RUNGS}, seconds[name], flush=True)

    report = {"scale": args.scale,
              "scale_note": f"{args.scale} scale: {base['iters']} iterations from scratch, {res}x{res}, "
                            f"{base['n_train']} rung-C training birds, one seed; smoke-size numbers, noisy",
              "command": "python benchmarks/acsm_ablations.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "rows": rows, "seconds": seconds, "torch_threads": args.threads,
              "not_run": ["the same table at medium scale (CPU time: one medium run fits in this session)"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
