"""The TTP camera solve fed by CSM's surface map: is notebook 03's camera error the solver's or the map's?

    python benchmarks/ttp_solve_on_csm_map.py [--file notebooks/assets/csm_medium.pt] [--rung B] [--k 8] [--sigma 0.05]

No training. CSM's committed network maps every foreground pixel of the benchmark split to a
template point; ``ttp.surface_map_correspondences`` turns those into a 2D point and a visibility
per template vertex (the per-pixel form of TTP's correspondences). The rigid template's camera is
then solved from them by notebook 01's batched solver and compared with the true camera and with
the most probable of CSM's own hypotheses. Prints the median rotation errors, their quantiles, and
the share of solved azimuths nearer the front/back silhouette twin (180 deg - az) than the truth.
A few seconds.
"""

from __future__ import annotations

import argparse
import math

import torch

from csmlab.data.synthetic import benchmark_split, get_category
from csmlab.geometry import matrix_to_azel, quaternion_to_matrix, rotation_angle_deg
from csmlab.methods import csm
from csmlab.methods.ttp import surface_map_correspondences
from csmlab.methods.ttp.solver import SolverConfig, solve


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default="notebooks/assets/csm_medium.pt")
    parser.add_argument("--rung", default="B")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--sigma", type=float, default=0.05)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    category = get_category("birds")
    model, info = csm.load_pretrained(args.file, category)
    data = csm.stack_samples(benchmark_split("birds", args.rung, info["cfg"]["resolution"]))
    pred = csm.predict(model, data["image"])
    template = category.template.verts.float()
    uv, vis = surface_map_correspondences(pred["points"], data["mask"], template, args.k, args.sigma)
    res = solve(uv.double(), vis.double(), template.double(), None, None, SolverConfig(fit_deformation=False))
    true_R = quaternion_to_matrix(data["cam_quat"])
    solved = rotation_angle_deg(res.rotation.float(), true_R)
    n = len(solved)
    own = pred["quat"][torch.arange(n), pred["prob"].argmax(-1)]
    hypothesis = rotation_angle_deg(quaternion_to_matrix(own), true_R)
    az_true, az_solved = matrix_to_azel(true_R)[0], matrix_to_azel(res.rotation.float())[0]
    gap = lambda a, b: (torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi).abs()  # noqa: E731
    twin = gap(az_solved, math.pi - az_true) < gap(az_solved, az_true)
    q = [round(float(x), 1) for x in solved.quantile(torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9]))]
    print(f"rung {args.rung}, {n} birds, {args.file}: k={args.k}, sigma={args.sigma}")
    print(f"camera error, median: solved from the map {float(solved.median()):.1f} deg, "
          f"CSM's most probable hypothesis {float(hypothesis.median()):.1f} deg")
    print(f"solved, quantiles 10/25/50/75/90 %: {q} deg")
    print(f"solved azimuths nearer the silhouette twin than the truth: {float(twin.float().mean()):.2f}; "
          f"median error of the others {float(solved[~twin].median()):.1f} deg")


if __name__ == "__main__":
    main()
