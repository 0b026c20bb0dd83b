"""Evaluation metrics shared by the papers: PCK, mask IoU, and depth errors (SIDE/MAD).

Each function validates its inputs, works on batches and returns plain tensors.

Input rule (one for all metrics): every value a metric reads must be finite. A
NaN or inf among them raises ``ValueError`` naming the argument and the count; a
metric never drops it silently. Values a metric does not read are not checked:
the coordinates of invisible keypoints and the pixels outside the mask may hold
anything (datasets often store NaN or 0 there, renderers inf depth). Checks come
from :mod:`csmlab.checks`; new metrics should use the same helpers.
"""

from __future__ import annotations

import torch

from .checks import FLOAT_DTYPES, check_binary, check_finite, check_number, check_tensor


def _check_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {list(a.shape)} and {list(b.shape)}")


def _check_images(spec: str, **tensors) -> dict:
    """Float image tensors that share one shape spec, dtype and device; returns the bound sizes."""
    dims: dict = {}
    for name, x in tensors.items():
        check_tensor(name, x, shape=spec, dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)
    return dims


def _check_mask(name: str, mask, dims: dict) -> torch.Tensor:
    """A [B,1,H,W] mask matching ``dims``, bool or 0/1, not empty for any instance; returned as bool."""
    check_tensor(name, mask, shape="B,1,H,W", dims=dims)
    m = check_binary(name, mask)
    empty = (m.flatten(1).sum(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"{name} is empty for instance(s) {empty[:10]}: the metric is undefined there")
    return m


def pck(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, threshold: float,
        normalizer: torch.Tensor | float) -> torch.Tensor:
    """Percentage of Correct Keypoints: fraction of visible points within ``threshold * normalizer``.

    pred, gt: [...,K,2] pixel positions; visible: [...,K] (bool or 0/1);
    normalizer: the length the threshold is relative to (image size, bbox size...),
    a positive float or a tensor of shape [...] (one per instance). Returns a scalar in [0, 1],
    or NaN when no point is visible.
    """
    dims: dict = {}
    check_tensor("pred", pred, shape="...,K,2", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)
    check_tensor("gt", gt, shape="...,K,2", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)
    check_tensor("visible", visible, shape="...,K", dims=dims)
    vis = check_binary("visible", visible)
    check_number("threshold", threshold, low=0, low_open=True)
    if isinstance(normalizer, torch.Tensor) and normalizer.numel() != 1:
        check_tensor("normalizer", normalizer, shape="...", dims=dims, dtypes=FLOAT_DTYPES)
        check_finite("normalizer", normalizer)
        if bool((normalizer <= 0).any()):
            raise ValueError(f"normalizer must be positive, got {int((normalizer <= 0).sum())} entries <= 0")
        norm = normalizer.to(pred.dtype)[..., None]
    else:
        norm = torch.as_tensor(check_number("normalizer", normalizer, low=0, low_open=True), dtype=pred.dtype,
                               device=pred.device)
    check_finite("pred", pred, vis[..., None], " at visible keypoints")
    check_finite("gt", gt, vis[..., None], " at visible keypoints")
    if vis.sum() == 0:
        return torch.tensor(float("nan"))
    dist = torch.where(vis, (torch.where(vis[..., None], pred - gt, 0.0)).norm(dim=-1), 0.0)
    return ((dist <= threshold * norm) & vis).sum().float() / vis.sum().float()


def mask_iou(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """[B] intersection over union of [B,1,H,W] masks (binarised at ``threshold``); 0 where both are empty."""
    dims: dict = {}
    for name, x in (("pred", pred), ("gt", gt)):
        check_tensor(name, x, shape="B,1,H,W", dims=dims)
        if x.dtype != torch.bool and not x.is_floating_point():
            raise ValueError(f"{name} must be a bool or float mask, got {x.dtype}")
        check_finite(name, x)
    check_number("threshold", threshold)
    p, g = pred > threshold, gt > threshold
    inter = (p & g).flatten(1).sum(1).float()
    union = (p | g).flatten(1).sum(1).float()
    return inter / union.clamp_min(1)


def scale_invariant_depth_error(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] scale-invariant depth error (SIDE, Eigen et al.; Unsup3D's metric) on log depth.

    SIDE = sqrt( mean(d^2) - mean(d)^2 ), d = log(pred) - log(gt) over the mask.
    pred, gt: [B,1,H,W] depths; mask: [B,1,H,W] bool or 0/1, not empty for any instance.
    """
    dims = _check_images("B,1,H,W", pred=pred, gt=gt)
    m = _check_mask("mask", mask, dims).flatten(1)
    for name, x in (("pred", pred), ("gt", gt)):
        check_finite(name, x, mask.bool(), " inside the mask")
        if bool((x.flatten(1)[m] <= 0).any()):
            raise ValueError(f"{name} must be positive inside the mask (SIDE takes logs), got "
                             f"{int((x.flatten(1)[m] <= 0).sum())} entries <= 0")
    d = torch.where(m, pred.flatten(1).clamp_min(1e-12).log() - gt.flatten(1).clamp_min(1e-12).log(), 0.0)
    n = m.sum(1).float()
    mean = d.sum(1) / n
    mean_sq = (d * d).sum(1) / n
    return (mean_sq - mean * mean).clamp_min(0).sqrt()


def mean_angle_deviation(pred_normals: torch.Tensor, gt_normals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] mean angle deviation (MAD, degrees) between [B,3,H,W] normal maps over a [B,1,H,W] mask.

    The normals need not be unit length, but must not be zero inside the mask.
    """
    dims = _check_images("B,3,H,W", pred_normals=pred_normals, gt_normals=gt_normals)
    m = _check_mask("mask", mask, dims)[:, 0]
    for name, x in (("pred_normals", pred_normals), ("gt_normals", gt_normals)):
        check_finite(name, x, m[:, None].expand_as(x), " inside the mask")
        zero = (x.norm(dim=1) == 0) & m
        if bool(zero.any()):
            raise ValueError(f"{name} must have no zero-length normal inside the mask, got {int(zero.sum())}")
    cos = torch.nn.functional.cosine_similarity(pred_normals, gt_normals, dim=1).clamp(-1, 1)
    ang = torch.rad2deg(torch.acos(cos))
    return torch.where(m, ang, 0.0).flatten(1).sum(1) / m.flatten(1).sum(1)


def apk(errors: torch.Tensor, confidence: torch.Tensor, threshold: float) -> torch.Tensor:
    """Average precision of keypoint transfer (APK): transfers ranked by confidence, correct if error <= threshold.

    errors, confidence: [T] one entry per attempted transfer (higher confidence first;
    pass e.g. minus a matching distance). Every attempted transfer is a positive to
    recall, so ``APK = (1/T) * sum over correct transfers of the precision at their rank``.
    It equals PCK when all correct transfers are ranked first and is lower otherwise.
    Ties in confidence are broken by the original order (a stable sort). NaN when T = 0.
    """
    dims: dict = {}
    check_tensor("errors", errors, shape="T", dims=dims, dtypes=FLOAT_DTYPES, finite=True)
    check_tensor("confidence", confidence, shape="T", dims=dims, dtypes=FLOAT_DTYPES, finite=True)
    check_number("threshold", threshold, low=0)
    if bool((errors < 0).any()):
        raise ValueError(f"errors must be distances (>= 0), got {int((errors < 0).sum())} negative entries")
    if errors.numel() == 0:
        return torch.tensor(float("nan"))
    order = torch.sort(confidence, descending=True, stable=True).indices
    correct = (errors[order] <= threshold).double()
    precision = correct.cumsum(0) / torch.arange(1, correct.numel() + 1, dtype=torch.float64, device=errors.device)
    return (precision * correct).sum() / correct.numel()


# Keypoint transfer (CSM's protocol), shared by every method that maps pixels to template points
# (moved here from csmlab.methods.csm.evaluate so that CSM and TTP score transfers the same way).

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


# Moved here from csmlab.methods.csm.evaluate (CSM and ACSM score the surface map the same way).
def surface_error(pred_points: torch.Tensor, gt_points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N] mean 3D distance between predicted and true template points over each [N,1,H,W] foreground."""
    if pred_points.shape != gt_points.shape or pred_points.dim() != 4 or pred_points.shape[1] != 3:
        raise ValueError(f"pred_points and gt_points must both be [N,3,H,W], got {list(pred_points.shape)} "
                         f"and {list(gt_points.shape)}")
    m = (mask[:, 0] > 0.5).to(pred_points.dtype)
    d = (pred_points - gt_points).norm(dim=1)
    return (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
# Keypoint average precision (KAP; Mariotti et al., CVPR 2024), after the authors' evaluation
# script (VICO-UoE/SphericalMaps, pck_spair_pascal_sphere.py, the ``--AP`` / metric == 'mAP' path).

def average_precision(labels: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Average precision of binary ``labels`` ranked by ``scores``, as scikit-learn's ``average_precision_score``.

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds, high to low (tied
    scores enter together, as in sklearn's ``precision_recall_curve``). With binary labels
    sklearn's ``average='weighted'`` (the authors' call) is this same number. NaN without positives.
    """
    dims: dict = {}
    check_tensor("labels", labels, shape="E", dims=dims)
    check_tensor("scores", scores, shape="E", dims=dims, dtypes=FLOAT_DTYPES, finite=True)
    pos = check_binary("labels", labels).double()
    if pos.sum() == 0:
        return torch.tensor(float("nan"))
    order = torch.sort(scores.double(), descending=True, stable=True)
    s, y = order.values, pos[order.indices]
    last_of_tie = torch.ones_like(s, dtype=torch.bool)
    last_of_tie[:-1] = s[1:] != s[:-1]                          # one operating point per distinct score
    tp = y.cumsum(0)[last_of_tie]
    seen = torch.arange(1, s.numel() + 1, dtype=torch.float64, device=s.device)[last_of_tie]
    recall = tp / pos.sum()
    gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return (gain * (tp / seen)).sum()


def kap_entries(similarity: torch.Tensor, candidates: torch.Tensor, target_keypoints: torch.Tensor,
                target_visible: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, labels) that one image pair adds to KAP, exactly as the authors' ``--AP`` path.

    similarity: [K,N] of each source keypoint (visible in the source) to each target
    candidate; candidates: [N,2] their pixel positions; target_keypoints: [K,2] pixels;
    target_visible: [K]; radius: alpha * max(bbox) in pixels.
    The similarities are min-max normalised over the pair. For a keypoint visible in the
    target, the candidates within ``radius`` (and always the nearest one, for coarse
    grids) are its true matches: it adds a positive (best score among them) and a
    negative (best score outside them). A keypoint not visible in the target adds only a
    negative, its best score anywhere: a confident match to an occluded part costs precision.
    """
    dims: dict = {}
    check_tensor("similarity", similarity, shape="K,N", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)
    check_tensor("candidates", candidates, shape="N,2", dims=dims, dtypes=FLOAT_DTYPES)
    check_tensor("target_keypoints", target_keypoints, shape="K,2", dims=dims, dtypes=FLOAT_DTYPES)
    check_tensor("target_visible", target_visible, shape="K", dims=dims)
    vis = check_binary("target_visible", target_visible)
    check_number("radius", radius, low=0, low_open=True)
    check_finite("similarity", similarity)
    check_finite("candidates", candidates)
    check_finite("target_keypoints", target_keypoints, vis[:, None], " at visible keypoints")
    if similarity.shape[1] == 0:
        raise ValueError("similarity must have at least one target candidate (N >= 1), got N = 0")
    lo, hi = similarity.min(), similarity.max()
    sim = (similarity - lo) / (hi - lo) if hi > lo else torch.zeros_like(similarity)
    kp = torch.where(vis[:, None], target_keypoints, 0.0)
    d2 = (candidates[None] - kp[:, None]).pow(2).sum(-1)                        # [K,N]
    true = d2 < radius ** 2
    true[torch.arange(d2.shape[0]), d2.argmin(1)] = True
    true &= vis[:, None]
    scores, labels = [], []
    for k in range(sim.shape[0]):
        if true[k].any():
            scores.append(sim[k][true[k]].max())
            labels.append(1.0)
        if (~true[k]).any():
            scores.append(sim[k][~true[k]].max())
            labels.append(0.0)
    return torch.stack(scores) if scores else sim.new_zeros(0), torch.tensor(labels, dtype=torch.float64)


def kap(entries: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """KAP over many image pairs: the :func:`average_precision` of all their :func:`kap_entries` pooled."""
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(f"entries must be a non-empty list of (scores, labels) from kap_entries, got {entries!r}")
    scores = torch.cat([s.double() for s, _ in entries])
    labels = torch.cat([lab for _, lab in entries])
    return average_precision(labels, scores)
