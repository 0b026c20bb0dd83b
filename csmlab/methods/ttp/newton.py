"""Batched Hessians, a damped symmetric solve with a documented fallback, and Newton polishing.

The TTP cost of each instance depends only on that instance's parameters, so
the Hessian of every instance comes from D backward passes of the *summed*
gradient (one per parameter coordinate), whatever the batch size. D is small
(3 rotation + 2 translation + 1 log-scale + M coefficients), so explicit
[B,D,D] matrices are cheap, and solves use a per-instance eigendecomposition.

Damped solve (:func:`damped_solve`), used by the implicit backward and by Newton steps:

- normally ``x = (H + delta I)^-1 g`` with ``delta = damping * mean |diag H|``;
- **fallback** when an instance's Hessian is ill-conditioned or indefinite --
  its smallest eigenvalue is below ``max(delta, mean|diag H| / max_cond)`` --
  every eigenvalue is replaced by ``max(|lambda|, floor)`` with that floor. Near-null
  directions (a deformation mode that moves only hidden vertices, the out-of-plane
  rotation of a planar point set) are not determined by the data: their exact
  sensitivity is unbounded, and the floor caps it, as a ridge of size ``floor``
  on those directions would. Negative curvature (a saddle of a robust cost) has
  its sign flipped, so Newton steps still descend. The flag tells which
  instances took the fallback.
"""

from __future__ import annotations

from typing import Callable

import torch


def grad_and_hessian(fun: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-instance cost [B], gradient [B,D] and Hessian [B,D,D] of a batch-separable ``fun`` at x [B,D].

    Separability (row b of the output depends only on row b of x) is what makes
    D backward passes enough; it is the caller's promise.
    """
    if not (isinstance(x, torch.Tensor) and x.dim() == 2 and x.is_floating_point()):
        raise ValueError(f"x must be a float tensor [B,D], got "
                         f"{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        f = fun(x)
        (g,) = torch.autograd.grad(f.sum(), x, create_graph=True)
        cols = []
        for k in range(x.shape[1]):
            (col,) = torch.autograd.grad(g[:, k].sum(), x, retain_graph=True, create_graph=create_graph,
                                         allow_unused=True)
            cols.append(torch.zeros_like(x) if col is None else col)
    H = torch.stack(cols, dim=-1)
    H = 0.5 * (H + H.transpose(1, 2))  # exact symmetry; autograd's columns differ only by rounding
    if not create_graph:
        f, g, H = f.detach(), g.detach(), H.detach()
    return f, g, H


def damped_solve(H: torch.Tensor, g: torch.Tensor, damping: float = 1e-10,
                 max_cond: float = 1e10) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``H x = g`` per instance with damping; return (x [B,D], fallback flag [B]).

    See the module docstring for the damping and the fallback rule.
    """
    if not (isinstance(H, torch.Tensor) and H.dim() == 3 and H.shape[1] == H.shape[2]):
        raise ValueError(f"H must be a [B,D,D] tensor, got {list(H.shape) if isinstance(H, torch.Tensor) else H}")
    if g.shape != H.shape[:2]:
        raise ValueError(f"g must be [B,D] = {list(H.shape[:2])}, got {list(g.shape)}")
    if damping < 0 or max_cond <= 1:
        raise ValueError(f"need damping >= 0 and max_cond > 1, got {damping}, {max_cond}")
    evals, Q = torch.linalg.eigh(H)
    level = H.diagonal(dim1=1, dim2=2).abs().mean(-1).clamp_min(torch.finfo(H.dtype).tiny)
    delta = damping * level
    floor = torch.maximum(delta, level / max_cond)
    fallback = evals.amin(-1) < floor
    damped = evals + delta[:, None]
    floored = torch.maximum(evals.abs(), floor[:, None])
    lam = torch.where(fallback[:, None], floored, damped)
    x = Q @ ((Q.transpose(1, 2) @ g[..., None])[..., 0] / lam)[..., None]
    return x[..., 0], fallback


def newton_polish(fun: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int = 3,
                  damping: float = 1e-10, max_cond: float = 1e10, differentiable: bool = False,
                  max_halvings: int = 8, grad_tol: float = 0.0) -> torch.Tensor:
    """Up to ``steps`` damped Newton steps per instance with a cost-decrease safeguard (step halving,
    else no move); stops early once every gradient entry is below ``grad_tol`` (not when unrolling).

    Used after the alternation so that the returned optimum is stationary in *all*
    parameters jointly (block alternation alone converges slowly when rotation and
    deformation are coupled, and leaves a cross gradient), which the implicit-function
    backward assumes.
    """
    for _ in range(steps):
        f, g, H = grad_and_hessian(fun, x, create_graph=differentiable)
        if not differentiable and g.abs().amax() < grad_tol:
            break
        step, _ = damped_solve(H.detach(), g.detach(), damping, max_cond)
        if differentiable:  # keep the dependence of the step on the inputs for unrolling
            step = _solve_keep_graph(H, g, step)
        t = torch.ones_like(f)
        accepted = torch.zeros_like(f, dtype=torch.bool)
        # Near the optimum a Newton step lowers the cost by about g^T H^-1 g, far below the
        # cost's round-off while the gradient is still ~1e-8: a cost test alone would stall
        # there, so steps within a tiny allowance are accepted and the gradient keeps falling.
        allowance = 1e-12 * (1 + f.detach().abs())
        with torch.no_grad():
            for _ in range(max_halvings):
                trial = fun((x - t[:, None] * step).detach())
                ok = (trial <= f.detach() + allowance) & ~accepted
                accepted = accepted | ok
                if accepted.all():
                    break
                t = torch.where(accepted, t, t / 2)
        t = torch.where(accepted, t, torch.zeros_like(t))
        x = x - t[:, None] * step
        if not differentiable:
            x = x.detach()
    return x


def _solve_keep_graph(H: torch.Tensor, g: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The same step as :func:`damped_solve` in value, differentiable through H and g (plain solve)."""
    eye = torch.eye(H.shape[1], dtype=H.dtype, device=H.device)
    level = H.detach().diagonal(dim1=1, dim2=2).abs().mean(-1)
    solved = torch.linalg.solve(H + 1e-10 * level[:, None, None] * eye, g[..., None])[..., 0]
    return solved + (step - solved).detach()
