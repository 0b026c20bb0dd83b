"""Closed-form starts from the moments of :mod:`.cost`: the Procrustes init and the optimal s, t.

:func:`csmlab.geometry.procrustes_init` and :func:`csmlab.geometry.fit_scale_translation`
sum over the N points; for the undeformed template (c = 0) those sums are blocks of the
moments the solver computes anyway -- ``K[:, :, 0, :, 0]`` = sum w [X;1][X;1]^T and
``L[:, :, 0, :]`` = sum w [X;1] u^T -- so the same start costs O(1) per instance instead of O(N).
"""

from __future__ import annotations

import torch

from ...geometry import affine_to_rotation, flip_negative_scale
from .cost import Moments


def moment_procrustes(mom: Moments) -> torch.Tensor:
    """[B,3,3] the Procrustes start of :func:`csmlab.geometry.procrustes_init`, from the template's moments.

    The weighted affine fit needs only the sums of w, w X, w X X^T, w u and w u X^T over the
    points: the p = q = 0 block of K and the p = 0 block of L. The same rotation up to round-off.
    """
    K0, L0 = mom.K[:, :, 0, :, 0], mom.L[:, :, 0, :]                     # [B,4,4], [B,4,2]
    W, Sx, Su = K0[:, 3, 3], K0[:, :3, 3], L0[:, 3, :]
    XtX = K0[:, :3, :3] - Sx[:, :, None] * Sx[:, None, :] / W[:, None, None]   # centred, as fit_affine
    UtX = L0[:, :3, :].transpose(1, 2) - Su[:, :, None] * Sx[:, None, :] / W[:, None, None]
    eye = torch.eye(3, dtype=XtX.dtype, device=XtX.device)
    XtX = XtX + 1e-9 * XtX.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None] * eye
    A = torch.linalg.solve(XtX, UtX.transpose(1, 2)).transpose(1, 2)
    R, _ = affine_to_rotation(A)
    s, t = moment_scale_translation(mom, R)
    return flip_negative_scale(R, s, t)[0]


def moment_scale_translation(mom: Moments, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`csmlab.geometry.fit_scale_translation` for the template (c = 0), from the moments."""
    K0, L0 = mom.K[:, :, 0, :, 0], mom.L[:, :, 0, :]
    W, Rxy = K0[:, 3, 3], R[:, :2, :]
    Y_sum = (Rxy @ K0[:, :3, 3:])[..., 0]                                    # sum w (R X)_xy [B,2]
    Su = L0[:, 3, :]
    num = (Rxy * L0[:, :3, :].transpose(1, 2)).sum((1, 2)) - (Y_sum * Su).sum(1) / W
    den = ((Rxy @ K0[:, :3, :3]) * Rxy).sum((1, 2)) - (Y_sum * Y_sum).sum(1) / W
    if (den <= torch.finfo(den.dtype).tiny).any():
        raise ValueError("the weighted points project to a single image point: the scale is undetermined")
    s = num / den
    return s, (Su - s[:, None] * Y_sum) / W[:, None]
