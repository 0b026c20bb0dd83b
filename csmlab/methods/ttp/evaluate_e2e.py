"""Evaluating end-to-end To The Point on held-out birds: cameras, masks, keypoint transfer and 3D shape.

- ``camera_error_deg``: median rotation angle between the solved and the true camera.
  The birds are mirror-symmetric and a self-supervised model can learn the mirrored
  labelling of the template as a whole (vertex i where its mirror partner is): every mask
  and texture loss is then the same, and the solved camera is the orthographic depth
  reflection of the truth, ``D R F`` (D = diag(1,1,-1), F the x-mirror). So the error
  is also reported against that mirrored truth, and ``camera_error_deg_labelled`` is the
  better of the two labellings, chosen once for the whole set (never per image).
- ``mask_iou``: the silhouette of the solved shape under the solved camera (rendered at
  the image resolution, > 0.5) against the true mask.
- ``transfer_pck`` / ``transfer_apk`` at 0.1: notebook 02's protocol
  (:func:`csmlab.metrics.keypoint_transfer`) on per-pixel template points: the rest
  template's coordinates interpolated over the raster of the solved shape (pixels of the
  true mask that the reconstruction misses take the nearest covered pixel's point).
- ``shape_error``: mean per-vertex distance between the solved shape V = T + B c and the
  true posed instance, after a similarity Procrustes alignment (rotation, scale,
  translation; no reflection) of V onto it, in the labelling chosen above; in template
  units (the bird is about 1.2 long). ``shape_error_template`` is the same for the rigid
  template, the baseline that a learned deformation should beat.
"""

from __future__ import annotations

import math

import torch

from csmlab.geometry import matrix_to_azel, quaternion_to_matrix, rotation_angle_deg
from csmlab.metrics import keypoint_transfer, mask_iou, sample_pairs

from .fit_e2e import solver_config, stack_samples
from .losses import render_solution
from .model import TTPNet

_D = torch.diag(torch.tensor([1.0, 1.0, -1.0]))
_F = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


@torch.no_grad()
def predict(model: TTPNet, images: torch.Tensor, cfg: dict, batch_size: int = 32,
            basis: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Correspondences, solved cameras and shapes, and renders (silhouette, template-point map) of [N,3,H,W].

    ``basis`` [K,N,3] replaces the model's learned one (the oracle-basis variant trains with the true basis,
    so it must be scored with it too)."""
    if not isinstance(model, TTPNet):
        raise ValueError(f"model must be a TTPNet, got {type(model).__name__}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a [N,3,H,W] tensor, got {got}")
    was = model.training
    model.eval()
    device = model.template.device
    solver = solver_config(cfg)
    chunks = []
    for i in range(0, images.shape[0], batch_size):
        out = model(images[i:i + batch_size].to(device), solver, "none",
                    basis=None if basis is None else basis.to(device=device, dtype=model.basis.dtype))
        r = render_solution(out["verts"], model.faces, out, images.shape[-1])
        from csmlab.render import interpolate_image, silhouette

        out["silhouette"] = silhouette(r, antialias=False)
        out["points_map"] = interpolate_image(r, model.template)
        chunks.append({k: v.cpu() for k, v in out.items()})
    model.train(was)
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def fill_uncovered(points: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] points where pixels outside ``covered`` [N,1,H,W] take the nearest covered pixel's value."""
    N, _, H, W = points.shape
    rows, cols = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
    pix = torch.stack([rows, cols], -1).reshape(-1, 2)
    out = points.clone()
    for b in range(N):
        hit = covered[b, 0].reshape(-1) > 0.5
        if hit.any() and not hit.all():
            nearest = torch.cdist(pix, pix[hit]).argmin(1)
            out[b] = points[b].reshape(3, -1)[:, hit][:, nearest].reshape(3, H, W)
    return out


def similarity_align(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """[B,N,3] X moved by the similarity (s R, t; det R = +1) that best fits it to Y in least squares."""
    mx, my = X.mean(1, keepdim=True), Y.mean(1, keepdim=True)
    Xc, Yc = X - mx, Y - my
    U, S, Vh = torch.linalg.svd(Yc.transpose(1, 2) @ Xc)
    d = torch.det(U @ Vh)
    D = torch.ones_like(S)
    D[:, 2] = torch.where(d < 0, -1.0, 1.0)
    R = U @ (D[..., None] * Vh)
    s = (S * D).sum(-1) / (Xc ** 2).sum((1, 2)).clamp_min(1e-12)
    return s[:, None, None] * Xc @ R.transpose(1, 2) + my


def mirror_labelling(verts: torch.Tensor, vertex_flip: torch.Tensor) -> torch.Tensor:
    """The shape read in the mirrored labelling: vertex i takes its partner's position, reflected in x = 0."""
    return verts[:, vertex_flip] * torch.tensor([-1.0, 1.0, 1.0], dtype=verts.dtype)


def evaluate(model: TTPNet, data, cfg: dict | None = None, category=None, n_pairs: int | None = None,
             threshold: float | None = None, seed: int = 0, pred: dict | None = None) -> dict:
    """Metrics of a trained model on held-out ``data`` (a synthetic dataset or :func:`.fit_e2e.stack_samples`).

    Returns plain floats (module docstring), plus ``per_image`` tensors (solved and true
    azimuths, rotation errors, shape errors, IoUs) for the notebook's plots.
    """
    from csmlab.data.synthetic import get_category, pose_vertices

    cfg = cfg or {}
    data = data if isinstance(data, dict) else stack_samples(data)
    category = category or get_category(cfg.get("category", "birds"))
    n_pairs = n_pairs or cfg.get("n_pairs", 1000)
    threshold = threshold or cfg.get("threshold", 0.1)
    solver_cfg = {"solver_loss": "l2", "def_steps": 1, "lbfgs_iters": 6, "polish_steps": 3, "seed": seed, **cfg}
    oracle = category.basis.float() if cfg.get("oracle_basis") else None   # the basis the variant trained with
    pred = pred if pred is not None else predict(model, data["image"], solver_cfg, basis=oracle)
    out, per = {}, {}
    R = pred["rotation"].double()
    if "cam_quat" in data:
        R_gt = quaternion_to_matrix(data["cam_quat"].double())
        err = rotation_angle_deg(R, R_gt)
        err_m = rotation_angle_deg(R, _D.double() @ R_gt @ _F.double())
        mirrored = bool(err_m.median() < err.median())
        out.update(camera_error_deg=float(err.median()), camera_error_mirror_deg=float(err_m.median()),
                   camera_error_deg_labelled=float(torch.minimum(err.median(), err_m.median())),
                   mirrored_labelling=mirrored)
        per.update(rotation_error_deg=err_m if mirrored else err, azimuth_true=matrix_to_azel(R_gt)[0],
                   azimuth_solved=matrix_to_azel(R)[0])
    else:
        mirrored = False
    iou = mask_iou(pred["silhouette"], data["mask"])
    out["mask_iou"] = float(iou.mean())
    per["mask_iou"] = iou
    if "keypoints" in data:
        points = fill_uncovered(pred["points_map"], pred["silhouette"])
        pairs = sample_pairs(data["image"].shape[0], n_pairs, seed)
        tr = keypoint_transfer(points, data["keypoints"], data["mask"], pairs, threshold)
        out.update(transfer_pck=tr["pck"], transfer_apk=tr["apk"], n_transfers=int(tr["errors"].numel()))
    if "deform" in data and "articulation" in data:
        truth = pose_vertices(category, data["deform"], data["articulation"]).double()
        V = pred["verts"].double()
        T = model.template.double().cpu()[None].expand_as(V)
        if mirrored:
            flip = category.vertex_flip.long()
            V, T = mirror_labelling(V, flip), mirror_labelling(T, flip)
        shape = (similarity_align(V, truth) - truth).norm(dim=-1).mean(-1)
        base = (similarity_align(T, truth) - truth).norm(dim=-1).mean(-1)
        out.update(shape_error=float(shape.mean()), shape_error_template=float(base.mean()))
        per["shape_error"] = shape
        per["vertex_error"] = (similarity_align(V, truth) - truth).norm(dim=-1).mean(0)
    out = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}
    out["per_image"] = per
    return out


def evaluation_sets(cfg: dict, root=None) -> dict:
    """{"source": ..., "rungs": {rung: stacked data}}: the shared benchmark split's rungs A, B and C."""
    from csmlab.data.synthetic import benchmark_split

    res = cfg["resolution"]
    rungs = {r: stack_samples(benchmark_split(cfg["category"], r, res, root=root)) for r in ("A", "B", "C")}
    return {"source": f"benchmark_split({cfg['category']!r}, rung, resolution={res})", "rungs": rungs}


def evaluate_rungs(model: TTPNet, cfg: dict, root=None) -> dict:
    """{"source", rung: metrics} on :func:`evaluation_sets` (the per-image tensors left out)."""
    sets = evaluation_sets(cfg, root)
    result = {"source": sets["source"]}
    for rung, data in sets["rungs"].items():
        m = evaluate(model, data, cfg)
        m.pop("per_image")
        result[rung] = m
    return result
