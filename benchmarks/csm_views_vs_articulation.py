"""CSM at the smoke budget on mixed priors: is it the views or the articulation that makes 'with pose' lose on rung C?

    python benchmarks/csm_views_vs_articulation.py full cub with_pose    # views, articulation, variant

Rung B is (views "cub", articulation "cub") and rung C is ("full", "full"); the mixed pairs take one prior from
each. Trains one variant of ``get_config("smoke", variant)`` on 1000 birds of those priors (generator seed 0)
and evaluates it on 300 held-out birds of the same priors (seed 10000): not the benchmark split, which has
no mixed rung. Prints one JSON line. A few CPU minutes per run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from csmlab.data.synthetic import make_dataset
from csmlab.data.synthetic.birds_priors import ARTICULATIONS, VIEWS
from csmlab.methods.csm import get_config
from csmlab.methods.csm.experiments import VAL_SEED_OFFSET, run_variant, training_fields
from csmlab.methods.csm.fit import stack_samples
from csmlab.methods.csm.presets import VARIANTS
from csmlab.methods.csm.template import load_template


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("views", choices=VIEWS)
    parser.add_argument("articulation", choices=ARTICULATIONS)
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--n-val", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    cfg = get_config("smoke", args.variant, rung=None)
    priors = {"views": args.views, "articulation": args.articulation}
    train = make_dataset("birds", cfg["n_train"], cfg["resolution"], cfg["seed"], progress=False, **priors)
    val = make_dataset("birds", args.n_val, cfg["resolution"], cfg["seed"] + VAL_SEED_OFFSET, progress=False, **priors)
    _, _, metrics = run_variant(cfg, training_fields(stack_samples(train), cfg), stack_samples(val),
                                load_template(cfg), progress=False, log_validation=False)
    keep = ("transfer_pck", "transfer_apk", "surface_error", "camera_error_deg", "train_seconds")
    print(json.dumps({**priors, "variant": args.variant, **{k: metrics[k] for k in keep},
                      "wall_seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
