"""Diagnose the solved cameras of a TTP checkpoint on the shared split (no training).

    python benchmarks/ttp_camera_diagnostics.py [--ckpt notebooks/assets/ttp_medium.pt] [--rungs B]
        [--out notebooks/assets/ttp_camera_diagnostics.json]

Writes :func:`csmlab.methods.ttp.diagnostics.camera_diagnostics` per rung (per-image tensors left out).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch


def training_trace(history: dict, pieces: int = 7) -> dict:
    """The per-batch median camera error that training logged (``camera_error_deg``), averaged over ``pieces``
    equal stretches of the run: did TTP's own objective move the cameras from their start?"""
    values, steps = history.get("values", {}), history.get("steps", {})
    if "camera_error_deg" not in values:
        return {}
    v, st = torch.tensor(values["camera_error_deg"]), torch.tensor(steps["camera_error_deg"])
    edges = torch.linspace(float(st.min()), float(st.max()) + 1, pieces + 1)
    return {"iterations": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:])],
            "mean_of_batch_medians_deg": [round(float(v[(st >= a) & (st < b)].mean()), 2)
                                          for a, b in zip(edges[:-1], edges[1:])]}


def main(argv=None) -> int:
    from csmlab.data.synthetic import benchmark_split
    from csmlab.methods.ttp.__main__ import load_model
    from csmlab.methods.ttp.diagnostics import camera_diagnostics

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ckpt", default="notebooks/assets/ttp_medium.pt")
    p.add_argument("--rungs", default="B")
    p.add_argument("--out", default="notebooks/assets/ttp_camera_diagnostics.json")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, cfg, state = load_model(args.ckpt)
    record = {"command": "python benchmarks/ttp_camera_diagnostics.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
              "checkpoint": args.ckpt, "checkpoint_iterations": state.get("iterations"), "rungs": {}}
    record["training_camera_error_deg"] = training_trace(state.get("history") or {})
    for rung in args.rungs:
        start = time.monotonic()
        d = camera_diagnostics(model, benchmark_split(cfg["category"], rung, cfg["resolution"]), cfg)
        d.pop("per_image")
        d["seconds"] = round(time.monotonic() - start, 1)
        record["rungs"][rung] = d
        print(rung, json.dumps(d, indent=1), flush=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
