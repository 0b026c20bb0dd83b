"""The TTP cost, its parameter vector, and the closed-form deformation (ridge) solve.

::

    V = T + B c                               deformed template, T [N,3], basis B [M,N,3]
    u_hat = pi(V) = s (R V)[:2] + t           scaled orthographic (csmlab.geometry.camera)
    l(R, t, s, c) = sum_i v_i rho(|u_i - u_hat_i|^2) + exp(w) |c|^2

``u_i`` is the 2D point (NDC) regressed for template vertex i, ``v_i >= 0`` its
weight (visibility), ``rho`` the identity or a robust penalty (:mod:`.robust`)
and ``w`` the learnable log-regulariser.

Inside the solver points are stored channel-first ([B,2,N], [B,3,N]): projecting
is then one small ``[2,3] @ [3,N]`` matrix product per instance, which is several
times faster on a CPU than the ``[N,3] @ [3,2]`` layout of the public API.

**Moments.** For fixed point weights the quadratic cost depends on the points only
through a few weighted sums. Write ``v_i = [V_i; 1] = G_i c_hat`` with
``c_hat = [1; c]`` and ``G_i = [[T_i, B_i], [1, 0]]`` (4 x (M+1)), and
``A = [s R_xy, t]`` (2 x 4). Then::

    sum_i w_i |u_i - A v_i|^2 = S_uu - 2 tr(A L(c_hat)) + tr(A K(c_hat) A^T)
    K = sum_i w_i G_i (x) G_i   [4,M+1,4,M+1],   L = sum_i w_i G_i (x) u_i   [4,M+1,2],   S_uu = sum_i w_i |u_i|^2

:func:`moments` computes them once (one matrix product over the N points);
afterwards every cost, gradient and Hessian evaluation costs O((M+1)^2), not O(N).
That is what makes the batched L-BFGS and Newton steps cheap. The expansion
cancels large terms, so moments and moment costs are computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...geometry import axis_angle_to_matrix
from .robust import rho


def _desc(x) -> str:
    return f"{list(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


@dataclass
class Problem:
    """Validated inputs, channel-first: points [B,2,N], weights [B,N], template [3,N] or [B,3,N],
    basis [M,3,N] or [B,M,3,N], log_reg [B]. A template or basis shared by the batch stays unbatched."""

    points: torch.Tensor
    weights: torch.Tensor
    template: torch.Tensor
    basis: torch.Tensor
    log_reg: torch.Tensor

    @property
    def batch(self) -> int:
        return self.points.shape[0]

    @property
    def n_basis(self) -> int:
        return self.basis.shape[-3]

    def repeat(self, k: int) -> "Problem":
        """Each instance k times in a row (the hypotheses of one instance are adjacent)."""
        rep = lambda x, batched: x.repeat_interleave(k, dim=0) if batched else x  # noqa: E731
        return Problem(rep(self.points, True), rep(self.weights, True), rep(self.template, self.template.dim() == 3),
                       rep(self.basis, self.basis.dim() == 4), rep(self.log_reg, True))

    def detached(self) -> "Problem":
        return Problem(*(x.detach() for x in (self.points, self.weights, self.template, self.basis, self.log_reg)))

    def to(self, dtype: torch.dtype) -> "Problem":
        return Problem(*(x.to(dtype) for x in (self.points, self.weights, self.template, self.basis, self.log_reg)))

    def deformed(self, coeffs: torch.Tensor) -> torch.Tensor:
        """[B,3,N] V = T + B c."""
        if self.basis.dim() == 3:  # one basis for the whole batch: a single matmul
            M, _, N = self.basis.shape
            return self.template + (coeffs @ self.basis.reshape(M, 3 * N)).reshape(-1, 3, N)
        return self.template + torch.einsum("bm,bmkn->bkn", coeffs, self.basis)

    def points_nk(self) -> torch.Tensor:
        """[B,N,2] points in the public layout."""
        return self.points.transpose(1, 2)

    def verts_nk(self, coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """[B,N,3] deformed (or, without coeffs, template) vertices in the public layout."""
        V = self.template if coeffs is None else self.deformed(coeffs)
        return V.expand(self.batch, 3, V.shape[-1]).transpose(1, 2)


# gamma = 0.05 ~ sigma^2 / sigma_c^2 for 2 px of noise at 128 px (0.03 NDC) and coefficients spread ~0.15.
DEFAULT_LOG_REG = math.log(0.05)


def make_problem(points, weights, template, basis=None, log_reg=None, default_log_reg=DEFAULT_LOG_REG) -> Problem:
    """Check the public-layout inputs (points [B,N,2] NDC, weights [B,N], template [N,3] or [B,N,3],
    basis [M,N,3] or [B,M,N,3] or None, log_reg scalar or [B] or None) and build a :class:`Problem`."""
    if not (isinstance(points, torch.Tensor) and points.dim() == 3 and points.shape[-1] == 2
            and points.is_floating_point()):
        raise ValueError(f"points must be a float tensor [B,N,2] (NDC), got {_desc(points)}")
    B, N = points.shape[:2]
    dt, dev = points.dtype, points.device
    weights = torch.ones(B, N, dtype=dt, device=dev) if weights is None else weights
    if not (isinstance(weights, torch.Tensor) and weights.shape == (B, N)):
        raise ValueError(f"weights must be a tensor [B,N] = [{B},{N}], got {_desc(weights)}")
    if (weights < 0).any() or (weights.sum(1) <= 0).any():
        raise ValueError("weights must be >= 0 with at least one positive weight per instance")
    if not (isinstance(template, torch.Tensor) and template.dim() in (2, 3) and template.shape[-2:] == (N, 3)
            and (template.dim() == 2 or template.shape[0] == B)):
        raise ValueError(f"template must be [N,3] or [B,N,3] with B={B}, N={N}, got {_desc(template)}")
    if basis is None:
        basis = torch.zeros(0, N, 3, dtype=dt, device=dev)
    if not (isinstance(basis, torch.Tensor) and basis.dim() in (3, 4) and basis.shape[-2:] == (N, 3)
            and (basis.dim() == 3 or basis.shape[0] == B)):
        raise ValueError(f"basis must be [M,N,3] or [B,M,N,3] with B={B}, N={N}, got {_desc(basis)}")
    log_reg = torch.as_tensor(default_log_reg if log_reg is None else log_reg, dtype=dt, device=dev)
    if log_reg.dim() > 1 or (log_reg.dim() == 1 and log_reg.shape[0] not in (1, B)):
        raise ValueError(f"log_reg must be a scalar or [B] with B={B}, got {_desc(log_reg)}")
    return Problem(points.transpose(1, 2), weights.to(dt), template.to(dt).transpose(-1, -2),
                   basis.to(dt).transpose(-1, -2), log_reg.expand(B))


def project(verts: torch.Tensor, rotation, scale, trans) -> torch.Tensor:
    """[B,3,N] or [3,N] -> [B,2,N]: ``s (R V)[:2] + t``."""
    return torch.matmul(scale[:, None, None] * rotation[:, :2, :], verts) + trans[:, :, None]


def residual_norms_sq(problem: Problem, rotation, scale, trans, coeffs, verts=None) -> torch.Tensor:
    """[B,N] squared reprojection errors |u_i - u_hat_i|^2 (NDC^2); ``verts`` [B,3,N] if already deformed."""
    V = problem.deformed(coeffs) if verts is None else verts
    return ((problem.points - project(V, rotation, scale, trans)) ** 2).sum(1)


def cost(problem: Problem, rotation, scale, trans, coeffs, loss: str = "l2", robust_scale: float = 0.05,
         verts: torch.Tensor | None = None) -> torch.Tensor:
    """[B] the TTP cost l(R, t, s, c) of each instance."""
    e = residual_norms_sq(problem, rotation, scale, trans, coeffs, verts)
    return (problem.weights * rho(e, loss, robust_scale)).sum(-1) + problem.log_reg.exp() * (coeffs ** 2).sum(-1)


def unpack(theta: torch.Tensor, anchor: torch.Tensor):
    """theta [B,6+M] = (axis-angle about the anchor rotation, t, log s, c) -> (R, s, t, c).

    The rotation is a small axis-angle *about* the anchor, re-centred after every
    stage, so the parameterisation never comes near the pi singularity of axis-angle.
    """
    return axis_angle_to_matrix(theta[:, :3]) @ anchor, theta[:, 5].exp(), theta[:, 3:5], theta[:, 6:]


def pack(scale, trans, coeffs) -> torch.Tensor:
    """(s, t, c) -> theta with zero axis-angle (the rotation lives in the anchor)."""
    zeros = torch.zeros_like(trans[:, :1]).expand(-1, 3)
    return torch.cat([zeros, trans, scale.log()[:, None], coeffs], dim=1)


def theta_cost(problem: Problem, anchor: torch.Tensor, loss: str, robust_scale: float):
    """The cost as a function of theta [B,6+M] only (for L-BFGS, Newton and the implicit backward)."""
    return lambda theta: cost(problem, *unpack(theta, anchor), loss, robust_scale)


def ridge_coeffs(problem: Problem, rotation, scale, trans, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Closed-form deformation for a fixed camera: ``c = (exp(w) I + Gamma Gamma^T)^-1 Gamma alpha``.

    Row m of Gamma is the (weighted) image motion ``s (R B_m)[:2]`` of basis shape m,
    alpha the (weighted) residual ``u - s (R T)[:2] - t`` of the undeformed template;
    ``weights`` [B,N] replace the visibility (IRLS weights for robust losses).
    """
    w = problem.weights if weights is None else weights
    sR = scale[:, None, None] * rotation[:, :2, :]                                   # [B,2,3]
    basis = problem.basis if problem.basis.dim() == 4 else problem.basis[None]
    gamma = torch.matmul(sR[:, None], basis)                                         # [B,M,2,N]
    alpha = problem.points - project(problem.template, rotation, scale, trans)      # [B,2,N]
    wg = gamma * w[:, None, None, :]
    GG = torch.einsum("bmkn,bpkn->bmp", wg, gamma)
    Ga = torch.einsum("bmkn,bkn->bm", wg, alpha)
    eye = torch.eye(GG.shape[-1], dtype=GG.dtype, device=GG.device)
    return torch.linalg.solve(problem.log_reg.exp()[:, None, None] * eye + GG, Ga[..., None])[..., 0]


def front_score(problem: Problem, rotation: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """[B] how far towards the viewer (camera +z) the weighted points sit, relative to all points.

    Visible points are the near side of an object. The mirror solution flips depth,
    so it puts them behind: its score has the opposite sign.
    """
    z = torch.matmul(rotation[:, 2:3, :], problem.deformed(coeffs))[:, 0]           # [B,N]
    w = problem.weights
    return (w * z).sum(1) / w.sum(1) - z.mean(1)


@dataclass
class Moments:
    """Weighted sums of the points (see the module docstring), float64: K [B,4,P,4,P], L [B,4,P,2], S_uu [B]."""

    K: torch.Tensor
    L: torch.Tensor
    S_uu: torch.Tensor
    log_reg: torch.Tensor   # [B]


def moments(problem: Problem, weights: torch.Tensor | None = None) -> Moments:
    """The quadratic cost's sufficient statistics for point weights [B,N] (default: the visibility)."""
    w = (problem.weights if weights is None else weights).double()
    T, Bs = problem.template.double(), problem.basis.double()
    M, N = problem.n_basis, problem.points.shape[-1]
    lead = T.shape[:-2] if T.dim() == 3 else Bs.shape[:-3]
    T = T.expand(*lead, 3, N)
    Bs = Bs.expand(*lead, M, 3, N)
    ones = torch.ones(*lead, 1, N, dtype=torch.float64, device=T.device)
    first = torch.cat([T, ones], dim=-2)                                            # [...,4,N]  p = 0
    rest = torch.cat([Bs, torch.zeros_like(Bs[..., :1, :])], dim=-2)                # [...,M,4,N]
    G = torch.cat([first.unsqueeze(-3), rest], dim=-3).transpose(-3, -2)           # [...,4,P,N]
    P = M + 1
    Gf = G.reshape(*lead, 4 * P, N)
    pts = problem.points.double()
    B = w.shape[0]
    if Gf.dim() == 2:
        # One template for the batch: K = w @ (G_i (x) G_i) as one [B,N] x [N,(4P)^2] product, and
        # L from the weighted points -- no [B,4P,N] intermediate.
        outer = (Gf[:, None, :] * Gf[None, :, :]).reshape(-1, N)                  # [(4P)^2, N]
        K = (w @ outer.T).reshape(B, 4 * P, 4 * P)
        L = ((pts * w[:, None, :]).reshape(B * 2, N) @ Gf.T).reshape(B, 2, 4 * P).transpose(1, 2)
    else:
        Gw = Gf * w[:, None, :]                                                    # [B,4P,N]
        K = Gw @ Gf.transpose(-1, -2)
        L = Gw @ pts.transpose(1, 2)
    S_uu = (w * (pts ** 2).sum(1)).sum(1)
    return Moments(K.reshape(B, 4, P, 4, P), L.reshape(B, 4, P, 2), S_uu, problem.log_reg.double())


def _camera_matrix(rotation, scale, trans) -> torch.Tensor:
    """A = [s R_xy, t]: [B,2,4]."""
    return torch.cat([scale[:, None, None] * rotation[:, :2, :], trans[:, :, None]], dim=2)


def shape_moments(mom: Moments, coeffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of one deformed shape: (sum w v v^T [B,4,4], sum w v u^T [B,4,2]) with v = [T + B c; 1]."""
    c_hat = torch.cat([coeffs.new_ones(coeffs.shape[0], 1), coeffs], dim=1)
    Kq = (mom.K @ c_hat[:, None, None, :, None])[..., 0]                           # [B,4,P,4]
    Kc = (Kq * c_hat[:, None, :, None]).sum(2)
    Lc = (mom.L * c_hat[:, None, :, None]).sum(2)
    return Kc, Lc


def camera_moment_cost(Kc: torch.Tensor, Lc: torch.Tensor, S_uu: torch.Tensor, rotation, scale, trans) -> torch.Tensor:
    """[B] data term for a fixed shape: ``S_uu - 2 tr(A Lc) + tr(A Kc A^T)`` -- a few 2x4 products."""
    A = _camera_matrix(rotation, scale, trans)
    return S_uu - 2 * (A * Lc.transpose(1, 2)).sum((1, 2)) + ((A @ Kc) * A).sum((1, 2))


def moment_cost(mom: Moments, rotation, scale, trans, coeffs) -> torch.Tensor:
    """[B] the quadratic TTP cost from the moments (equal to :func:`cost` with ``loss="l2"``)."""
    Kc, Lc = shape_moments(mom, coeffs)
    data = camera_moment_cost(Kc, Lc, mom.S_uu, rotation, scale, trans)
    return data + mom.log_reg.exp() * (coeffs ** 2).sum(-1)


def moment_theta_cost(mom: Moments, anchor: torch.Tensor):
    """:func:`moment_cost` as a function of theta [B,6+M] (the parameter vector of :func:`unpack`)."""
    return lambda theta: moment_cost(mom, *unpack(theta, anchor))


def moment_ridge(mom: Moments, rotation, scale, trans) -> torch.Tensor:
    """The ridge solve from the moments: ``c = (exp(w) I + Gamma Gamma^T)^-1 Gamma alpha``.

    With ``Q = sum_i w_i (A G_i)^T (A G_i)`` and ``l = sum_i w_i (A G_i)^T u_i``, the
    blocks are ``Gamma Gamma^T = Q[1:,1:]`` and ``Gamma alpha = l[1:] - Q[1:,0]``.
    """
    A = _camera_matrix(rotation, scale, trans)
    Q = torch.einsum("bka,bkc,bapcq->bpq", A, A, mom.K)
    lin = torch.einsum("bka,bapk->bp", A, mom.L)
    GG, Ga = Q[:, 1:, 1:], lin[:, 1:] - Q[:, 1:, 0]
    eye = torch.eye(GG.shape[-1], dtype=GG.dtype, device=GG.device)
    return torch.linalg.solve(mom.log_reg.exp()[:, None, None] * eye + GG, Ga[..., None])[..., 0]
