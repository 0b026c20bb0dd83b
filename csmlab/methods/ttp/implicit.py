"""Differentiating through the TTP solver: the implicit function theorem, and unrolling for comparison.

At the solver's optimum theta* (rotation as an axis-angle about R*, t, log s, c)
the gradient of the cost l(theta, phi) vanishes, where phi are the inputs
(2D points, weights, log-regulariser w, template, basis)::

    d/dtheta l(theta*(phi), phi) = 0   =>   d theta*/d phi = -H^-1 d^2 l / (d theta d phi),   H = d^2 l / d theta^2

so for an upstream gradient g on theta* the backward pass is

    lambda = H^-1 g,      grad_phi = - d/dphi [ lambda . grad_theta l(theta*, phi) ]

-- one small [D,D] solve per instance (D = 6 + M) and one double-backward through
the cost, however many iterations the forward solve took, and no memory for them.
H is solved with damping and, where it is ill-conditioned or indefinite, the
eigenvalue floor of :func:`.newton.damped_solve` (documented there): directions
the data do not determine get a bounded, ridge-like sensitivity instead of an
infinite one. ``stats`` (a dict you pass in) receives how many instances used the
fallback and the largest condition number seen.

The theorem holds at a stationary point, which is why the solver ends with joint
Newton steps; with the quadratic loss and enough alternations the gradient at the
returned optimum is at round-off level.

Unrolled differentiation (``solve(..., differentiable=True)``) instead back-propagates
through every L-BFGS iteration and ridge solve: exact for the *truncated* solver,
approaching the implicit gradient only as the iterations converge, and with time
and memory that grow with the iterations.
"""

from __future__ import annotations

import math

import torch

from .cost import make_problem, pack, theta_cost, unpack
from .newton import damped_solve, grad_and_hessian
from .solver import CHUNK, SolverConfig, check_chunk, solve


class _ImplicitSolve(torch.autograd.Function):
    """forward: the solver (no graph); backward: the implicit function theorem at its optimum."""

    @staticmethod
    def forward(ctx, points, weights, log_reg, template, basis, cfg, stats, damping, max_cond, chunk):
        with torch.no_grad():
            res = solve(points, weights, template, basis, log_reg, cfg, chunk=chunk)
        ctx.save_for_backward(points, weights, log_reg, template, basis, res.rotation, res.scale, res.trans,
                              res.coeffs)
        ctx.cfg, ctx.stats, ctx.damping, ctx.max_cond = cfg, stats, damping, max_cond
        return res.rotation, res.scale, res.trans, res.coeffs

    @staticmethod
    def backward(ctx, g_rot, g_scale, g_trans, g_coeffs):
        points, weights, log_reg, template, basis, R, s, t, c = ctx.saved_tensors
        cfg = ctx.cfg
        free_c = cfg.fit_deformation and c.shape[1] > 0   # fixed coefficients are no unknowns
        upstream = [torch.zeros_like(x) if g is None else g
                    for g, x in zip((g_rot, g_scale, g_trans, g_coeffs), (R, s, t, c))]
        inputs = (points, weights, log_reg, template, basis)
        with torch.enable_grad():
            phi = [x.detach().requires_grad_(need) for x, need in zip(inputs, ctx.needs_input_grad[:5])]
            theta_star = pack(s, t, c).detach()
            n_free = theta_star.shape[1] if free_c else 6

            def full_theta(x):
                return torch.cat([x, theta_star[:, 6:]], 1) if not free_c else x

            # Upstream gradient with respect to theta (through R = exp(w) R*, s = exp(log s)).
            x = theta_star[:, :n_free].clone().requires_grad_(True)
            outs = unpack(full_theta(x), R)
            g_theta = torch.autograd.grad(outs, x, upstream, allow_unused=True)[0]
            g_theta = torch.zeros_like(x) if g_theta is None else g_theta

            frozen = make_problem(*(p.detach() for p in phi[:2]), phi[3].detach(), phi[4].detach(),
                                  phi[2].detach())
            fun_frozen = theta_cost(frozen, R, cfg.loss, cfg.robust_scale)
            _, _, H = grad_and_hessian(lambda y: fun_frozen(full_theta(y)), theta_star[:, :n_free])
            lam, fallback = damped_solve(H, g_theta.detach(), ctx.damping, ctx.max_cond)

            live = make_problem(phi[0], phi[1], phi[3], phi[4], phi[2])
            fun_live = theta_cost(live, R, cfg.loss, cfg.robust_scale)
            y = theta_star[:, :n_free].clone().requires_grad_(True)
            (grad_l,) = torch.autograd.grad(fun_live(full_theta(y)).sum(), y, create_graph=True)
            wanted = [p for p in phi if p.requires_grad]
            grads = torch.autograd.grad(-(grad_l * lam).sum(), wanted, allow_unused=True) if wanted else []
        if ctx.stats is not None:
            ev = torch.linalg.eigvalsh(H)
            cond = (ev.abs().amax(-1) / ev.abs().amin(-1).clamp_min(torch.finfo(ev.dtype).tiny))
            ctx.stats.update(fallback=int(fallback.sum()), batch=int(H.shape[0]),
                             max_condition=float(cond.max()), hessian_dim=int(H.shape[-1]))
        it = iter(grads)
        out = [next(it) if p.requires_grad else None for p in phi]
        return (*out, None, None, None, None, None)


def solve_implicit(points, weights, template, basis=None, log_reg=None, cfg: SolverConfig | None = None,
                   stats: dict | None = None, damping: float = 1e-10, max_cond: float = 1e10,
                   chunk: int | None = CHUNK):
    """(rotation [B,3,3], scale [B], trans [B,2], coeffs [B,M]) with gradients by the implicit function theorem.

    Arguments as :func:`.solver.solve` (``chunk`` splits the forward solve; the backward is
    one block). Gradients reach ``points``, ``weights``, ``log_reg``, ``template`` and
    ``basis`` (whichever require them).
    """
    cfg = cfg or SolverConfig()
    chunk = check_chunk(chunk)
    if not isinstance(points, torch.Tensor):
        raise ValueError(f"points must be a tensor [B,N,2], got {type(points).__name__}")
    B, N = points.shape[:2]
    dt = points.dtype
    weights = torch.ones(B, N, dtype=dt, device=points.device) if weights is None else weights
    if basis is None:
        basis = torch.zeros(0, N, 3, dtype=dt, device=points.device)
    log_reg = torch.as_tensor(cfg.log_reg if log_reg is None else log_reg, dtype=dt, device=points.device)
    if not math.isfinite(damping) or damping < 0:
        raise ValueError(f"damping must be a finite number >= 0, got {damping}")
    return _ImplicitSolve.apply(points, weights, log_reg, template, basis, cfg, stats, damping, max_cond, chunk)


def solve_unrolled(points, weights, template, basis=None, log_reg=None, cfg: SolverConfig | None = None):
    """The same outputs as :func:`solve_implicit`, differentiated by back-propagating through every iteration."""
    res = solve(points, weights, template, basis, log_reg, cfg, differentiable=True)
    return res.rotation, res.scale, res.trans, res.coeffs
