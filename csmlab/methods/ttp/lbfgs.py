"""A batched L-BFGS: many small independent problems minimised at once, without a Python loop over them.

``torch.optim.LBFGS`` treats all parameters as one vector: for a batch of
independent problems it would share one line search and mix the curvature
pairs of different instances. Here every instance ``b`` has its own history
``(s_k, y_k)``, its own step length and its own stopping test; the work is
vectorised over the batch and the only Python loops run over iterations,
history slots and line-search trials.

``fun(x)`` maps ``x`` [B,D] to per-instance costs [B]. Because instances are
independent, one backward pass of ``fun(x).sum()`` gives every instance's gradient.

With ``differentiable=True`` the iterations keep the autograd graph (gradients
with ``create_graph``), which is what *unrolled* differentiation through the
solver needs. Otherwise each iterate is detached and memory stays flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class LBFGSInfo:
    """What happened: iterations run, per-instance convergence flags [B], final costs [B] and grad norms [B]."""

    iterations: int
    converged: torch.Tensor
    cost: torch.Tensor
    grad_norm: torch.Tensor


def _value_and_grad(fun: Callable, x: torch.Tensor, differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if not differentiable:
        x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        f = fun(x)
        if f.shape != x.shape[:1]:
            raise ValueError(f"fun must return per-instance costs of shape [{x.shape[0]}], got {list(f.shape)}")
        (g,) = torch.autograd.grad(f.sum(), x, create_graph=differentiable)
    if not differentiable:
        f, g = f.detach(), g.detach()
    return f, g


def batched_lbfgs(fun: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, max_iter: int = 50,
                  history: int = 8, grad_tol: float = 1e-9, cost_tol: float = 1e-12, max_linesearch: int = 20,
                  armijo: float = 1e-4, first_step: float = 0.1,
                  differentiable: bool = False) -> tuple[torch.Tensor, LBFGSInfo]:
    """Minimise ``fun`` independently for each row of ``x0`` [B,D]; return (x [B,D], info).

    Directions come from the L-BFGS two-loop recursion with ``history`` pairs per
    instance and the usual ``H0 = (s.y / y.y) I`` scaling; the first step has length
    ``first_step``. Steps are found by backtracking (halving) until the Armijo
    condition ``f(x + a d) <= f(x) + armijo * a * g.d`` holds. An instance stops when
    its largest gradient entry drops below ``grad_tol`` or its cost decreases by less
    than ``cost_tol * (1 + |f|)``; stopped instances no longer move.
    """
    if not (isinstance(x0, torch.Tensor) and x0.dim() == 2 and x0.is_floating_point()):
        raise ValueError(f"x0 must be a float tensor [B,D], got "
                         f"{list(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}")
    if max_iter < 0 or history < 1 or max_linesearch < 1:
        raise ValueError(f"need max_iter >= 0, history >= 1, max_linesearch >= 1; got {max_iter}, {history}, "
                         f"{max_linesearch}")
    B, D = x0.shape
    x = x0 if differentiable else x0.detach()
    f, g = _value_and_grad(fun, x, differentiable)
    S = x.new_zeros(B, history, D)
    Y = x.new_zeros(B, history, D)
    rho = x.new_zeros(B, history)          # 1 / (y.s); 0 marks an empty or rejected slot
    active = torch.ones(B, dtype=torch.bool, device=x.device)
    it = 0
    for it in range(1, max_iter + 1):
        d = _two_loop(g, S, Y, rho, it - 1, history)
        slope = (g * d).sum(-1)
        # A direction that does not descend (bad curvature) falls back to steepest descent.
        bad = slope >= 0
        d = torch.where(bad[:, None], -g, d)
        slope = torch.where(bad, -(g * g).sum(-1), slope)
        no_history = (rho.abs().sum(-1) == 0) | bad
        gnorm = g.norm(dim=-1).clamp_min(torch.finfo(g.dtype).tiny)
        step = torch.where(no_history, first_step / gnorm, torch.ones_like(gnorm))
        step, f_new = _backtrack(fun, x, f, d, slope, step, active, armijo, max_linesearch)
        x_new = x + (step * active)[:, None] * d
        if not differentiable:
            x_new = x_new.detach()
        f_new, g_new = _value_and_grad(fun, x_new, differentiable)
        s_vec, y_vec = (x_new - x).detach(), (g_new - g).detach()
        sy = (s_vec * y_vec).sum(-1)
        keep = active & (sy > 1e-12 * s_vec.norm(dim=-1) * y_vec.norm(dim=-1))
        slot = (it - 1) % history
        # Out-of-place writes keep the graph valid in differentiable mode.
        S = _set_slot(S, slot, torch.where(keep[:, None], s_vec, S[:, slot]))
        Y = _set_slot(Y, slot, torch.where(keep[:, None], y_vec, Y[:, slot]))
        rho = rho.clone()
        rho[:, slot] = torch.where(keep, 1.0 / sy.where(keep, torch.ones_like(sy)), rho[:, slot])
        decrease = (f - f_new).detach()
        done = (g_new.detach().abs().amax(-1) < grad_tol) | (decrease.abs() <= cost_tol * (1 + f.detach().abs()))
        x = torch.where(active[:, None], x_new, x)
        f = torch.where(active, f_new, f)
        g = torch.where(active[:, None], g_new, g)
        active = active & ~done
        if not active.any():
            break
    info = LBFGSInfo(it, ~active, f.detach(), g.detach().norm(dim=-1))
    return x, info


def _set_slot(buf: torch.Tensor, slot: int, value: torch.Tensor) -> torch.Tensor:
    out = buf.clone()
    out[:, slot] = value
    return out


def _two_loop(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, rho: torch.Tensor, n_done: int,
              history: int) -> torch.Tensor:
    """-H g by the two-loop recursion, vectorised over the batch; empty slots (rho = 0) are no-ops."""
    order = [(n_done - 1 - k) % history for k in range(min(n_done, history))]  # newest first
    q = g
    alphas = []
    for j in order:
        a = rho[:, j] * (S[:, j] * q).sum(-1)
        q = q - a[:, None] * Y[:, j]
        alphas.append(a)
    gamma = torch.ones_like(g[:, 0])
    found = torch.zeros_like(gamma, dtype=torch.bool)
    for j in order:  # H0 = (s.y / y.y) I from the newest valid pair
        yy = (Y[:, j] * Y[:, j]).sum(-1)
        valid = (rho[:, j] != 0) & ~found
        gamma = torch.where(valid, 1.0 / (rho[:, j] * yy).where(valid, torch.ones_like(yy)), gamma)
        found = found | valid
    r = gamma[:, None] * q
    for j, a in zip(reversed(order), reversed(alphas)):
        b = rho[:, j] * (Y[:, j] * r).sum(-1)
        r = r + (a - b)[:, None] * S[:, j]
    return -r


def _backtrack(fun, x, f, d, slope, step, active, armijo, max_linesearch):
    """Halve each instance's step until Armijo holds; instances that never satisfy it take step 0."""
    with torch.no_grad():
        accepted = ~active
        step = step.detach().clone()
        f_new = f.detach().clone()
        xd, dd, sl, f0 = x.detach(), d.detach(), slope.detach(), f.detach()
        roundoff = 16 * torch.finfo(f0.dtype).eps * f0.abs()
        for _ in range(max_linesearch):
            trial = fun(xd + step[:, None] * dd)
            # The roundoff allowance lets an instance that has reached the precision floor take
            # its (tiny) step and stop, instead of halving through every trial.
            ok = (trial <= f0 + armijo * step * sl + roundoff) & torch.isfinite(trial) & ~accepted
            f_new = torch.where(ok, trial, f_new)
            accepted = accepted | ok
            if accepted.all():
                break
            step = torch.where(accepted, step, step / 2)
        step = torch.where(accepted, step, torch.zeros_like(step))
    return step, f_new
