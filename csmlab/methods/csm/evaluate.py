"""Evaluating CSM: keypoint transfer (the paper's protocol) and the surface error against ground truth.

Keypoint transfer between a source and a target image: the source keypoint's
pixel -> its predicted template point -> the target foreground pixel whose
predicted template point is nearest in 3D. The transfer is correct when it
lands within ``threshold * image size`` of the target's keypoint (PCK); the 3D
distance of the match is its confidence for APK. Only keypoints visible in both
images count, and every pair is evaluated in both directions.

The extra metric the paper could not have: the mean 3D distance between the
predicted template point and the ground-truth ``surface_xyz`` over the foreground,
and the angle between predicted and true sphere points.
"""

from __future__ import annotations

import math

import torch

from csmlab.geometry import quaternion_to_matrix, rotation_angle_deg, uv_to_sphere
from csmlab.metrics import (  # noqa: F401
    keypoint_transfer,
    mask_iou,
    sample_pairs,
    snap_to_mask,
    surface_error,
    transfer_keypoints,
)
from csmlab.train import predict_in_batches


def predict(model, images: torch.Tensor, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Run the model in eval mode over [N,3,H,W] images, in batches, on the model's device; CPU outputs."""
    return predict_in_batches(model, images, batch_size)


def sphere_angle_error(pred_sphere: torch.Tensor, gt_uv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N] mean geodesic angle (degrees) between predicted sphere points and the true UV's, over the foreground."""
    gt = uv_to_sphere(gt_uv.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    cos = (torch.nn.functional.normalize(pred_sphere, dim=1) * gt).sum(1).clamp(-1, 1)
    m = (mask[:, 0] > 0.5).to(cos.dtype)
    return (torch.rad2deg(torch.acos(cos)) * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)


def nearest_covered_pixel(covered):
    """(rows, cols) [H,W] int arrays: for every pixel, the nearest pixel where the bool [H,W] ``covered`` is true.

    An exact Euclidean distance transform (``scipy.ndimage.distance_transform_edt``), O(HW):
    a 256^2 image takes milliseconds, where comparing all pixel pairs needs O((HW)^2).
    """
    from scipy import ndimage

    rows, cols = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
    return rows, cols


@torch.no_grad()
def template_points_under(template, cams: dict, resolution: int, canonical_verts=None) -> torch.Tensor:
    """[B,3,H,W] template points of the *rigid* template rendered under one camera per image.

    ``cams`` holds ``scale`` [B], ``quat`` [B,4], ``trans`` [B,2]. Pixels the template does not
    cover get the point of the nearest covered pixel (an articulated bird's wing reaches past
    the rigid template). This is the best a map tied to a rigid template can do with those
    cameras: with the true cameras it is the ceiling of CSM on the data; with a model's own
    cameras it separates camera errors from surface-map errors. For a posed template (CSM's
    ``template_pose="folded"``) pass its rest-pose ``canonical_verts`` [V,3]: the posed mesh is
    rendered, and its points are returned in the canonical frame, where they are scored.
    """
    from csmlab.geometry import ortho_clip
    from csmlab.render import interpolate_image, rasterize_mesh

    scale, quat, trans = cams["scale"], cams["quat"], cams["trans"]
    if scale.dim() != 1 or quat.shape != (scale.shape[0], 4) or trans.shape != (scale.shape[0], 2):
        raise ValueError(f"cams must be scale [B], quat [B,4], trans [B,2], got {list(scale.shape)}, "
                         f"{list(quat.shape)}, {list(trans.shape)}")
    verts = template.verts.to(scale.dtype)
    X = verts[None].expand(scale.shape[0], -1, -1).contiguous()
    r = rasterize_mesh(ortho_clip(X, scale, quaternion_to_matrix(quat), trans), template.faces, resolution)
    if canonical_verts is not None:
        X = canonical_verts.to(X)[None].expand(scale.shape[0], -1, -1).contiguous()
    points, covered = interpolate_image(r, X), r.mask[:, 0] > 0.5
    for b in range(points.shape[0]):
        hit = covered[b].cpu().numpy()
        if hit.any() and not hit.all():
            rows, cols = nearest_covered_pixel(hit)
            points[b] = points[b][:, torch.from_numpy(rows).to(points.device), torch.from_numpy(cols).to(points.device)]
    return points


def evaluate(model, data: dict, n_pairs: int = 1000, threshold: float = 0.1, seed: int = 0,
             pred: dict | None = None) -> dict:
    """Metrics of a trained model on held-out ``data`` (``fit.stack_samples`` output).

    Returns plain floats: ``transfer_pck``, ``transfer_apk`` (both at ``threshold``),
    ``surface_error`` (mean 3D distance, template units), ``surface_error_mirror`` (the same,
    for the better of the two global left/right labellings), ``sphere_angle_deg``,
    ``mask_iou`` (the U-Net's mask), ``camera_error_deg`` (median rotation error of
    the most probable hypothesis; a diagnostic) and ``n_transfers``.
    Pass ``pred`` (from :func:`predict`) to reuse predictions.
    """
    if not isinstance(data, dict) or "image" not in data or "mask" not in data:
        raise ValueError("data must be a dict from stack_samples with at least 'image' and 'mask'")
    pred = pred if pred is not None else predict(model, data["image"])
    # Scored in the category's canonical (rest-pose) frame, the frame of surface_xyz. For a posed template
    # (template_pose="folded") those are the rest-mesh points of the predicted UV, not the rendered ones.
    points = pred.get("canonical_points", pred["points"])
    out: dict[str, float] = {}
    if "keypoints" in data:
        pairs = sample_pairs(data["image"].shape[0], n_pairs, seed)
        tr = keypoint_transfer(points, data["keypoints"], data["mask"], pairs, threshold)
        out.update(transfer_pck=tr["pck"], transfer_apk=tr["apk"], n_transfers=int(tr["errors"].numel()))
    if "surface_xyz" in data:
        out["surface_error"] = float(surface_error(points, data["surface_xyz"], data["mask"]).mean())
        # The template is mirror-symmetric, so a map that swaps left and right everywhere (with mirrored
        # cameras) is an equally valid solution: score the better of the two global labellings as well.
        mirrored = points * torch.tensor([-1.0, 1.0, 1.0]).reshape(1, 3, 1, 1)
        out["surface_error_mirror"] = min(out["surface_error"], float(
            surface_error(mirrored, data["surface_xyz"], data["mask"]).mean()))
    if "surface_uv" in data:
        out["sphere_angle_deg"] = float(sphere_angle_error(pred["sphere"], data["surface_uv"], data["mask"]).mean())
    out["mask_iou"] = float(mask_iou(torch.sigmoid(pred["mask_logit"]), data["mask"]).mean())
    if "cam_quat" in data and "quat" in pred:
        best = pred["prob"].argmax(-1)
        q = pred["quat"][torch.arange(best.shape[0]), best]
        err = rotation_angle_deg(quaternion_to_matrix(q), quaternion_to_matrix(data["cam_quat"]))
        out["camera_error_deg"] = float(err.median())
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}
