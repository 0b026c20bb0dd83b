"""To The Point (Kokkinos & Kokkinos, NeurIPS 2021): camera and shape solved from 2D-3D correspondences.

A network regresses, for every template vertex i, its 2D point u_i and visibility
v_i; the camera (R, s, t) and deformation c are then *solved* by minimising the
reprojection error, inside the training loop, and differentiated by the implicit
function theorem. This package is that solver (no network: the notebook feeds it
ground-truth correspondences, with noise and outliers).

- :mod:`.cost`      the cost, its parameter vector, moments, the ridge deformation solve
- :mod:`.lbfgs`     a batched L-BFGS (independent histories and line searches per instance)
- :mod:`.newton`    batched Hessians, the damped solve with its fallback, Newton polishing
- :mod:`.robust`    Huber and Geman-McClure penalties, IRLS weights
- :mod:`.solver`    ``solve``: initialisation, L-BFGS <-> ridge alternation, polishing, hypothesis selection
- :mod:`.implicit`  ``solve_implicit`` (IFT backward) and ``solve_unrolled``
- :mod:`.mirror`    the reflection ambiguity: mirror rotations, labelling, the per-strategy study
- :mod:`.problems`  the problem dict, random deformable point sets, noise and outliers
- :mod:`.birds`     problems from the synthetic birds (render-based visibility)
- :mod:`.cub`       problems from CUB keypoints with CMR's SfM cameras

Entry points (docs/design.md, section 4): ``fit(cfg, data) -> (model, history)`` and
``evaluate(model, data) -> metrics``, with ``cfg = csmlab.config.preset(PRESETS, SCALE)``.
"""

from __future__ import annotations

import math

import torch

from ...geometry import ndc_to_pixel, ortho_project, rotation_angle_deg
from ...metrics import pck
from . import cub
from .birds import bird_problem, depth_test_visibility, problem_from_batch
from .cost import make_problem, moments, ridge_coeffs
from .dense import surface_map_correspondences
from .implicit import solve_implicit, solve_unrolled
from .mirror import classify, flatten, mirror_of_truth, mirror_projection_gap, mirror_study
from .problems import corrupt, deformation_observability, points_ndc, random_problem, subset
from .solver import SolverConfig, SolverResult, solve

PRESETS = {
    # CPU, seconds: synthetic birds at 128 px, 2 px noise, joints at rest.
    "smoke": dict(data="birds", n_instances=64, resolution=128, zero_articulation=True, noise_px=2.0,
                  outlier_frac=0.0, init="procrustes", select="cost", loss="l2", robust_scale=0.05,
                  log_reg=math.log(0.05), fit_deformation=True, alternations=3, lbfgs_iters=20, polish_steps=10,
                  irls_iters=6, seed=0),
    "medium": dict(data="birds", n_instances=512, resolution=128, zero_articulation=False, noise_px=2.0,
                   outlier_frac=0.2, init="procrustes", select="cost", loss="geman_mcclure", robust_scale=0.05,
                   log_reg=math.log(0.05), fit_deformation=True, alternations=3, lbfgs_iters=20, polish_steps=10,
                   irls_iters=6, seed=0),
    # The paper's setting for the camera: CUB keypoints against CMR's SfM mean shape (no basis).
    "full": dict(data="cub", n_instances=None, resolution=256, zero_articulation=False, noise_px=0.0,
                 outlier_frac=0.0, init="procrustes", select="cost", loss="l2", robust_scale=0.05,
                 log_reg=math.log(0.05), fit_deformation=False, alternations=3, lbfgs_iters=20, polish_steps=10,
                 irls_iters=6, seed=0, split="test"),
}

_SOLVER_KEYS = ("init", "select", "loss", "robust_scale", "log_reg", "fit_deformation", "alternations",
                "lbfgs_iters", "polish_steps", "irls_iters", "seed")


def solver_config(cfg: dict) -> SolverConfig:
    """The :class:`SolverConfig` of a preset dict (its solver keys)."""
    missing = [k for k in _SOLVER_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"cfg lacks the solver keys {missing}; start from csmlab.config.preset(PRESETS, scale)")
    return SolverConfig(**{k: cfg[k] for k in _SOLVER_KEYS})


def make_data(cfg: dict, root=None) -> dict:
    """The problem a preset describes: synthetic birds (with noise/outliers) or CUB (``root``: data root)."""
    if cfg.get("data") == "cub":
        return cub.cub_problem(root, cfg.get("split", "test"), cfg["resolution"], cfg["n_instances"])
    if cfg.get("data") != "birds":
        raise ValueError(f"cfg['data'] must be 'birds' or 'cub', got {cfg.get('data')!r}")
    problem = bird_problem(cfg["n_instances"], cfg["seed"], cfg["resolution"], cfg["zero_articulation"])
    return corrupt(problem, cfg["noise_px"], cfg["outlier_frac"], seed=cfg["seed"] + 1)


def fit(cfg: dict, data: dict | None = None):
    """Solve every instance of ``data`` (a problem dict; default: :func:`make_data`).

    Returns ``model`` (rotation, scale, trans in NDC, coeffs, cost, point weights and
    the image size, per instance) and ``history`` ({"stage": [...], "cost": [...]}: the
    mean cost after each solver stage).
    """
    data = make_data(cfg) if data is None else data
    res = solve(points_ndc(data), data["visibility"], data["template"], data.get("basis"), cfg["log_reg"],
                solver_config(cfg))
    model = {"rotation": res.rotation, "scale": res.scale, "trans": res.trans, "coeffs": res.coeffs,
             "cost": res.cost, "point_weights": res.point_weights, "image_size": data["image_size"],
             "config": dict(cfg)}
    history = {"stage": [h[0] for h in res.history], "cost": [h[1] for h in res.history]}
    return model, history


def reproject(model: dict, data: dict) -> torch.Tensor:
    """[B,N,2] pixels: the fitted deformed template seen by the fitted camera."""
    basis = data.get("basis")
    V = data["template"].expand(model["rotation"].shape[0], -1, -1)
    if basis is not None and basis.shape[0] > 0:
        V = V + torch.einsum("bm,mnk->bnk", model["coeffs"], basis)
    H, W = data["image_size"]
    return ndc_to_pixel(ortho_project(V, model["scale"], model["rotation"], model["trans"]), H, W)


def evaluate(model: dict, data: dict, pck_alpha: float = 0.1) -> dict:
    """Metrics of a fit against the problem's ground truth.

    - ``rotation_error_deg`` (median; ``per_instance`` has all), ``mirror_rate``: fraction of
      instances nearer (within 20 deg) to the mirror of the truth than to the truth;
    - ``scale_rel_error`` median |s / s_true - 1|; ``coeff_error`` median of max_m |c_m - c_true_m|
      (when the problem has deformation coefficients);
    - ``reprojection_px`` median distance of the visible inlier points to the fitted reprojection,
      and ``pck`` the fraction within ``pck_alpha`` x (the box's longer side if the problem has
      ``bbox``, else the image's).
    """
    cam = data["camera"]
    err = rotation_angle_deg(model["rotation"], cam["rotation"].to(model["rotation"].dtype))
    labels = classify(model["rotation"], cam["rotation"], mirror_of_truth(data))
    per = {"rotation_error_deg": err, "scale_rel_error": (model["scale"] / cam["scale"] - 1).abs()}
    if "deform" in data and data["deform"].shape[1] == model["coeffs"].shape[1]:
        per["coeff_error"] = (model["coeffs"] - data["deform"]).abs().amax(-1)
    target = data.get("points_clean", data["points"])
    pred = reproject(model, data)
    vis = data["visibility"] > 0
    if "outlier" in data:
        vis = vis & ~data["outlier"]
    dist = (pred - target).norm(dim=-1)
    per["reprojection_px"] = torch.stack([d[v].median() if v.any() else d.new_tensor(float("nan"))
                                          for d, v in zip(dist, vis)])
    if "bbox" in data:
        norm = (data["bbox"][:, 2:] - data["bbox"][:, :2]).amax(-1)
    else:
        norm = float(max(data["image_size"]))
    metrics = {k: float(v.nanmedian()) for k, v in per.items()}
    metrics["pck"] = float(pck(pred, target, vis, pck_alpha, norm))
    metrics["mirror_rate"] = float((labels == 1).double().mean())
    metrics["per_instance"] = per
    return metrics


__all__ = ["PRESETS", "fit", "evaluate", "make_data", "solver_config", "reproject", "solve", "solve_implicit",
           "solve_unrolled", "SolverConfig", "SolverResult", "bird_problem", "problem_from_batch",
           "depth_test_visibility", "random_problem", "corrupt", "deformation_observability", "points_ndc",
           "subset", "make_problem", "moments",
           "ridge_coeffs", "mirror_study", "mirror_of_truth", "mirror_projection_gap", "classify", "flatten", "cub"]

# End to end (notebook 03): correspondences regressed, camera and shape solved in the loop, ARAP.
from . import evaluate_e2e, fit_e2e, presets  # noqa: E402
from .model import TTPNet, solve_shape_and_camera  # noqa: E402

__all__ += ["surface_map_correspondences", "TTPNet", "solve_shape_and_camera", "fit_e2e", "evaluate_e2e", "presets"]
