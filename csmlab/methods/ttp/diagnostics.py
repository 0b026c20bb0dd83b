"""Where the solved camera of end-to-end TTP goes wrong: the regressed correspondences against the truth.

:func:`camera_diagnostics` takes a trained :class:`.model.TTPNet` and held-out birds with their ground
truth and measures, without training anything:

- ``camera``: the distribution of the per-image rotation error of the solved camera -- against the
  truth and against the *bilateral mirror* of the truth ``D R F`` (the camera that a left/right swap
  of every correspondence gives: the birds are symmetric, so it draws the same silhouette), the
  per-image minimum of the two, a histogram, and the fractions near the truth, near the mirror, and
  neither;
- ``azimuth_bins``: the same per bin of the true azimuth;
- ``points``: the regressed 2D points against the true projections of the posed vertices (pixels at
  the image resolution), visible vs hidden (depth test at 128 px), per part, and the left/right
  *swap rate*: among visible vertices whose true point lies far (``swap_min_px``) from its mirror
  partner's, the fraction whose regressed point is nearer the partner's;
- ``solves``: the camera error (and its mirror-min) of the in-loop solver (the model's settings; the cost
  named in brackets) on other inputs -- the
  regressed points and visibilities (the model), true points with true visibilities, regressed
  points with true visibilities, true points with regressed visibilities, regressed points with
  each vertex's regressed point replaced by its partner's (the swap), the robust losses, and the wings'
  vertices left out (the articulation that the linear model ``T + B c`` cannot express).

It answers: is the camera error a mirror mode (fixable by telling left from right) or a spread
(the points themselves are off)?
"""

from __future__ import annotations

import dataclasses
import math

import torch

from csmlab.geometry import matrix_to_azel, ortho_project, quaternion_to_matrix, rotation_angle_deg

from .birds import depth_test_visibility
from .evaluate_e2e import _D, _F, predict
from .fit_e2e import solver_config, stack_samples
from .model import TTPNet
from .solver import solve

HIST_EDGES = (0, 15, 30, 45, 60, 90, 120, 150, 180)


def _median(x: torch.Tensor) -> float:
    return round(float(x.median()), 3) if x.numel() else float("nan")


def camera_summary(err: torch.Tensor, err_mirror: torch.Tensor, near_deg: float = 30.0) -> dict:
    """Medians, histogram and modes of per-image errors [B] against the truth and its bilateral mirror."""
    if err.shape != err_mirror.shape or err.dim() != 1:
        raise ValueError(f"err and err_mirror must be [B] tensors of one shape, got {list(err.shape)} and "
                         f"{list(err_mirror.shape)}")
    if near_deg <= 0:
        raise ValueError(f"near_deg must be > 0, got {near_deg}")
    both = torch.minimum(err, err_mirror)
    hist = torch.histogram(err.double().cpu(), torch.tensor(HIST_EDGES, dtype=torch.float64)).hist
    near, near_m = err < near_deg, (err_mirror < near_deg) & (err_mirror < err)
    return {"n": int(err.numel()), "median_deg": _median(err), "median_mirror_deg": _median(err_mirror),
            "median_min_of_two_deg": _median(both), "mean_deg": round(float(err.mean()), 3),
            "within_15_deg": round(float((err < 15).double().mean()), 4),
            "min_of_two_within_15_deg": round(float((both < 15).double().mean()), 4),
            "near_deg": near_deg, "frac_near_truth": round(float(near.double().mean()), 4),
            "frac_near_mirror": round(float(near_m.double().mean()), 4),
            "frac_neither": round(float((~near & ~near_m).double().mean()), 4),
            "median_error_of_neither_deg": _median(err[~near & ~near_m]),
            "histogram_edges_deg": list(HIST_EDGES), "histogram": [int(h) for h in hist]}


def _camera_errors(R: torch.Tensor, R_gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    R, R_gt = R.double(), R_gt.double()
    return rotation_angle_deg(R, R_gt), rotation_angle_deg(R, _D.double() @ R_gt @ _F.double())


def azimuth_bins(err: torch.Tensor, err_mirror: torch.Tensor, azimuth_deg: torch.Tensor, width: float = 45.0) -> list:
    """Per bin of the true azimuth (degrees in (-180, 180]): count, median error, mirror-min, mirror-near fraction."""
    if not 0 < width <= 360:
        raise ValueError(f"width must be in (0, 360], got {width}")
    rows = []
    lo = -180.0
    while lo < 180.0:
        sel = (azimuth_deg > lo) & (azimuth_deg <= lo + width)
        if sel.any():
            e, m = err[sel], err_mirror[sel]
            rows.append({"azimuth_deg": [lo, lo + width], "n": int(sel.sum()), "median_deg": _median(e),
                         "median_min_of_two_deg": _median(torch.minimum(e, m)),
                         "frac_mirror_closer": round(float((m < e).double().mean()), 4)})
        lo += width
    return rows


def point_errors(points: torch.Tensor, true_points: torch.Tensor, visible: torch.Tensor, vertex_flip: torch.Tensor,
                 vertex_parts: torch.Tensor, part_names, resolution: int, swap_min_px: float = 3.0) -> dict:
    """Regressed vs true 2D points ([B,N,2] NDC) in pixels: visible / hidden, per part, left/right swap rate."""
    B, N = points.shape[:2]
    if true_points.shape != (B, N, 2) or visible.shape != (B, N) or vertex_flip.shape != (N,):
        raise ValueError(f"true_points must be [{B},{N},2], visible [{B},{N}] and vertex_flip [{N}], got "
                         f"{list(true_points.shape)}, {list(visible.shape)}, {list(vertex_flip.shape)}")
    px = resolution / 2
    err = (points - true_points).norm(dim=-1) * px
    vis = visible > 0.5
    out = {"median_px_visible": _median(err[vis]), "median_px_hidden": _median(err[~vis]),
           "mean_px_visible": round(float(err[vis].mean()), 3), "per_part": {}}
    for k, name in enumerate(part_names):
        sel = vertex_parts[None].expand(B, N) == k
        out["per_part"][name] = {"median_px_visible": _median(err[sel & vis]),
                                 "median_px_hidden": _median(err[sel & ~vis])}
    partner = true_points[:, vertex_flip]
    gap = (true_points - partner).norm(dim=-1) * px
    to_partner = (points - partner).norm(dim=-1) * px
    cand = vis & (gap > swap_min_px)
    swapped = cand & (to_partner < err)
    out["swap_min_px"] = swap_min_px
    out["swap_rate_visible"] = round(float(swapped.sum() / cand.sum().clamp_min(1)), 4)
    per_image = swapped.sum(1) / cand.sum(1).clamp_min(1)
    out["swap_rate_per_image_median"] = _median(per_image)
    out["frac_images_mostly_swapped"] = round(float((per_image > 0.5).double().mean()), 4)
    return out | {"per_image_swap_rate": per_image, "per_image_median_px": err.masked_fill(~vis, float("nan"))
                  .nanmedian(1).values}


def _solve(points, weights, model: TTPNet, cfg_solver, **changes):
    sc = dataclasses.replace(cfg_solver, **changes) if changes else cfg_solver
    dt = torch.float64
    res = solve(points.to(dt), weights.to(dt), model.template.to(dt), model.basis.detach().to(dt),
                model.log_reg.detach().to(dt), sc)
    return res.rotation


@torch.no_grad()
def camera_diagnostics(model: TTPNet, data, cfg: dict, category=None, swap_min_px: float = 3.0) -> dict:
    """The figures of the module docstring on ``data`` (a synthetic dataset with its ground truth)."""
    from csmlab.data.synthetic import get_category, pose_vertices

    if not isinstance(model, TTPNet):
        raise ValueError(f"model must be a TTPNet, got {type(model).__name__}")
    data = data if isinstance(data, dict) else stack_samples(data)
    for key in ("cam_quat", "cam_scale", "cam_trans", "deform", "articulation"):
        if key not in data:
            raise ValueError(f"data must hold the ground truth {key!r}")
    category = category or get_category(cfg.get("category", "birds"))
    solver_cfg = solver_config({"solver_loss": "l2", "def_steps": 1, "lbfgs_iters": 6, "polish_steps": 3,
                                "seed": 0, **cfg})
    pred = predict(model, data["image"], cfg)
    R_gt = quaternion_to_matrix(data["cam_quat"].double())
    verts = pose_vertices(category, data["deform"], data["articulation"]).double()
    s, t = data["cam_scale"].double(), data["cam_trans"].double()
    true_pts = ortho_project(verts, s, R_gt, t)
    true_vis = depth_test_visibility(verts, R_gt, s, t, category.template.faces, (128, 128))
    err, err_m = _camera_errors(pred["rotation"], R_gt)
    az = torch.rad2deg(matrix_to_azel(R_gt)[0])
    flip = category.vertex_flip.long()
    pts = point_errors(pred["points"].double(), true_pts, true_vis, flip, category.vertex_parts,
                       category.part_names, data["image"].shape[-1], swap_min_px)
    per_swap, per_px = pts.pop("per_image_swap_rate"), pts.pop("per_image_median_px")
    near_m = (err_m < err)
    wings = [k for k, n in enumerate(category.part_names) if "wing" in n]
    not_wing = (~torch.isin(category.vertex_parts, torch.tensor(wings))).double()
    reg_pts, reg_vis = pred["points"].double(), pred["visibility"].double()
    l2, gm = {"loss": "l2"}, {"loss": "geman_mcclure", "robust_scale": 0.02}
    inputs = {"regressed points, regressed visibility (the model)": (reg_pts, reg_vis, {}),
              "true points, true visibility (l2)": (true_pts, true_vis, l2),
              "true points, true visibility (geman_mcclure 0.02)": (true_pts, true_vis, gm),
              "true points, wing vertices weighted 0 (l2)": (true_pts, true_vis * not_wing, l2),
              "true points, regressed visibility (l2)": (true_pts, reg_vis, l2),
              "regressed points, regressed visibility (l2)": (reg_pts, reg_vis, l2),
              "regressed points, true visibility (l2)": (reg_pts, true_vis, l2),
              "regressed points, visibility > 0.5 (l2)": (reg_pts, (reg_vis > 0.5).double(), l2),
              "regressed points swapped left/right (l2)": (reg_pts[:, flip], reg_vis[:, flip], l2),
              "regressed points (huber 0.05)": (reg_pts, reg_vis, {"loss": "huber", "robust_scale": 0.05}),
              "regressed points (geman_mcclure 0.05)": (reg_pts, reg_vis, {"loss": "geman_mcclure",
                                                                           "robust_scale": 0.05}),
              "regressed points (geman_mcclure 0.02)": (reg_pts, reg_vis, gm),
              "regressed points, wing vertices weighted 0 (l2)": (reg_pts, reg_vis * not_wing, l2),
              "regressed points, procrustes+mirror init, visible_front (l2)": (
                  reg_pts, reg_vis, {**l2, "init": "procrustes+mirror", "select": "visible_front"})}
    solves = {}
    for name, (p, w, changes) in inputs.items():
        e, m = _camera_errors(_solve(p, w, model, solver_cfg, **changes), R_gt)
        solves[name] = {"median_deg": _median(e), "median_mirror_deg": _median(m),
                        "median_min_of_two_deg": _median(torch.minimum(e, m)),
                        "within_15_deg": round(float((e < 15).double().mean()), 4)}
    corr = torch.corrcoef(torch.stack([per_swap.double(), near_m.double()]))[0, 1]
    return {"camera": camera_summary(err, err_m), "azimuth_bins": azimuth_bins(err, err_m, az),
            "points": pts, "solves": solves,
            "swap_rate_of_images_mirror_closer": _median(per_swap[near_m]),
            "swap_rate_of_images_truth_closer": _median(per_swap[~near_m]),
            "corr_swap_rate_vs_mirror_closer": round(float(corr), 4) if math.isfinite(float(corr)) else None,
            "corr_point_error_vs_camera_error": round(float(torch.corrcoef(torch.stack(
                [per_px.double(), err.double()]))[0, 1]), 4),
            "per_image": {"error_deg": err, "error_mirror_deg": err_m, "azimuth_true_deg": az,
                          "swap_rate": per_swap, "median_point_error_px": per_px}}
