"""Short TTP runs from the CSM-taught start, scored on rung B after the teacher stage and after training.

    python benchmarks/ttp_short_runs.py --name baseline --iters 400 [--set KEY=VALUE ...]
        [--out notebooks/assets/ttp_short_runs.json] [--teacher-cache FILE]

The medium recipe of the committed checkpoint (``BASE``: CSM teacher, lr 1e-4, 64 px silhouette,
32 px distance grid) with ``--set`` overrides, ``--iters`` TTP iterations (the cosine schedule
over them). Each run adds (or replaces) its row ``name`` in the JSON: the overrides, the seconds,
and the rung-B metrics of :func:`csmlab.methods.ttp.evaluate_e2e.evaluate` after the teacher
stage and after training. ``--teacher-cache``: the CSM map's correspondences on the training
images, computed once and reused (they depend on the training set and the CSM file only).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

BASE = {"teacher": "notebooks/assets/csm_medium.pt", "lr": 1e-4, "render_resolution": 64, "dt_resolution": 32}
KEEP = ("camera_error_deg", "camera_error_mirror_deg", "mask_iou", "transfer_pck", "transfer_apk", "shape_error")


def main(argv=None) -> int:
    from csmlab.data.synthetic import get_category
    from csmlab.methods.ttp.evaluate_e2e import evaluate, evaluation_sets
    from csmlab.methods.ttp.fit_e2e import build_model, fit, training_data
    from csmlab.methods.ttp.presets import get_config
    from csmlab.methods.ttp.teacher import pretrain_regressor, teacher_correspondences
    from csmlab.train import seed_everything

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="notebooks/assets/ttp_short_runs.json")
    p.add_argument("--teacher-cache", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    overrides = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    cfg = get_config("medium", **{**BASE, **overrides, "iters": args.iters})
    category = get_category(cfg["category"])
    data = training_data(cfg, progress=False)
    data = {"image": data.batch(slice(None))["image"].float(), "mask": data.batch(slice(None))["mask"].float()}
    start = time.monotonic()
    cache = Path(args.teacher_cache) if args.teacher_cache else None
    if cache is not None and cache.exists():
        uv, vis = torch.load(cache)
    else:
        uv, vis = teacher_correspondences(cfg["teacher"], data["image"], data["mask"], category)
        if cache is not None:
            torch.save((uv, vis), cache)
    seed_everything(int(cfg["seed"]))   # the encoder's initialisation (fit seeds again before training)
    model = build_model(cfg, category)
    pretrain_regressor(model, data["image"], uv, vis, int(cfg["teacher_iters"]), int(cfg["teacher_batch"]),
                       float(cfg["teacher_lr"]), int(cfg["seed"]),
                       category.vertex_flip if cfg.get("teacher_flip") else None)
    rung_b = evaluation_sets(cfg)["rungs"]["B"]

    def score(m):
        r = evaluate(m, rung_b, cfg)
        return {k: r[k] for k in KEEP}

    after_teacher = score(model.eval())
    print("after teacher", after_teacher, flush=True)
    teacher_seconds = time.monotonic() - start
    model, history = fit({**cfg, "teacher": None}, data, category, model=model.train(), progress=False)
    row = {"overrides": overrides, "iters": len(history["total"]), "teacher_seconds": round(teacher_seconds, 1),
           "train_seconds": round(time.monotonic() - start - teacher_seconds, 1),
           "after_teacher_B": after_teacher, "after_training_B": score(model)}
    print("after training", row["after_training_B"], flush=True)
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {
        "note": "benchmarks/ttp_short_runs.py: medium recipe (BASE) with overrides; rung B of the shared split",
        "base": BASE, "runs": {}}
    row["command"] = "python benchmarks/ttp_short_runs.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    record["runs"][args.name] = row
    out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
