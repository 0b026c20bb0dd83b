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
from csmlab.metrics import apk, mask_iou, pck


@torch.no_grad()
def predict(model, images: torch.Tensor, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Run the model in eval mode over [N,3,H,W] images, in batches, on the model's device; CPU outputs."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a [N,3,H,W] tensor, got "
                         f"{list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = [{k: v.cpu() for k, v in model(images[i:i + batch_size].to(device)).items()}
              for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def snap_to_mask(keypoints: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) of the foreground pixel whose centre is nearest to each [K,2] pixel position.

    Tip keypoints (beak, tail, wing tips, feet) sit on the silhouette, so the pixel that
    contains them is often background, where a surface map means nothing; reading the
    nearest foreground pixel keeps the protocol about the object.
    """
    H, W = mask.shape[-2:]
    fg = torch.nonzero(mask.reshape(H, W) > 0.5)
    if fg.shape[0] == 0:
        raise ValueError("src_mask has no foreground pixel to read keypoints from")
    centres = fg.to(keypoints.dtype) + 0.5                                    # (row, col) centres
    d = torch.cdist(keypoints[:, [1, 0]].double(), centres.double())
    best = fg[d.argmin(dim=1)]
    return best[:, 0], best[:, 1]


def transfer_keypoints(src_points: torch.Tensor, src_keypoints: torch.Tensor, tgt_points: torch.Tensor,
                       tgt_mask: torch.Tensor, src_mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Transfer keypoints from a source to a target image through their template points.

    Args:
        src_points, tgt_points: [3,H,W] predicted template points of each image.
        src_keypoints: [K,2] (or [K,3]) source keypoints in pixels (x right, y down);
            the template point is read at the pixel that contains each keypoint, or,
            with ``src_mask``, at the nearest foreground pixel (:func:`snap_to_mask`).
        tgt_mask: [1,H,W] target foreground; only its pixels can be matched.
    Returns:
        (transferred [K,2] pixel centres in the target, distance [K] in template units).
    """
    for name, x in (("src_points", src_points), ("tgt_points", tgt_points)):
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"{name} must be a [3,H,W] tensor, got "
                             f"{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    H, W = tgt_points.shape[1:]
    if tgt_mask.shape != (1, H, W):
        raise ValueError(f"tgt_mask must be [1,{H},{W}], got {list(tgt_mask.shape)}")
    if src_keypoints.dim() != 2 or src_keypoints.shape[1] not in (2, 3):
        raise ValueError(f"src_keypoints must be [K,2] or [K,3], got {list(src_keypoints.shape)}")
    Hs, Ws = src_points.shape[1:]
    if src_mask is not None:
        if src_mask.shape != (1, Hs, Ws):
            raise ValueError(f"src_mask must be [1,{Hs},{Ws}], got {list(src_mask.shape)}")
        row, col = snap_to_mask(src_keypoints[:, :2], src_mask)
    else:
        col = src_keypoints[:, 0].floor().long().clamp(0, Ws - 1)   # keypoints on the border stay on the image
        row = src_keypoints[:, 1].floor().long().clamp(0, Hs - 1)
    query = src_points[:, row, col].T                                 # [K,3]
    fg = tgt_mask[0].reshape(-1) > 0.5
    if not fg.any():
        raise ValueError("tgt_mask has no foreground pixel to transfer to")
    candidates = tgt_points.reshape(3, -1).T[fg]                      # [M,3]
    pixel_index = torch.nonzero(fg)[:, 0]
    dist, best = torch.cdist(query.double(), candidates.double()).min(dim=1)
    idx = pixel_index[best]
    xy = torch.stack([(idx % W).double() + 0.5, (idx // W).double() + 0.5], -1).to(src_keypoints.dtype)
    return xy, dist.to(src_keypoints.dtype)


def sample_pairs(n_images: int, n_pairs: int, seed: int = 0) -> torch.Tensor:
    """[P,2] random ordered pairs (i, j) with i != j, reproducible for a seed."""
    if n_images < 2 or n_pairs < 1:
        raise ValueError(f"need n_images >= 2 and n_pairs >= 1, got {n_images}, {n_pairs}")
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(n_images, (n_pairs,), generator=g)
    j = (i + 1 + torch.randint(n_images - 1, (n_pairs,), generator=g)) % n_images
    return torch.stack([i, j], -1)


def keypoint_transfer(points: torch.Tensor, keypoints: torch.Tensor, masks: torch.Tensor, pairs: torch.Tensor,
                      threshold: float = 0.1, both_directions: bool = True, snap_source: bool = True) -> dict:
    """Transfer keypoints over image pairs and score them.

    Args:
        points: [N,3,H,W] predicted template points; keypoints: [N,K,3] (x, y, visibility);
        masks: [N,1,H,W] foregrounds; pairs: [P,2] (source, target) indices.
        snap_source: read each source keypoint at its nearest foreground pixel (see
            :func:`snap_to_mask`); False reads the pixel that contains it.
    Returns a dict with ``pck`` and ``apk`` at ``threshold`` (fraction of the image size),
    the per-transfer ``errors`` (normalised), ``distances`` (3D), ``pairs`` and ``keypoint``.
    """
    if keypoints.dim() != 3 or keypoints.shape[-1] != 3 or keypoints.shape[0] != points.shape[0]:
        raise ValueError(f"keypoints must be [N,K,3] with N={points.shape[0]}, got {list(keypoints.shape)}")
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be [P,2], got {list(pairs.shape)}")
    H, W = points.shape[-2:]
    size = float(max(H, W))
    ordered = torch.cat([pairs, pairs.flip(-1)]) if both_directions else pairs
    pred_xy, gt_xy, dists, kp_ids, pair_ids = [], [], [], [], []
    for p, (s, t) in enumerate(ordered.tolist()):
        both = (keypoints[s, :, 2] > 0.5) & (keypoints[t, :, 2] > 0.5)
        if not both.any():
            continue
        xy, d = transfer_keypoints(points[s], keypoints[s, both, :2], points[t], masks[t],
                                   masks[s] if snap_source else None)
        pred_xy.append(xy)
        gt_xy.append(keypoints[t, both, :2])
        dists.append(d)
        kp_ids.append(torch.nonzero(both)[:, 0])
        pair_ids.append(torch.full((int(both.sum()),), p))
    if not pred_xy:
        raise ValueError("no keypoint is visible in both images of any pair")
    pred_xy, gt_xy, dist = torch.cat(pred_xy), torch.cat(gt_xy), torch.cat(dists)
    err = (pred_xy - gt_xy).norm(dim=-1) / size
    return {"pck": float(pck(pred_xy, gt_xy, torch.ones_like(err, dtype=torch.bool), threshold, size)),
            "apk": float(apk(err, -dist, threshold)), "errors": err, "distances": dist, "transferred": pred_xy,
            "keypoint": torch.cat(kp_ids), "pair": ordered[torch.cat(pair_ids)]}


def surface_error(pred_points: torch.Tensor, gt_points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N] mean 3D distance between predicted and true template points over each [N,1,H,W] foreground."""
    if pred_points.shape != gt_points.shape or pred_points.dim() != 4 or pred_points.shape[1] != 3:
        raise ValueError(f"pred_points and gt_points must both be [N,3,H,W], got {list(pred_points.shape)} "
                         f"and {list(gt_points.shape)}")
    m = (mask[:, 0] > 0.5).to(pred_points.dtype)
    d = (pred_points - gt_points).norm(dim=1)
    return (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)


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
def template_points_under(template, cams: dict, resolution: int) -> torch.Tensor:
    """[B,3,H,W] template points of the *rigid* template rendered under one camera per image.

    ``cams`` holds ``scale`` [B], ``quat`` [B,4], ``trans`` [B,2]. Pixels the template does not
    cover get the point of the nearest covered pixel (an articulated bird's wing reaches past
    the rigid template). This is the best a map tied to a rigid template can do with those
    cameras: with the true cameras it is the ceiling of CSM on the data; with a model's own
    cameras it separates camera errors from surface-map errors.
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
    out: dict[str, float] = {}
    if "keypoints" in data:
        pairs = sample_pairs(data["image"].shape[0], n_pairs, seed)
        tr = keypoint_transfer(pred["points"], data["keypoints"], data["mask"], pairs, threshold)
        out.update(transfer_pck=tr["pck"], transfer_apk=tr["apk"], n_transfers=int(tr["errors"].numel()))
    if "surface_xyz" in data:
        out["surface_error"] = float(surface_error(pred["points"], data["surface_xyz"], data["mask"]).mean())
        # The template is mirror-symmetric, so a map that swaps left and right everywhere (with mirrored
        # cameras) is an equally valid solution: score the better of the two global labellings as well.
        mirrored = pred["points"] * torch.tensor([-1.0, 1.0, 1.0]).reshape(1, 3, 1, 1)
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
