"""As-rigid-as-possible (ARAP) energy of a deformed mesh against its rest shape, batched and differentiable.

    E = mean_i  sum_j w_ij || (v'_j - v'_i) - R_i (v_j - v_i) ||^2

over the one-rings of :mod:`.laplacian` (cotangent weights of the rest mesh by default,
as To The Point's ``arap_loss``). R_i is the rotation that best maps vertex i's rest
edges onto its deformed ones: with ``S_i = sum_j w_ij (v'_j - v'_i)(v_j - v_i)^T = U Sigma V^T``,
``R_i = U diag(1, 1, det(U V^T)) V^T`` -- the determinant fix, without which a flat or
folded neighbourhood can get a *reflection*, which is no rigid motion.

How R_i is computed (``method``):

- ``"auto"`` (default): ``"compiled"`` for CPU tensors when numba is installed and the
  weights need no gradient, ``"newton"`` otherwise (GPU, no numba).
- ``"compiled"``: numba kernels (:mod:`.kernels_arap`, :mod:`.arap_compiled`) running the
  ``"newton"`` fit per 3 x 3 matrix in float64 -- each vertex stops when it has converged --
  plus one fused pass for the energy and its gradient. The 642-vertex bird, batch 64,
  forward + backward: ``benchmarks/arap_speed.py`` prints it beside the two PyTorch paths.
- ``"svd"``: literally the formula above, a batched ``torch.linalg.svd``. This is the
  reference; on one CPU thread the SVD alone took 0.24 s for the 41 088 matrices of a
  64-bird batch (measured at load 4 on a shared 2-core machine), far over a 20 ms budget.
- ``"newton"``: the same rotation, as the maximiser of ``tr(R^T S_i)`` over
  SO(3), by Newton steps on the rotation (``R <- exp([w]) R``, ``w = H^-1 g`` with
  ``g = vee(B - B^T)``, ``H = tr(B) I - sym(B)``, ``B = S R^T``; a gradient step of
  Mueller et al. 2016 where H is not positive definite), started from each instance's
  global Procrustes rotation, so a global rotation of the mesh costs no iterations.
  Quadratic convergence; the tests hold it to the SVD answer.

Gradients: R_i minimises E for the current v', so dE/dv' at fixed R_i is the full
derivative (envelope theorem). R_i is therefore computed without a graph, which also
avoids the SVD's unstable backward at repeated singular values.
"""

from __future__ import annotations

import torch

from .arap_compiled import compiled_arap_energy, compiled_available
from .laplacian import check_mesh_batch, edge_vectors, laplacian_weights

METHODS = ("auto", "compiled", "newton", "svd")
ROTATION_METHODS = ("newton", "svd")


def _det_fixed_procrustes(S: torch.Tensor) -> torch.Tensor:
    """[...,3,3] the rotation R maximising tr(R^T S): SVD with the determinant sign fix."""
    U, _, Vh = torch.linalg.svd(S)
    d = torch.det(U @ Vh)
    D = torch.ones(*S.shape[:-1], dtype=S.dtype, device=S.device)
    D[..., 2] = torch.where(d < 0, -1.0, 1.0).to(S.dtype)
    return U @ (D[..., None] * Vh)


def _skew(w: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(w[..., 0])
    return torch.stack([torch.stack([z, -w[..., 2], w[..., 1]], -1),
                        torch.stack([w[..., 2], z, -w[..., 0]], -1),
                        torch.stack([-w[..., 1], w[..., 0], z], -1)], -2)


def _expm_so3(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, with the Taylor series for small angles."""
    theta2 = (w * w).sum(-1)[..., None, None]
    theta = theta2.sqrt()
    small = theta2 < 1e-8
    safe = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1 - theta2 / 6, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(safe)) / (safe * safe))
    K = _skew(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + a * K + b * (K @ K)


def _newton_direction(B: torch.Tensor, eps: float) -> torch.Tensor:
    """The ascent step w of tr(exp(-[w]) B): Newton where H = tr(B) I - sym(B) is positive definite."""
    g = torch.stack([B[..., 2, 1] - B[..., 1, 2], B[..., 0, 2] - B[..., 2, 0], B[..., 1, 0] - B[..., 0, 1]], -1)
    tr = B[..., 0, 0] + B[..., 1, 1] + B[..., 2, 2]
    Hm = tr[..., None, None] * torch.eye(3, dtype=B.dtype, device=B.device) - 0.5 * (B + B.transpose(-1, -2))
    # adjugate solve of the symmetric 3x3 system (a batched LAPACK call costs more than the whole step)
    a, b, c = Hm[..., 0, 0], Hm[..., 0, 1], Hm[..., 0, 2]
    d, e, f = Hm[..., 1, 1], Hm[..., 1, 2], Hm[..., 2, 2]
    A11, A12, A13 = d * f - e * e, c * e - b * f, b * e - c * d
    A22, A23, A33 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * A11 + b * A12 + c * A13
    adj = torch.stack([torch.stack([A11, A12, A13], -1), torch.stack([A12, A22, A23], -1),
                       torch.stack([A13, A23, A33], -1)], -2)
    scale = tr.abs().clamp_min(eps)
    pd = (a > eps * scale) & (A33 > (eps * scale) ** 2) & (det > (eps * scale) ** 3)
    newton = (adj @ g[..., None])[..., 0] / torch.where(pd, det, torch.ones_like(det))[..., None]
    # the gradient step of Mueller et al., with 1 / (an upper bound of the nuclear norm): never overshoots
    lipschitz = (3 * (B * B).sum((-1, -2))).sqrt().clamp_min(eps)
    gradient = g / lipschitz[..., None]
    # Far from the optimum H can be nearly singular: Newton only inside a trust region of 0.5 rad
    trusted = pd & (newton.norm(dim=-1) < 0.5)
    return torch.where(trusted[..., None], newton, gradient)


def nearest_rotations(S: torch.Tensor, init: torch.Tensor | None = None, method: str = "newton",
                      tol: float | None = None, max_iter: int = 8) -> torch.Tensor:
    """[...,3,3] the rotations maximising tr(R^T S) (the polar rotation with the determinant fix).

    ``init`` [...,3,3] starting rotations for ``"newton"`` (default: identity). Iterates until
    every step is below ``tol`` radians or ``max_iter``; entries still moving then are finished
    by the SVD. Default ``tol``: 1e-10 in float64; 1e-3 in float32, where the step itself is
    only known to about 1e-6 x the conditioning (an error delta in R changes E by O(delta^2)).
    """
    if method not in ROTATION_METHODS:
        raise ValueError(f"method must be one of {ROTATION_METHODS}, got {method!r}")
    if method == "svd":
        return _det_fixed_procrustes(S)
    eps = 1e-12 if S.dtype == torch.float64 else 1e-6
    tol = (1e-10 if S.dtype == torch.float64 else 1e-3) if tol is None else tol
    R = torch.eye(3, dtype=S.dtype, device=S.device).expand_as(S) if init is None else init.expand_as(S)
    R = R.contiguous()
    moving = torch.ones(S.shape[:-2], dtype=torch.bool, device=S.device)
    for _ in range(max_iter):
        w = _newton_direction(S @ R.transpose(-1, -2), eps)
        step = w.norm(dim=-1)
        R = _expm_so3(w) @ R
        moving = step > tol
        if not bool(moving.any()):
            break
    else:
        if bool(moving.any()):
            R = R.clone()
            R[moving] = _det_fixed_procrustes(S[moving])
    return R


def arap_rotations(verts: torch.Tensor, rest_verts: torch.Tensor, nbrs: torch.Tensor, weights: torch.Tensor,
                   method: str = "newton") -> torch.Tensor:
    """[B,V,3,3] the local ARAP rotations R_i (no graph) for deformed ``verts`` [B,V,3] and ``rest_verts``."""
    with torch.no_grad():
        e_def = edge_vectors(verts.detach(), nbrs)                       # [B,V,D,3]
        e_rest = edge_vectors(rest_verts.detach(), nbrs).expand_as(e_def)
        S = torch.einsum("bvd,bvdi,bvdj->bvij", weights.expand(e_def.shape[:-1]), e_def, e_rest)
        init = None
        if method == "newton":   # each instance's global rotation: a rotated mesh starts at its optimum
            init = nearest_rotations(S.sum(1), method="svd")[:, None]
        return nearest_rotations(S, init, method)


def arap_energy(verts: torch.Tensor, rest_verts: torch.Tensor, faces: torch.Tensor, weights: str = "cot",
                method: str = "auto") -> torch.Tensor:
    """[B] ARAP energy of deformed ``verts`` [B,V,3] against ``rest_verts`` [V,3] or [B,V,3] (module docstring).

    ``weights``: ``"cot"`` (TTP's clamped cotangent weights of the rest mesh), ``"uniform"``, or the
    ``(neighbors, weights)`` of :func:`.laplacian.laplacian_weights` computed once for a fixed rest mesh.
    Differentiable in ``verts`` (and ``rest_verts``); zero for any rigid motion. ``method``: the
    module docstring (``"compiled"`` raises a ValueError where it cannot serve the call).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_mesh_batch("verts", verts, faces)
    if verts.dim() != 3:
        raise ValueError(f"verts must be [B,V,3], got {list(verts.shape)}")
    check_mesh_batch("rest_verts", rest_verts, faces)
    if rest_verts.shape[-2] != verts.shape[-2] or (rest_verts.dim() == 3 and rest_verts.shape[0] != verts.shape[0]):
        raise ValueError(f"rest_verts must be [{verts.shape[1]},3] or [{verts.shape[0]},{verts.shape[1]},3] "
                         f"like verts, got {list(rest_verts.shape)}")
    if rest_verts.dtype != verts.dtype:
        raise ValueError(f"rest_verts must have verts' dtype {verts.dtype}, got {rest_verts.dtype}")
    rest = rest_verts if rest_verts.dim() == 3 else rest_verts[None]
    if isinstance(weights, str):
        nbrs, w = laplacian_weights(rest.detach(), faces, weights)
    else:
        nbrs, w = weights
        if nbrs.shape[0] != verts.shape[1] or w.shape[-2:] != nbrs.shape:
            raise ValueError(f"weights must be (neighbors [{verts.shape[1]},D], weights [...,{verts.shape[1]},D]), "
                             f"got {list(nbrs.shape)} and {list(w.shape)}")
    can_compile = compiled_available(verts) and not w.requires_grad
    if method == "compiled" and not can_compile:
        raise ValueError("method='compiled' needs CPU tensors, numba installed and weights without gradient; "
                         f"got verts on {verts.device}, weights requiring grad: {w.requires_grad}")
    if method == "compiled" or (method == "auto" and can_compile):
        return compiled_arap_energy(verts, rest, nbrs, w)
    R = arap_rotations(verts, rest, nbrs, w, "newton" if method == "auto" else method)
    e_def = edge_vectors(verts, nbrs)
    e_rest = edge_vectors(rest, nbrs)
    resid = e_def - torch.einsum("bvij,bvdj->bvdi", R, e_rest.expand_as(e_def))
    return (w * (resid ** 2).sum(-1)).sum(-1).mean(-1)
