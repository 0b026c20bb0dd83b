"""Evaluation metrics shared by the papers: PCK, mask IoU, and depth errors (SIDE/MAD).

Each function validates its inputs, works on batches and returns plain tensors.
"""

from __future__ import annotations

import torch


def _check_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {list(a.shape)} and {list(b.shape)}")


def pck(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, threshold: float,
        normalizer: torch.Tensor | float) -> torch.Tensor:
    """Percentage of Correct Keypoints: fraction of visible points within ``threshold * normalizer``.

    pred, gt: [...,K,2] pixel positions; visible: [...,K] (bool or 0/1);
    normalizer: the length the threshold is relative to (image size, bbox size...),
    a float or broadcastable to [...] (one per instance). Returns a scalar in [0, 1],
    or NaN when no point is visible.
    """
    _check_pair("pred", pred, "gt", gt)
    if pred.shape[-1] != 2 or visible.shape != pred.shape[:-1]:
        raise ValueError(f"pred/gt must be [...,K,2] and visible [...,K], got {list(pred.shape)} "
                         f"and {list(visible.shape)}")
    norm = torch.as_tensor(normalizer, dtype=pred.dtype, device=pred.device)
    if norm.dim() > 0:
        norm = norm[..., None]
    dist = (pred - gt).norm(dim=-1)
    vis = visible.bool()
    if vis.sum() == 0:
        return torch.tensor(float("nan"))
    return ((dist <= threshold * norm) & vis).sum().float() / vis.sum().float()


def mask_iou(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """[B] intersection over union of [B,1,H,W] masks (binarised at ``threshold``)."""
    _check_pair("pred", pred, "gt", gt)
    p, g = pred > threshold, gt > threshold
    inter = (p & g).flatten(1).sum(1).float()
    union = (p | g).flatten(1).sum(1).float()
    return inter / union.clamp_min(1)


def scale_invariant_depth_error(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] scale-invariant depth error (SIDE, Eigen et al.; Unsup3D's metric) on log depth.

    SIDE = sqrt( mean(d^2) - mean(d)^2 ), d = log(pred) - log(gt) over the mask.
    """
    _check_pair("pred", pred, "gt", gt)
    _check_pair("pred", pred, "mask", mask)
    m = mask.flatten(1).bool()
    if (m.sum(1) == 0).any():
        raise ValueError("mask is empty for at least one instance: SIDE is undefined there")
    if (pred.flatten(1)[m] <= 0).any() or (gt.flatten(1)[m] <= 0).any():
        raise ValueError("SIDE needs positive depths inside the mask")
    d = torch.where(m, pred.flatten(1).clamp_min(1e-12).log() - gt.flatten(1).clamp_min(1e-12).log(), 0.0)
    n = m.sum(1).float()
    mean = d.sum(1) / n
    mean_sq = (d * d).sum(1) / n
    return (mean_sq - mean * mean).clamp_min(0).sqrt()


def mean_angle_deviation(pred_normals: torch.Tensor, gt_normals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] mean angle deviation (MAD, degrees) between [B,3,H,W] normal maps over a [B,1,H,W] mask."""
    _check_pair("pred_normals", pred_normals, "gt_normals", gt_normals)
    cos = torch.nn.functional.cosine_similarity(pred_normals, gt_normals, dim=1).clamp(-1, 1)
    ang = torch.rad2deg(torch.acos(cos))
    m = mask[:, 0].bool()
    if (m.flatten(1).sum(1) == 0).any():
        raise ValueError("mask is empty for at least one instance: MAD is undefined there")
    return torch.where(m, ang, 0.0).flatten(1).sum(1) / m.flatten(1).sum(1)


def apk(errors: torch.Tensor, confidence: torch.Tensor, threshold: float) -> torch.Tensor:
    """Average precision of keypoint transfer (APK): transfers ranked by confidence, correct if error <= threshold.

    errors, confidence: [T] one entry per attempted transfer (higher confidence first;
    pass e.g. minus a matching distance). Every attempted transfer is a positive to
    recall, so ``APK = (1/T) * sum over correct transfers of the precision at their rank``.
    It equals PCK when all correct transfers are ranked first and is lower otherwise.
    Ties in confidence are broken by the original order (a stable sort).
    """
    if errors.dim() != 1 or confidence.shape != errors.shape:
        raise ValueError(f"errors and confidence must both be [T], got {list(errors.shape)} and "
                         f"{list(confidence.shape)}")
    if errors.numel() == 0:
        return torch.tensor(float("nan"))
    order = torch.sort(confidence, descending=True, stable=True).indices
    correct = (errors[order] <= threshold).double()
    precision = correct.cumsum(0) / torch.arange(1, correct.numel() + 1, dtype=torch.float64)
    return (precision * correct).sum() / correct.numel()
