"""Batched damped Gauss-Newton (Levenberg-Marquardt) on the moment form of the TTP cost.

For fixed point weights the cost ``sum_i w_i |u_i - A G_i c_hat|^2 + gamma |c|^2``
(see :mod:`.cost`: ``A = [s R_xy, t]``, ``c_hat = [1; c]``, ``G_i`` [4, P], P = M + 1)
has residuals whose derivative with respect to every parameter is *linear* in ``G_i``:
each Jacobian column is ``N_k G_i d_k`` for a 2 x 4 matrix ``N_k`` and a P-vector ``d_k``:

==============================  ===========================  ==================
parameter                       N_k                          d_k
==============================  ===========================  ==================
axis-angle w_k about R          [s ([e_k]x R)_xy, 0]         c_hat
translation t_a                 [0, e_a]                     c_hat
log-scale                       [s R_xy, 0]                  c_hat
coefficient c_m                 A                            e_(m+1)
==============================  ===========================  ==================

so every Gauss-Newton term is a contraction of the moments ``K`` [4,P,4,P] and ``L`` [4,P,2]
with these small factors, whatever N. With ``Kr = K . c_hat`` (K contracted on its last
index, [4,P,4]), ``Kc = c_hat . Kr`` [4,4] and ``Lc = c_hat . L`` [4,2] (the moments of the
current shape):

- cost: ``S_uu + <A, A Kc - 2 Lc^T>``; residual moment ``E = L - Kr A^T`` [4,P,2];
- camera block ``<N_k Kc, N_l>``, camera gradient ``<N_k, Lc^T - A Kc>``;
- camera x coefficient ``<N_k, A Kr[:, m+1, :]^T>`` (K is symmetric in (a,p) <-> (b,q));
- coefficient block ``<A^T A, K[:, m+1, :, n+1]>`` + gamma I (only the xyz rows of G_i move
  with c), gradient ``<A^T, E[:, m+1]>`` - gamma c.

The per-iteration work is a few dozen batched products of 2 x 4 to 4P x 4 matrices, so it
is bound by the number of tensor operations, not by flops: the loop is written to keep
that number small (the camera stage, with c fixed, reuses Kr, Kc and Lc throughout).
Every instance has its own damping ``mu`` (Marquardt's, scaled by diag(J^T W J)), its own
accept / reject decision and its own convergence mask; all instances advance in the same
tensor operations, converged ones are dropped from the working set once they are the
majority, and the loop stops when every instance has converged. At convergence the
Gauss-Newton step, hence the gradient, vanishes: the stationary point the implicit
backward (:mod:`.implicit`) assumes.
"""

from __future__ import annotations

import torch

from .cost import Moments

# Rows 0-1 of [e_k]x (k = 0, 1, 2) and of the identity: the linear parts of the rotation and
# log-scale columns N_k are s * _LIN[k] @ R.
_CROSS = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
                       [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]],
                       [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)  # [e_k]x
_LIN = torch.cat([_CROSS, torch.eye(3, dtype=torch.float64)[None]])[:, :2, :]            # [4,2,3]
_N_TRANS = torch.zeros(2, 2, 4, dtype=torch.float64)                                      # [0, e_a]
_N_TRANS[0, 0, 3] = _N_TRANS[1, 1, 3] = 1.0
_SKEW = torch.zeros(3, 9, dtype=torch.float64)   # axis-angle [B,3] @ _SKEW -> [w]x flattened
for _k, _i, _j in ((0, 2, 1), (1, 0, 2), (2, 1, 0)):
    _SKEW[_k, 3 * _i + _j], _SKEW[_k, 3 * _j + _i] = 1.0, -1.0

COMPACT_BELOW = 0.5   # drop converged instances from the working set once fewer than this share is active


def _rodrigues(w: torch.Tensor) -> torch.Tensor:
    """[B,3] -> [B,3,3], the formula of :func:`csmlab.geometry.axis_angle_to_matrix` in fewer operations."""
    theta2 = (w * w).sum(-1)[:, None, None]
    theta = theta2.clamp_min(1e-24).sqrt()
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, theta.sin() / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - theta.cos()) / theta2.clamp_min(1e-24))
    K = (w @ _SKEW.to(w)).view(-1, 3, 3)
    return torch.baddbmm(torch.eye(3, dtype=w.dtype, device=w.device).expand_as(K) + a * K, b * K, K)


class _Terms:
    """The moment terms of one state (R, s, t, c) of a working set; see the module docstring."""

    __slots__ = ("A", "c_hat", "Kr", "Kc", "Lc", "AK", "cost")

    def __init__(self, mom, R, s, t, c, shape=None):
        self.A = torch.cat([s[:, None, None] * R[:, :2, :], t[:, :, None]], dim=2)          # [B,2,4]
        if shape is None:
            self.shape(mom, c)
        else:
            self.c_hat, self.Kr, self.Kc, self.Lc = shape
        self.AK = self.A @ self.Kc                                                         # [B,2,4]
        data = mom.S_uu + (self.A * (self.AK - 2 * self.Lc.transpose(1, 2))).sum((1, 2))
        self.cost = data + mom.gamma * (c * c).sum(1)

    def shape(self, mom, c):
        B, P = c.shape[0], c.shape[1] + 1
        self.c_hat = torch.cat([c.new_ones(B, 1), c], 1)
        ch = self.c_hat[:, None, None, :]                                                  # [B,1,1,P]
        self.Kr = (self.c_hat[:, None, :] @ mom.Kq).view(B, 4 * P, 4)
        self.Kc = (ch @ self.Kr.view(B, 4, P, 4))[:, :, 0]                                 # [B,4,4]
        self.Lc = (ch @ mom.L)[:, :, 0]                                                    # [B,4,2]

    def pick(self, accept, new: "_Terms", joint: bool) -> None:
        """Per instance, the terms of ``new`` where the step was accepted."""
        names = self.__slots__ if joint else ("A", "AK", "cost")
        for name in names:
            setattr(self, name, _pick(accept, getattr(new, name), getattr(self, name)))


class _Work:
    """The moments of the working set, laid out for the products of :func:`levenberg_marquardt`."""

    def __init__(self, mom: Moments):
        B, _, P = mom.K.shape[:3]
        self.Kq = mom.K.permute(0, 4, 1, 2, 3).reshape(B, P, 16 * P)          # K[a,p,b,q] as [q, (a,p,b)]
        # The coefficient block needs K[a, p, b, q] for p, q >= 1 only, where a, b = 3 (the
        # homogeneous row of G_i) is zero: the [3, M, 3, M] block as [(a,b), (p,q)].
        self.Kab = mom.K[:, :3, 1:, :3, 1:].permute(0, 1, 3, 2, 4).reshape(B, 9, (P - 1) ** 2)
        self.L = mom.L                                                         # [B,4,P,2]
        self.S_uu, self.gamma = mom.S_uu, mom.log_reg.exp()

    def take(self, idx):
        out = object.__new__(_Work)
        out.Kq, out.Kab, out.L, out.S_uu, out.gamma = (x[idx] for x in (self.Kq, self.Kab, self.L, self.S_uu,
                                                                            self.gamma))
        return out


def _normal_equations(mom: _Work, R, s, c, T: _Terms, joint: bool):
    """(J^T W J + ridge [B,D,D], J^T W r - gamma c [B,D]): D = 6 camera parameters, + M when ``joint``."""
    B = R.shape[0]
    lin = torch.nn.functional.pad(s[:, None, None, None] * (_LIN.to(R) @ R[:, None]), (0, 1))  # [B,4,2,4]
    N = torch.cat([lin[:, :3], _N_TRANS.to(R).expand(B, 2, 2, 4), lin[:, 3:]], 1).view(B, 6, 8)
    G_A = T.Lc.transpose(1, 2) - T.AK                                          # sum_i w_i r_i v_i^T [B,2,4]
    rhs = (N @ G_A.reshape(B, 8, 1))[..., 0]                                  # [B,6]
    NK = (N.view(B, 12, 4) @ T.Kc).view(B, 6, 8)
    JtJ = NK @ N.transpose(1, 2)                                               # [B,6,6]
    if not joint:
        return JtJ, rhs
    P = c.shape[1] + 1
    At = T.A.transpose(1, 2)                                                   # [B,4,2]
    E = (mom.L.view(B, 4 * P, 2) - T.Kr @ At).view(B, 4, P, 2)                 # residual moment
    rhs_c = (E * At[:, :, None, :]).sum((1, 3))[:, 1:] - mom.gamma[:, None] * c
    AKr = (T.A @ T.Kr.view(B, 4, 4 * P)).view(B, 2, P, 4).transpose(2, 3).reshape(B, 8, P)
    cross = (N @ AKr)[:, :, 1:]                                                # [B,6,M]
    Rt = At[:, :3]                                                             # (s R_xy)^T [B,3,2]
    Q = ((Rt @ Rt.transpose(1, 2)).reshape(B, 1, 9) @ mom.Kab).view(B, P - 1, P - 1)
    Q = Q + torch.diag_embed(mom.gamma[:, None].expand(B, P - 1))
    JtJ = torch.cat([torch.cat([JtJ, cross], 2), torch.cat([cross.transpose(1, 2), Q], 2)], 1)
    return JtJ, torch.cat([rhs, rhs_c], 1)


def levenberg_marquardt(mom: Moments, R, s, t, c, joint: bool, max_iter: int, grad_tol: float = 1e-10,
                        mu0: float = 1e-3):
    """Minimise the moment cost from (R [B,3,3], s [B], t [B,2], c [B,M]); the camera only when
    ``joint`` is False (c fixed). Returns (R, s, t, c, iterations run). float64 in, float64 out.

    An instance stops when its largest gradient entry, relative to ``1 + cost``, is below
    ``grad_tol``, when an accepted step is below 1e-14, or when its damping has grown past 1e12
    (no decrease possible at round-off). Large batches are best split by the caller
    (:func:`.solver.solve`'s ``chunk``): the working tensors then stay in the CPU caches.
    """
    B, M = c.shape
    joint = joint and M > 0
    out = [R.clone(), s.clone(), t.clone(), c.clone()]
    work = _Work(mom)
    idx = torch.arange(B, device=R.device)
    mu = torch.full((B,), mu0, dtype=R.dtype, device=R.device)
    T = _Terms(work, R, s, t, c)
    active = torch.ones(B, dtype=torch.bool, device=R.device)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        JtJ, rhs = _normal_equations(work, R, s, c, T, joint)    # rhs: minus half the gradient of the cost
        active &= rhs.abs().amax(1) > grad_tol * (1 + T.cost.abs())
        n_active = int(active.sum())
        if n_active == 0:
            break
        if n_active < COMPACT_BELOW * active.shape[0]:
            # Converged instances never move again: write them out and keep only the active ones.
            for o, x in zip(out, (R, s, t, c)):
                o[idx] = x
            keep = active.nonzero()[:, 0]
            idx, work, mu, active, JtJ, rhs = idx[keep], work.take(keep), mu[keep], active[keep], JtJ[keep], rhs[keep]
            R, s, t, c = R[keep], s[keep], t[keep], c[keep]
            T = _Terms(work, R, s, t, c, shape=(T.c_hat[keep], T.Kr[keep], T.Kc[keep], T.Lc[keep]))
        diag = JtJ.diagonal(dim1=1, dim2=2)
        damped = JtJ.clone()        # JtJ + mu (diag(JtJ) + 1e-12 mean(diag) I), on the diagonal only
        damped.diagonal(dim1=1, dim2=2).add_(mu[:, None] * (diag + 1e-12 * diag.mean(1, keepdim=True)))
        step = torch.linalg.solve(damped, rhs[..., None])[..., 0]
        step = torch.where(active[:, None], step, torch.zeros_like(step))   # NaN-safe for singular, converged ones
        R_new = _rodrigues(step[:, :3]) @ R
        t_new, s_new = t + step[:, 3:5], s * step[:, 5].exp()
        c_new = c + step[:, 6:] if joint else c
        T_new = _Terms(work, R_new, s_new, t_new, c_new,
                       shape=None if joint else (T.c_hat, T.Kr, T.Kc, T.Lc))
        # Near the optimum the decrease falls below the moment cost's round-off (it cancels terms
        # of size S_uu): steps within a tiny allowance are accepted, so the gradient keeps falling.
        accept = active & (T_new.cost <= T.cost + 1e-12 * (1 + T.cost.abs()))
        mu = torch.where(accept, (mu / 3).clamp_min(1e-12), torch.where(active, mu * 4, mu))
        active &= (mu < 1e12) & ~(accept & (step.abs().amax(1) < 1e-14))
        R, s, t = _pick(accept, R_new, R), _pick(accept, s_new, s), _pick(accept, t_new, t)
        if joint:
            c = _pick(accept, c_new, c)
        T.pick(accept, T_new, joint)
    for o, x in zip(out, (R, s, t, c)):
        o[idx] = x
    return (*out, iterations)


def _pick(accept, new, old):
    """Per instance, ``new`` where the step was accepted, else ``old``."""
    return torch.where(accept.view((-1,) + (1,) * (new.dim() - 1)), new, old)
