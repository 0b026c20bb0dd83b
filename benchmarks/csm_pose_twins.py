"""How much do silhouette twins cost a map trained with the true cameras? (CSM 'with pose', rungs B and C)

    python benchmarks/csm_pose_twins.py --resolution 32     # about half a minute on one core

For a mirror-symmetric template under an orthographic camera R, the twin camera R' = Z R M (M: the mirror
x -> -x of the object, Z: the depth flip) gives the same silhouette but sees the mirrored far side at every
pixel. A network that cannot tell the two views apart from the image, trained with the true cameras (the
cycle loss, a squared error), is pulled towards both targets, in proportion to how likely each view is under
the rung's view prior. This script scores three maps tied to the rigid template with the course's transfer
metric on the benchmark split:

- the true cameras (the rigid-template ceiling of notebook 02);
- the twin picked at random with its prior weight w = p(twin) / (p(view) + p(twin));
- the w-weighted average of the two targets (the squared-error optimum when twins cannot be told apart),
  in 3D and snapped to the nearest template vertex (the network's points lie on the template).

It also prints the twin silhouettes' IoU (1 checks the construction), the mean twin weight, the mean 3D gap
between the two targets and the share of the mask the rigid template does not cover under the true camera.
Data only: nothing is trained.
"""

from __future__ import annotations

import argparse

import torch

from csmlab import geometry as G
from csmlab.data.synthetic import benchmark_split, get_category
from csmlab.data.synthetic.birds_priors import CUB_AZIMUTH_DEG, CUB_ELEVATION_DEG
from csmlab.methods.csm.evaluate import surface_error, template_points_under
from csmlab.methods.csm.fit import stack_samples
from csmlab.metrics import keypoint_transfer, sample_pairs
from csmlab.render import rasterize_mesh

RUNG_VIEWS = {"B": "cub", "C": "full"}


def log_view_density(az: torch.Tensor, el: torch.Tensor, views: str) -> torch.Tensor:
    """Log density (up to a constant) of a view under a prior of birds_priors; roll is uniform under both."""
    if views == "full":
        return torch.zeros_like(az)
    a, e = torch.rad2deg(az).abs(), torch.rad2deg(el)
    return (-0.5 * ((a - CUB_AZIMUTH_DEG[0]) / CUB_AZIMUTH_DEG[1]) ** 2
            - 0.5 * ((e - CUB_ELEVATION_DEG[0]) / CUB_ELEVATION_DEG[1]) ** 2)


def coverage(template, cams: dict, resolution: int) -> torch.Tensor:
    X = template.verts[None].expand(cams["scale"].shape[0], -1, -1).contiguous()
    clip = G.ortho_clip(X, cams["scale"], G.quaternion_to_matrix(cams["quat"]), cams["trans"])
    return rasterize_mesh(clip, template.faces, resolution).mask[:, 0] > 0.5


def snap_to_template(points: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] points -> the nearest of the template's vertices [V,3], per pixel."""
    flat = points.permute(0, 2, 3, 1).reshape(-1, 3)
    nearest = verts[torch.cdist(flat, verts.to(flat.dtype)).argmin(1)].to(flat.dtype)
    return nearest.reshape(points.shape[0], *points.shape[2:], 3).permute(0, 3, 1, 2)


def twin_report(rung: str, resolution: int, n_pairs: int = 1000) -> dict:
    template = get_category("birds").template
    d = stack_samples(benchmark_split("birds", rung, resolution))
    R = G.quaternion_to_matrix(d["cam_quat"])
    R_twin = torch.diag(torch.tensor([1.0, 1.0, -1.0])) @ R @ torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    cams = {"scale": d["cam_scale"].reshape(-1), "quat": d["cam_quat"], "trans": d["cam_trans"]}
    twins = dict(cams, quat=G.matrix_to_quaternion(R_twin))
    true_map, twin_map = template_points_under(template, cams, resolution), template_points_under(template, twins,
                                                                                                   resolution)
    c_true, c_twin = coverage(template, cams, resolution), coverage(template, twins, resolution)
    mask = d["mask"][:, 0] > 0.5
    area = mask.flatten(1).sum(1)
    az, el, _ = G.matrix_to_azel(R)
    az2, el2, _ = G.matrix_to_azel(R_twin)
    w = torch.sigmoid(log_view_density(az2, el2, RUNG_VIEWS[rung]) - log_view_density(az, el, RUNG_VIEWS[rung]))
    pick = (torch.rand(w.shape[0], generator=torch.Generator().manual_seed(0)) < w).float().reshape(-1, 1, 1, 1)
    wb = w.reshape(-1, 1, 1, 1)
    maps = {"true cameras (ceiling)": true_map,
            "twin picked at random, prob w": pick * twin_map + (1 - pick) * true_map,
            "w-weighted average of the two targets": (1 - wb) * true_map + wb * twin_map}
    # the network's points lie on the template: the average snapped to its nearest template vertex
    maps["the average, snapped onto the template"] = snap_to_template(maps["w-weighted average of the two targets"],
                                                                      template.verts)
    pairs = sample_pairs(d["image"].shape[0], n_pairs, 0)
    rows = {}
    for name, points in maps.items():
        tr = keypoint_transfer(points, d["keypoints"], d["mask"], pairs, 0.1)
        rows[name] = {"transfer_pck": tr["pck"], "transfer_apk": tr["apk"],
                      "surface_error": float(surface_error(points, d["surface_xyz"], d["mask"]).mean())}
    gap = ((true_map - twin_map).norm(dim=1) * mask).flatten(1).sum(1) / area
    return {"twin_silhouette_iou": float(((c_true & c_twin).flatten(1).sum(1)
                                          / (c_true | c_twin).flatten(1).sum(1).clamp_min(1)).mean()),
            "mean_twin_weight": float(w.mean()), "mean_target_gap": float(gap.mean()),
            "uncovered_mask_share": float(((mask & ~c_true).flatten(1).sum(1) / area).mean()), "maps": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for rung in RUNG_VIEWS:
        r = twin_report(rung, args.resolution)
        print(f"rung {rung} ({args.resolution}^2): twin silhouette IoU {r['twin_silhouette_iou']:.3f}, mean twin "
              f"weight {r['mean_twin_weight']:.3f}, mean 3D gap between the targets {r['mean_target_gap']:.3f}, "
              f"mask share outside the rigid template {r['uncovered_mask_share']:.3f}")
        for name, m in r["maps"].items():
            print(f"  {name:40s} PCK@0.1 {m['transfer_pck']:.3f}  APK@0.1 {m['transfer_apk']:.3f}  "
                  f"surface error {m['surface_error']:.3f}")


if __name__ == "__main__":
    main()
