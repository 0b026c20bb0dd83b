"""Robust penalties on squared residual norms, for wrong correspondences.

Each penalty ``rho(e)`` acts on ``e = |u_i - u_hat_i|^2`` (NDC units squared) and
behaves like ``e`` for small residuals, so the quadratic TTP cost is the special
case ``"l2"``. ``scale`` is the residual norm (NDC) where the penalty starts to
give up on a point; at 128 px, 0.05 NDC is 3.2 px.

- ``l2``:            rho(e) = e
- ``huber``:         rho(e) = e                                  for sqrt(e) <= scale
                              2 scale sqrt(e) - scale^2         otherwise   (convex, linear tails)
- ``geman_mcclure``: rho(e) = scale^2 e / (scale^2 + e)         (bounded by scale^2: an outlier
                                                                   costs at most one constant)

:func:`irls_weight` is ``rho'(e)``: the weight a point gets in the iteratively
reweighted least-squares steps (the closed-form deformation solve).
"""

from __future__ import annotations

import torch

LOSSES = ("l2", "huber", "geman_mcclure")


def check_loss(name: str, scale: float) -> None:
    """Raise ValueError unless ``name`` is a known loss and ``scale`` is positive."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"robust_scale must be a positive number (NDC units), got {scale!r}")


def rho(e: torch.Tensor, name: str, scale: float) -> torch.Tensor:
    """Penalty of squared residual norms ``e`` (any shape, e >= 0)."""
    check_loss(name, scale)
    if name == "l2":
        return e
    c2 = scale * scale
    if name == "huber":
        # sqrt at e = 0 has an infinite derivative; the quadratic branch never takes it there.
        root = e.clamp_min(c2).sqrt()
        return torch.where(e <= c2, e, 2 * scale * root - c2)
    return c2 * e / (c2 + e)


def irls_weight(e: torch.Tensor, name: str, scale: float) -> torch.Tensor:
    """``rho'(e)``: 1 for inliers, smaller for points far off (IRLS weights)."""
    check_loss(name, scale)
    if name == "l2":
        return torch.ones_like(e)
    c2 = scale * scale
    if name == "huber":
        return torch.where(e <= c2, torch.ones_like(e), scale / e.clamp_min(c2).sqrt())
    return (c2 / (c2 + e)) ** 2
