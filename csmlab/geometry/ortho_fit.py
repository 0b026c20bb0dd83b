"""Closed-form pieces of fitting a scaled-orthographic camera to 2D-3D correspondences.

The camera is the one of :mod:`csmlab.geometry.camera`: ``u = s * (R X)[:2] + t``
(NDC, y up). Given 3D points ``X`` [B,N,3], their 2D images ``u`` [B,N,2] and
non-negative per-point weights ``w`` [B,N] (visibility, robust weights):

- :func:`fit_scale_translation` -- for a fixed rotation, the weighted least-squares
  ``s`` and ``t``. With ``Y = (R X)[:2]`` and weighted means ``Y_bar``, ``u_bar``::

      s = sum_i w_i (Y_i - Y_bar).(u_i - u_bar) / sum_i w_i |Y_i - Y_bar|^2,   t = u_bar - s Y_bar

- :func:`fit_affine` -- the weak-perspective factorisation: the unconstrained affine
  ``u ~ A X + b`` (A is 2x3), by weighted least squares.
- :func:`affine_to_rotation` -- orthogonal Procrustes on that affine: the nearest
  ``s * [r1; r2]`` with orthonormal rows is ``U V^T`` from the SVD ``A = U S V^T``,
  ``s = mean(S)``; the third row is ``r1 x r2`` so R is a proper rotation.
- :func:`procrustes_init` -- the three above in a row: an initial (R, s, t).
- :func:`mirror_rotation` -- the rotation that orthographic projection confuses with R
  (the depth flip, see its docstring).
"""

from __future__ import annotations

import torch

from csmlab.checks import FLOAT_DTYPES, check_tensor

# Depth flip in the camera frame: orthographic projection cannot see the sign of (R X)_z.
DEPTH_FLIP = (1.0, 1.0, -1.0)


def _shape(x) -> str:
    return f"{list(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


def _check_inputs(X: torch.Tensor, u: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Validate X [B,N,3], u [B,N,2], weights [B,N] (or None -> ones); return the weights."""
    dims: dict = {}
    check_tensor("X", X, shape="B,N,3", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True, finite=True)
    check_tensor("u", u, shape="B,N,2", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True, finite=True)
    B, N = X.shape[:2]
    if weights is None:
        return torch.ones(B, N, dtype=X.dtype, device=X.device)
    check_tensor("weights", weights, shape="B,N", dims=dims, finite=True)
    weights = weights.to(X.dtype)
    if (weights < 0).any():
        raise ValueError("weights must be non-negative (visibility or robust weights), got a negative entry")
    if (weights.sum(1) <= 0).any():
        raise ValueError("weights are all zero for at least one instance: nothing to fit")
    return weights


def _check_rotation(R: torch.Tensor, B: int) -> None:
    check_tensor("R", R, shape=f"{B},3,3", dtypes=FLOAT_DTYPES, finite=True)


def _weighted_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """[B,N,C] x, [B,N] w -> [B,C]."""
    return (w[..., None] * x).sum(1) / w.sum(1)[:, None]


def fit_scale_translation(X: torch.Tensor, u: torch.Tensor, R: torch.Tensor,
                          weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal ``s`` [B] and ``t`` [B,2] for a fixed rotation ``R`` [B,3,3] (weighted least squares).

    The returned ``s`` is the unconstrained optimum and is negative when ``R`` is off
    by a half turn about the optical axis; callers that need ``s > 0`` flip
    ``R <- diag(-1,-1,1) R`` (it negates the two projected rows) and negate ``s``.
    Differentiable in every argument.
    """
    w = _check_inputs(X, u, weights)
    _check_rotation(R, X.shape[0])
    Y = X @ R[:, :2, :].transpose(1, 2)                      # [B,N,2] rotated, projected
    Y_bar, u_bar = _weighted_mean(Y, w), _weighted_mean(u, w)
    Yc, uc = Y - Y_bar[:, None], u - u_bar[:, None]
    num = (w[..., None] * Yc * uc).sum((1, 2))
    den = (w[..., None] * Yc * Yc).sum((1, 2))
    if (den <= torch.finfo(den.dtype).tiny).any():
        raise ValueError("the weighted points project to a single image point: the scale is undetermined")
    s = num / den
    return s, u_bar - s[:, None] * Y_bar


def fit_affine(X: torch.Tensor, u: torch.Tensor, weights: torch.Tensor | None = None,
               ridge: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    """Weak-perspective factorisation: ``A`` [B,2,3] and ``b`` [B,2] minimising sum w |u - A X - b|^2.

    The 3x3 normal matrix is singular for planar point sets: there the component of A
    along the plane's normal is undetermined -- the orthographic mirror ambiguity.
    A ridge of ``ridge * trace / 3`` keeps the solve finite and sets that component to 0.
    """
    w = _check_inputs(X, u, weights)
    X_bar, u_bar = _weighted_mean(X, w), _weighted_mean(u, w)
    Xc, uc = X - X_bar[:, None], u - u_bar[:, None]
    XtX = torch.einsum("bn,bni,bnj->bij", w, Xc, Xc)                           # [B,3,3]
    UtX = torch.einsum("bn,bni,bnj->bij", w, uc, Xc)                           # [B,2,3]
    eye = torch.eye(3, dtype=X.dtype, device=X.device)
    XtX = XtX + ridge * XtX.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None] * eye
    A = torch.linalg.solve(XtX, UtX.transpose(1, 2)).transpose(1, 2)          # XtX symmetric
    return A, u_bar - (A @ X_bar[..., None])[..., 0]


def affine_to_rotation(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal Procrustes on a 2x3 affine: nearest ``s [r1; r2]`` -> (R [B,3,3], s [B]).

    ``argmin_{s, Q Q^T = I} |A - s Q|_F`` is ``Q = U V^T`` and ``s = (sigma_1 + sigma_2) / 2``
    from the thin SVD ``A = U diag(sigma) V^T``. ``r3 = r1 x r2`` completes a proper rotation.
    """
    if not (isinstance(A, torch.Tensor) and A.dim() == 3 and A.shape[1:] == (2, 3) and A.is_floating_point()):
        raise ValueError(f"A must be a float tensor [B,2,3], got {_shape(A)}")
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)                        # U [B,2,2], Vh [B,2,3]
    rows = U @ Vh
    r3 = torch.linalg.cross(rows[:, 0], rows[:, 1])
    return torch.cat([rows, r3[:, None]], dim=1), S.mean(-1)


def procrustes_init(X: torch.Tensor, u: torch.Tensor,
                    weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Initial camera (R [B,3,3], s [B], t [B,2]) from correspondences, in closed form.

    Affine factorisation, Procrustes to the nearest scaled rotation, then the optimal
    ``s, t`` for that rotation (re-fitting them is better than ``mean(sigma)``, which
    ignores how well each singular direction is measured).
    """
    w = _check_inputs(X, u, weights)
    A, _ = fit_affine(X, u, w)
    R, _ = affine_to_rotation(A)
    s, t = fit_scale_translation(X, u, R, w)
    return flip_negative_scale(R, s, t)


def flip_negative_scale(R: torch.Tensor, s: torch.Tensor,
                        t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Make ``s > 0`` without changing any projection: ``(R, s) -> (Rz(pi) R, -s)`` where s < 0."""
    half_turn = torch.tensor([-1.0, -1.0, 1.0], dtype=R.dtype, device=R.device)
    neg = s < 0
    R = torch.where(neg[:, None, None], half_turn[:, None] * R, R)
    return R, s.abs(), t


def mirror_rotation(R: torch.Tensor, X: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The rotation [B,3,3] that orthographic projection confuses with ``R`` for the points ``X``.

    Orthographic projection drops the depth, so the depth-flipped configuration
    ``D R X`` (``D = diag(1,1,-1)``) has exactly the image of ``R X``. It is a reflection
    of the object, not a rotation of it -- but it equals ``R_m S X`` with the rotation
    ``R_m = D R S`` for any reflection ``S`` of the object. Choosing ``S = I - 2 n n^T``
    with ``n`` the object's thinnest weighted direction (least principal axis of the
    centred points) makes ``S X`` closest to ``X``; then ``R_m X`` projects within
    ``2 s |n . X_i| |(R n)_xy|`` of ``R X``: exactly the same image for planar points,
    nearly the same for flat ones. (For a left-right symmetric object whose left and
    right correspondences can be swapped, ``S = diag(-1,1,1)`` gives an exact twin.)
    """
    if not (isinstance(X, torch.Tensor) and X.dim() == 3 and X.shape[-1] == 3 and X.is_floating_point()):
        raise ValueError(f"X must be a float tensor [B,N,3], got {_shape(X)}")
    w = _check_inputs(X, X[..., :2], weights)
    _check_rotation(R, X.shape[0])
    Xc = X - _weighted_mean(X, w)[:, None]
    cov = torch.einsum("bn,bni,bnj->bij", w, Xc, Xc)
    n = torch.linalg.eigh(cov).eigenvectors[..., 0]                             # smallest eigenvalue
    eye = torch.eye(3, dtype=X.dtype, device=X.device)
    S = eye - 2 * n[:, :, None] * n[:, None, :]
    D = torch.tensor(DEPTH_FLIP, dtype=X.dtype, device=X.device)
    return D[:, None] * (R @ S)
