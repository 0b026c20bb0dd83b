"""The reflection ambiguity of orthographic projection, measured.

Orthographic projection drops depth, so ``R X`` and its depth flip ``D R X``
(``D = diag(1,1,-1)``) have the same image. The flip is a reflection of the
object, not a rotation; the closest rotation is ``R_m = D R S`` with ``S`` the
reflection across the object's flattest plane
(:func:`csmlab.geometry.mirror_rotation`). ``R_m`` images the points almost like
``R`` when the object is flat, or when a deformation can absorb the reflection --
so a local solver can settle there. This module labels solutions as "correct",
"mirror" or "other" and counts them per initialisation strategy.
"""

from __future__ import annotations

import torch

from ...geometry import mirror_rotation, ortho_project, rotation_angle_deg
from .problems import points_ndc
from .solver import SolverConfig, solve

LABELS = ("correct", "mirror", "other")


def true_verts(problem: dict) -> torch.Tensor:
    """[B,N,3] the instances' true 3D points: posed vertices if kept, else the deformed (or bare) template."""
    if "verts" in problem:
        return problem["verts"]
    B = problem["points"].shape[0]
    T = problem["template"].expand(B, -1, -1)
    if "deform" in problem and problem.get("basis") is not None and problem["basis"].shape[0] > 0:
        return T + torch.einsum("bm,mnk->bnk", problem["deform"].to(T.dtype), problem["basis"])
    return T


def mirror_of_truth(problem: dict) -> torch.Tensor:
    """[B,3,3] the mirror rotation of each ground-truth camera, for the visible true points."""
    return mirror_rotation(problem["camera"]["rotation"], true_verts(problem), problem["visibility"])


def mirror_projection_gap(problem: dict) -> torch.Tensor:
    """[B] RMS image distance (pixels, visible points) between the truth and its mirror rotation.

    The mirror camera uses the same scale; its translation is re-centred on the points,
    since orthographic translation is free. Zero for planar objects.
    """
    cam = problem["camera"]
    verts = true_verts(problem)
    R_m = mirror_of_truth(problem)
    u = ortho_project(verts, cam["scale"], cam["rotation"], cam["trans"])
    u_m = ortho_project(verts, cam["scale"], R_m, cam["trans"])
    w = problem["visibility"]
    mean = lambda x: (w[..., None] * x).sum(1) / w.sum(1)[:, None]  # noqa: E731
    u_m = u_m - mean(u_m)[:, None] + mean(u)[:, None]
    H, W = problem["image_size"]
    gap_ndc = ((w * ((u - u_m) ** 2).sum(-1)).sum(1) / w.sum(1)).sqrt()
    return gap_ndc * max(H, W) / 2


def classify(rotation: torch.Tensor, truth: torch.Tensor, mirror: torch.Tensor,
             threshold_deg: float = 20.0) -> torch.Tensor:
    """[B] long labels (index into LABELS): within ``threshold_deg`` of the truth, of its mirror, or neither."""
    if threshold_deg <= 0:
        raise ValueError(f"threshold_deg must be > 0, got {threshold_deg}")
    err_true = rotation_angle_deg(rotation, truth)
    err_mirror = rotation_angle_deg(rotation, mirror)
    label = torch.full_like(err_true, 2, dtype=torch.long)
    label = torch.where(err_mirror < threshold_deg, torch.ones_like(label), label)
    return torch.where(err_true < threshold_deg, torch.zeros_like(label), label)


def mirror_study(problem: dict, strategies: dict[str, SolverConfig], threshold_deg: float = 20.0) -> dict:
    """Solve the problem once per strategy; return {name: {label: fraction, "median_error_deg": ...}}."""
    truth = problem["camera"]["rotation"]
    mirror = mirror_of_truth(problem)
    out = {}
    for name, cfg in strategies.items():
        res = solve(points_ndc(problem), problem["visibility"], problem["template"], problem.get("basis"),
                    cfg=cfg)
        labels = classify(res.rotation, truth, mirror, threshold_deg)
        row = {lab: float((labels == k).double().mean()) for k, lab in enumerate(LABELS)}
        row["median_error_deg"] = float(rotation_angle_deg(res.rotation, truth).median())
        out[name] = row
    return out


def flatten(problem: dict, factor: float) -> dict:
    """A copy of a bird/random problem whose object is squashed by ``factor`` along its thinnest axis.

    The template's least principal axis ``n`` (about its centroid) is scaled by
    ``factor`` in the template, the basis and the posed vertices alike, and the
    points are re-projected with the true cameras (visibility is kept). ``factor=1``
    changes nothing; towards 0 the object becomes planar and the mirror exact.
    """
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    from ...geometry import ndc_to_pixel

    T = problem["template"]
    centre = T.mean(0)
    n = torch.linalg.eigh((T - centre).T @ (T - centre)).eigenvectors[:, 0]
    squash = torch.eye(3, dtype=T.dtype) - (1 - factor) * torch.outer(n, n)
    verts = true_verts(problem)
    out = dict(problem)
    out["template"] = (T - centre) @ squash.T + centre
    out["basis"] = problem["basis"] @ squash.T
    out["verts"] = (verts - centre) @ squash.T + centre
    cam = problem["camera"]
    H, W = problem["image_size"]
    out["points"] = ndc_to_pixel(ortho_project(out["verts"], cam["scale"], cam["rotation"], cam["trans"]), H, W)
    out.pop("images", None)
    out.pop("points_clean", None)
    return out
