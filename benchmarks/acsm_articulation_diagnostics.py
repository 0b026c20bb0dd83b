"""Why does ACSM's medium run not learn the wings? Loss terms with the true cameras, at the true joints and at rest.

For a few benchmark birds (rungs B and C, 64 px), with the *true* camera and the true
surface UV of every pixel, each term of the ACSM objective (cycle, mask, coverage,
consistency) is computed on the model's hard-membership rig posed

- at the true joint angles,
- at the rest pose (all angles 0), and
- at the rung-B folded pose (``birds_priors.folded_articulation``),

and along a 1-D scan of one wing joint (the others at their true values): is the
minimum of each term at the true angle, and which way does its slope at the rest
pose point?  Run: ``PYTHONPATH=. python benchmarks/acsm_articulation_diagnostics.py``.

``--predicted FILE`` (a CSM pretrained file, e.g. ``notebooks/assets/csm_medium_folded.pt``)
replaces the true camera and UV by that network's most probable hypothesis and predicted
UV: the signal the ACSM fine-tune from that file actually sees.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
import torch.nn.functional as F

from csmlab.data.synthetic import benchmark_split, get_category
from csmlab.data.synthetic.birds_priors import folded_articulation
from csmlab.geometry import quaternion_to_matrix, rotation_angle_deg
from csmlab.methods.acsm import build_model, get_config
from csmlab.methods.acsm import losses as L
from csmlab.methods.acsm.fit import stack_dataset
from csmlab.methods.acsm.joints import joint_angles_to_rotations
from csmlab.methods.acsm.network import load_csm_weights, surface_points_exact
from csmlab.surface_losses import mask_render_loss


def terms(model, data, idx, angles, res=32):
    """Per-image terms [n] for joint angles [n,7] under the true cameras and the true UV (or ``data['pred_*']``)."""
    R = joint_angles_to_rotations(angles, model.rig.names)
    verts = model.pose(R)                                                            # [n,V,3]
    src = "pred_" if "pred_scale" in data else "cam_"
    cams = {"scale": data[src + "scale"][idx, None], "quat": data[src + "quat"][idx, None],
            "trans": data[src + "trans"][idx, None], "prob": torch.ones(len(idx), 1)}
    mask = data["mask"][idx]
    H = mask.shape[-1]
    uv = data.get("pred_uv", data["surface_uv"])[idx].permute(0, 2, 3, 1)
    pts = torch.stack([surface_points_exact(model.template, uv[b].reshape(-1, 2), verts[b])
                       for b in range(len(idx))]).reshape(len(idx), 1, H, H, 3)
    v = verts[:, None]
    rendered = L.render_posed(v, model.template.faces, cams, res)
    small = F.interpolate(mask, size=(res, res), mode="area")
    return {"cycle": L.articulated_cycle_loss(pts, cams, mask)[:, 0],
            "mask": 10 * mask_render_loss(rendered["silhouette"], small)[:, 0],
            "coverage": 10 * L.coverage_loss(L.project_vertices(v, cams), data["contour"][idx])[:, 0],
            "consistency": 0.1 * L.consistency_loss(rendered["silhouette"], data["mask_distance"][idx])[:, 0]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--joint", type=int, default=1, help="joint index to scan (1: left_wing_flap)")
    p.add_argument("--predicted", default=None, help="a CSM file: its best camera and UV replace the truth")
    a = p.parse_args()
    torch.set_num_threads(1)
    birds = get_category("birds")
    cfg = get_config("medium")
    model = build_model(cfg, birds)
    if a.predicted:
        load_csm_weights(model, a.predicted)
        model.eval()
    folded = folded_articulation(birds)
    report = {}
    for rung in ("B", "C"):
        data = stack_dataset(benchmark_split("birds", rung, 64), {"render_resolution": 32, "n_contour": 100})
        idx = torch.arange(a.n)
        if a.predicted:   # the network's most probable hypothesis and UV, on the first n birds
            with torch.no_grad():
                out = model(data["image"][: a.n])
            best = out["prob"].argmax(-1)
            for k in ("scale", "quat", "trans"):
                data[f"pred_{k}"] = out[k][torch.arange(a.n), best]
            data["pred_uv"] = out["uv"]
            data["pred_camera_error_deg_median"] = float(rotation_angle_deg(
                quaternion_to_matrix(data["pred_quat"]), quaternion_to_matrix(data["cam_quat"][: a.n])).median())
        true = data["articulation"][idx]
        with torch.no_grad():
            at = {name: {k: float(v.mean()) for k, v in terms(model, data, idx, ang).items()}
                  for name, ang in (("true", true), ("rest", torch.zeros_like(true)),
                                    ("folded", folded.expand_as(true)))}
            grid = torch.linspace(-35, 100, 28).deg2rad()
            scan = []
            for g in grid:
                ang = true.clone()
                ang[:, a.joint] = g
                scan.append({k: v for k, v in terms(model, data, idx, ang).items()})
        # per image: where along the scan does each term have its minimum, vs the true angle
        off = {}
        for k in scan[0]:
            vals = torch.stack([s[k] for s in scan], -1)                              # [n,G]
            best = grid[vals.argmin(-1)]
            off[k] = float(torch.rad2deg((best - true[:, a.joint]).abs()).median())
        # slope at rest of each term w.r.t. the joint, the other joints at the truth
        ang = true.clone()
        ang[:, a.joint] = 0.0
        ang.requires_grad_(True)
        slopes = {}
        for k, v in terms(model, data, idx, ang).items():
            (gk,) = torch.autograd.grad(v.sum(), ang, retain_graph=True)
            # the right way: towards the true angle (minus the gradient has the sign of true - 0)
            right = torch.sign(-gk[:, a.joint]) == torch.sign(true[:, a.joint])
            slopes[k] = {"fraction_pointing_to_truth": float(right.float().mean()),
                         "median_abs_grad": float(gk[:, a.joint].abs().median())}
        report[rung] = {"terms_at": at, "median_deg_from_scan_min_to_truth": off, "slope_at_rest": slopes,
                        "true_angle_deg_median": float(torch.rad2deg(true[:, a.joint]).median())}
        if a.predicted:
            report[rung]["camera_error_deg_median"] = data["pred_camera_error_deg_median"]
    print(json.dumps({"joint": a.joint, "n": a.n, "predicted": a.predicted, **report}, indent=1))
    return 0 if all(math.isfinite(v) for r in report.values() for v in r["terms_at"]["true"].values()) else 1


if __name__ == "__main__":
    main()
