"""To The Point's solver: camera and deformation from 2D-3D correspondences, for a whole batch at once.

The cost is in :mod:`.cost`. For every instance of the batch, together:

1. initial rotation(s): Procrustes on the weak-perspective affine of the template
   (``init="procrustes"``), the identity, a random rotation, a grid of restarts, or
   Procrustes together with its mirror (``"procrustes+mirror"``); ``s, t`` in
   closed form for that rotation;
2. the fit on the moment form of the cost (:mod:`.cost`, O(M^2) per evaluation, not O(N)):

   - by default (``differentiable=False``), a batched Levenberg-Marquardt
     (:func:`.levenberg.levenberg_marquardt`): first rotation, translation and log-scale
     with c fixed (at most ``lbfgs_iters`` iterations), then the joint step with the
     deformation (at most ``alternations * lbfgs_iters``), each instance with its own
     damping and convergence mask, until the gradient is below ``polish_grad_tol``:
     the result is a stationary point of l in every variable, which the implicit
     backward needs;
   - with ``differentiable=True`` (unrolled differentiation, which needs the graph of
     every step): ``alternations`` rounds of batched L-BFGS over (axis-angle,
     translation, log-scale) with c fixed and the closed-form ridge deformation
     ``c = (exp(w) I + Gamma Gamma^T)^-1 Gamma alpha`` (IRLS-weighted for robust losses),
     then
3. up to ``polish_steps`` joint damped Newton steps on all parameters (D = 6 + M is small,
   so exact Hessians are cheap) -- on the unrolled path, and for robust losses at the end,
   on the exact robust cost;
4. with several hypotheses per instance, ``select`` picks one: the lowest cost, or
   (``"visible_front"``) the lowest cost among those that put the visible points on
   the near side of the object (the mirror puts them behind).

Instances are independent, so :func:`solve` works through the batch in chunks of
``chunk`` instances (default :data:`CHUNK`): the same answers as one block, with the
working tensors of a chunk bounded in size, so that they stay in the CPU caches however
large the batch; a chunk too small pays the fixed cost of each tensor operation more
often (see :data:`CHUNK`). On the default path (quadratic loss, not
unrolled) the moments are computed first and everything after them -- the Procrustes
start, the closed-form ``s, t``, the costs -- comes from them, in O(M^2) per instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ...geometry import fit_scale_translation, flip_negative_scale, mirror_rotation, procrustes_init, random_rotation
from ...geometry.rotations import azel_to_matrix
from .cost import (
    DEFAULT_LOG_REG,
    Moments,
    Problem,
    camera_moment_cost,
    cost,
    front_score,
    make_problem,
    moment_cost,
    moment_ridge,
    moment_theta_cost,
    moments,
    pack,
    residual_norms_sq,
    shape_moments,
    theta_cost,
    unpack,
)
from .lbfgs import batched_lbfgs
from .levenberg import levenberg_marquardt
from .moment_start import moment_procrustes, moment_scale_translation
from .newton import newton_polish
from .robust import check_loss, irls_weight

# Instances per block of solve(), see the module docstring: large enough that the fixed cost of
# each small tensor operation is shared by many instances, small enough that a block's moments
# (two copies of K, 2 x 784 float64 per instance with M = 6, ~13 MB) stay in a CPU's L3 cache.
# `benchmarks/ttp_solver.py --chunk` compares block sizes.
CHUNK = 1024
INITS = ("procrustes", "identity", "random", "restarts", "procrustes+mirror")
SELECTS = ("cost", "visible_front")


@dataclass
class SolverConfig:
    """Solver settings. Residuals are in NDC: at 128 px one pixel is 1/64 = 0.0156 NDC."""

    init: str = "procrustes"          # one of INITS
    select: str = "cost"              # one of SELECTS, used when there are several hypotheses
    restarts: int = 8                 # hypotheses for init="restarts": azimuth grid x elevation +-30 deg
    loss: str = "l2"                  # "l2", "huber", "geman_mcclure"
    robust_scale: float = 0.05        # NDC (3.2 px at 128 px)
    robust_init_iters: int = 4        # IRLS re-weightings of the Procrustes init for robust losses
    log_reg: float = DEFAULT_LOG_REG  # w, used when solve() gets no log_reg: gamma = exp(w) = 0.05
    fit_deformation: bool = True
    alternations: int = 3
    lbfgs_iters: int = 20
    lbfgs_history: int = 8
    polish_steps: int = 10
    polish_grad_tol: float | None = None  # stop polishing below this gradient (float64 inside); None: 1e-10
    irls_iters: int = 6               # re-weighting rounds for robust losses
    seed: int = 0

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.select not in SELECTS:
            raise ValueError(f"select must be one of {SELECTS}, got {self.select!r}")
        check_loss(self.loss, self.robust_scale)
        for name in ("restarts", "alternations", "lbfgs_iters", "lbfgs_history", "irls_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.polish_steps < 0 or self.robust_init_iters < 0:
            raise ValueError("polish_steps and robust_init_iters must be >= 0")


@dataclass
class SolverResult:
    """Per instance: rotation [B,3,3], scale [B], trans [B,2] (NDC), coeffs [B,M], final cost [B]."""

    rotation: torch.Tensor
    scale: torch.Tensor
    trans: torch.Tensor
    coeffs: torch.Tensor
    cost: torch.Tensor
    history: list = field(default_factory=list)   # (stage, mean cost over the batch)
    chosen: torch.Tensor | None = None           # index of the selected hypothesis [B]
    hypotheses: dict | None = None               # every hypothesis' rotation [B,K,3,3] and cost [B,K]
    point_weights: torch.Tensor | None = None    # [B,N] final weights: visibility x IRLS weight


def initial_rotations(problem: Problem, cfg: SolverConfig, mom: Moments | None = None) -> torch.Tensor:
    """[B,K,3,3] starting rotations (K hypotheses per instance) for ``cfg.init``.

    ``mom``: the problem's moments for its own weights, if already computed (quadratic
    loss): the Procrustes start then comes from them (:func:`moment_procrustes`)."""
    B, dt, dev = problem.batch, problem.points.dtype, problem.points.device
    if cfg.init == "identity":
        return torch.eye(3, dtype=dt, device=dev).expand(B, 1, 3, 3)
    if cfg.init == "random":
        gen = torch.Generator().manual_seed(cfg.seed)
        return random_rotation(B, generator=gen, dtype=dt).to(dev)[:, None]
    if cfg.init == "restarts":
        k = cfg.restarts
        n_az = (k + 1) // 2  # an azimuth grid, each azimuth once above (+30 deg) and once below (-30 deg)
        az = (torch.arange(k) // 2).to(dt) * (2 * math.pi / n_az)
        el = torch.tensor([math.radians(30.0), math.radians(-30.0)], dtype=dt).repeat(n_az)[:k]
        return azel_to_matrix(az, el, torch.zeros_like(az)).to(dev).expand(B, k, 3, 3)
    R = moment_procrustes(mom).to(dt) if mom is not None and cfg.loss == "l2" else robust_procrustes(problem, cfg)
    if cfg.init == "procrustes+mirror":
        return torch.stack([R, mirror_rotation(R, problem.verts_nk(), problem.weights)], dim=1)
    return R[:, None]


def robust_procrustes(problem: Problem, cfg: SolverConfig) -> torch.Tensor:
    """Procrustes init on the template; for robust losses re-weighted (IRLS) by its own residuals."""
    X, u = problem.verts_nk(), problem.points_nk()
    R, s, t = procrustes_init(X, u, problem.weights)
    if cfg.loss == "l2":
        return R
    zeros = problem.points.new_zeros(problem.batch, problem.n_basis)
    for _ in range(cfg.robust_init_iters):
        e = residual_norms_sq(problem, R, s, t, zeros)
        # The template is not the deformed shape: a scale below the typical residual would
        # reject inliers, so the IRLS scale is at least twice the median residual.
        scale = torch.maximum(torch.full_like(e[:, :1], cfg.robust_scale), 2 * e.median(1, keepdim=True).values.sqrt())
        R, s, t = procrustes_init(X, u, problem.weights * irls_weight(e / scale ** 2, cfg.loss, 1.0))
    return R


def solve(points, weights, template, basis=None, log_reg=None, cfg: SolverConfig | None = None,
          differentiable: bool = False, chunk: int | None = CHUNK) -> SolverResult:
    """Fit (R, s, t, c) for every instance of a batch; see the module docstring.

    points [B,N,2] NDC, weights [B,N] >= 0 (None: all ones), template [N,3] or [B,N,3],
    basis [M,N,3] or [B,M,N,3] (None: no deformation), log_reg: scalar or [B] (None: cfg.log_reg).
    ``differentiable=True`` keeps the autograd graph through every iteration (unrolled
    differentiation); otherwise the result is detached -- use :func:`.implicit.solve_implicit`
    for gradients by the implicit function theorem. ``chunk``: instances solved together
    (a positive int; None: the whole batch in one block); the answers do not depend on it.
    """
    cfg = cfg or SolverConfig()
    chunk = check_chunk(chunk)
    problem = make_problem(points, weights, template, basis, log_reg, cfg.log_reg)
    if not differentiable:
        problem = problem.detached()
    # The thread count is the caller's (docs/design.md, section 5): the tensors are small
    # ([B,(M+1)^2] after the moments), so on a busy machine one torch thread is fastest
    # (a 64-bird solve: 1.6 s on one thread, 5-11 s on two of a shared 2-core machine).
    # Random starts are drawn for the whole batch, so that they do not depend on the chunks.
    R0 = initial_rotations(problem, cfg) if cfg.init == "random" else None
    B = problem.batch
    size = B if chunk is None else chunk
    parts = [_solve_block(_take(problem, slice(i, i + size)), cfg, differentiable,
                          None if R0 is None else R0[i:i + size]) for i in range(0, B, size)]
    return parts[0] if len(parts) == 1 else _concat(parts)


def check_chunk(chunk) -> int | None:
    """``chunk`` as a positive int or None; anything else is a ValueError naming it."""
    if chunk is None:
        return None
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (instances per block) or None, got {chunk!r}")
    return chunk


def _solve_block(problem: Problem, cfg: SolverConfig, differentiable: bool, R0) -> SolverResult:
    """:func:`solve` on one chunk; R0 [B,K,3,3] or None (computed here)."""
    # Quadratic loss, not unrolled: one pass over the points, then moments only.
    mom = moments(problem) if not differentiable and cfg.loss == "l2" else None
    if R0 is None:
        R0 = initial_rotations(problem, cfg, mom)
    B, K = R0.shape[:2]
    hyp = problem.repeat(K) if K > 1 else problem
    if mom is not None and K > 1:
        mom = Moments(*(x.repeat_interleave(K, dim=0) for x in (mom.K, mom.L, mom.S_uu, mom.log_reg)))
    result = refine(hyp, R0.reshape(B * K, 3, 3), cfg, differentiable, mom)
    return result if K == 1 else _select(hyp, result, B, K, cfg)


def _take(problem: Problem, sl: slice) -> Problem:
    """The instances ``sl`` of a problem (a template or basis shared by the batch stays shared)."""
    def cut(x, batched_dim):
        return x[sl] if x.dim() == batched_dim else x
    return Problem(problem.points[sl], problem.weights[sl], cut(problem.template, 3), cut(problem.basis, 4),
                   problem.log_reg[sl])


def _concat(parts: list) -> SolverResult:
    """One result from the results of consecutive chunks; the history is the batch mean of each stage."""
    sizes = [p.rotation.shape[0] for p in parts]
    history = [(stages[0][0], sum(n * h for n, (_, h) in zip(sizes, stages)) / sum(sizes))
               for stages in zip(*(p.history for p in parts))]
    cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    hypotheses = None if parts[0].hypotheses is None else {
        k: torch.cat([p.hypotheses[k] for p in parts]) for k in parts[0].hypotheses}
    return SolverResult(cat("rotation"), cat("scale"), cat("trans"), cat("coeffs"), cat("cost"), history,
                        None if parts[0].chosen is None else cat("chosen"), hypotheses, cat("point_weights"))


def irls_schedule(cfg: SolverConfig) -> list:
    """Robust scale of each re-weighting round: wide first, then ``robust_scale`` (graduated non-convexity).

    A robust penalty with its final, narrow scale would reject the inliers of a
    poor start as well; halving a wide scale lets the fit settle first. ``l2``
    needs no re-weighting: one round with no scale.
    """
    if cfg.loss == "l2":
        return [None]
    n = cfg.irls_iters
    return [cfg.robust_scale * 2.0 ** max(0, n - 3 - k) for k in range(n)]


def refine(problem: Problem, R: torch.Tensor, cfg: SolverConfig, differentiable: bool = False,
           mom: Moments | None = None) -> SolverResult:
    """Steps 2 and 3 of the module docstring, from the rotations R [B,3,3].

    Moments for the current point weights (:func:`.cost.moments`), then
    ``alternations`` x (L-BFGS camera step, ridge deformation step) and Newton
    polishing, all on the O(M^2) moment cost. Robust losses then re-weight the points
    (IRLS, :func:`irls_schedule`) for more rounds -- each starts next to its optimum,
    so Newton steps alone finish it -- and end with Newton steps on the exact robust
    cost. Computed in float64; returned in the input's dtype. ``mom``: the moments for the
    problem's own weights (quadratic loss only); ``s, t`` and the costs then come from them.
    """
    if mom is not None and cfg.loss != "l2":
        raise ValueError(f"refine takes precomputed moments only for loss='l2', got loss={cfg.loss!r}")
    out_dtype = problem.points.dtype
    problem = problem.to(torch.float64)
    R = R.to(torch.float64)
    if mom is None:
        s, t = fit_scale_translation(problem.verts_nk(), problem.points_nk(), R, problem.weights)
    else:
        s, t = moment_scale_translation(mom, R)
    R, s, t = flip_negative_scale(R, s, t)
    c = problem.points.new_zeros(problem.batch, problem.n_basis)
    loss = (cfg.loss, cfg.robust_scale)

    given = mom

    def full_cost(R, s, t, c):  # quadratic loss: the same number from the moments, in O(M^2)
        return cost(problem, R, s, t, c, *loss) if given is None else moment_cost(given, R, s, t, c)

    history = [("init", full_cost(R, s, t, c).mean().item())]
    weights = problem.weights
    schedule = irls_schedule(cfg)
    for rnd, scale in enumerate(schedule):
        tag = "" if scale is None else f" (IRLS {rnd + 1}, scale {scale:.3g})"
        if scale is not None:
            weights = problem.weights * irls_weight(residual_norms_sq(problem, R, s, t, c), cfg.loss, scale)
        if mom is None or scale is not None:
            mom = moments(problem, weights)
        if not differentiable:
            R, s, t, c = _levenberg_round(problem, mom, R, s, t, c, cfg, rnd == 0, tag, loss, history)
            continue
        # Later re-weighting rounds start next to their optimum: Newton steps alone finish them.
        for a in range(cfg.alternations if rnd == 0 else 0):
            Kc, Lc = shape_moments(mom, c)  # the shape is fixed during the camera step

            def camera_cost(x, R=R, Kc=Kc, Lc=Lc, S_uu=mom.S_uu):
                Rx, sx, tx, _ = unpack(x, R)
                return camera_moment_cost(Kc, Lc, S_uu, Rx, sx, tx)

            x, _ = batched_lbfgs(camera_cost, pack(s, t, c)[:, :6], cfg.lbfgs_iters, cfg.lbfgs_history,
                                 differentiable=differentiable)
            R, s, t, _ = unpack(x, R)
            history.append((f"camera {a + 1}{tag}", cost(problem, R, s, t, c, *loss).mean().item()))
            if cfg.fit_deformation and problem.n_basis > 0:
                c = moment_ridge(mom, R, s, t)
                history.append((f"deformation {a + 1}{tag}", cost(problem, R, s, t, c, *loss).mean().item()))
        # Intermediate rounds only need to move towards their optimum: two Newton steps.
        steps = cfg.polish_steps if rnd == len(schedule) - 1 else min(2, cfg.polish_steps)
        R, s, t, c = _polish(moment_theta_cost(mom, R), R, s, t, c, cfg, differentiable, steps)
        history.append((f"polish{tag}", cost(problem, R, s, t, c, *loss).mean().item()))
    if cfg.loss != "l2":  # the rounds solved re-weighted least squares; finish on the robust cost itself
        R, s, t, c = _polish(theta_cost(problem, R, *loss), R, s, t, c, cfg, differentiable, cfg.polish_steps)
        history.append(("polish (robust cost)", cost(problem, R, s, t, c, *loss).mean().item()))
    final = full_cost(R, s, t, c)
    cast = lambda x: x.to(out_dtype)  # noqa: E731
    return SolverResult(cast(R), cast(s), cast(t), cast(c), cast(final), history, point_weights=cast(weights))


def _levenberg_round(problem, mom, R, s, t, c, cfg: SolverConfig, first: bool, tag: str, loss, history):
    """One round of step 2 on the non-differentiable path: camera first (first round only), then joint."""
    tol = 1e-10 if cfg.polish_grad_tol is None else cfg.polish_grad_tol
    joint = cfg.fit_deformation and problem.n_basis > 0

    def stage_cost(R, s, t, c):
        # l2: the moment cost is the same number in O(M^2), not O(N); robust: the robust cost itself
        if cfg.loss == "l2":
            return moment_cost(mom, R, s, t, c).mean().item()
        return cost(problem, R, s, t, c, *loss).mean().item()

    if first or not joint:
        # Before a joint step the camera only needs to come near its optimum.
        R, s, t, c, _ = levenberg_marquardt(mom, R, s, t, c, joint=False, max_iter=cfg.lbfgs_iters,
                                            grad_tol=max(tol, 1e-6) if joint else tol)
        history.append((f"camera{tag}", stage_cost(R, s, t, c)))
    if joint:
        R, s, t, c, _ = levenberg_marquardt(mom, R, s, t, c, joint=True, max_iter=cfg.alternations * cfg.lbfgs_iters,
                                            grad_tol=tol)
        history.append((f"joint{tag}", stage_cost(R, s, t, c)))
    return R, s, t, c


def _polish(fun, R, s, t, c, cfg: SolverConfig, differentiable: bool, steps: int):
    """Up to ``steps`` joint Newton steps on theta (the camera only when the deformation is not fitted)."""
    if steps == 0:
        return R, s, t, c
    tol = 1e-10 if cfg.polish_grad_tol is None else cfg.polish_grad_tol
    theta = pack(s, t, c)
    if cfg.fit_deformation or c.shape[1] == 0:
        theta = newton_polish(fun, theta, steps, differentiable=differentiable, grad_tol=tol)
    else:
        fixed = theta[:, 6:]
        cam = newton_polish(lambda x: fun(torch.cat([x, fixed], 1)), theta[:, :6], steps,
                            differentiable=differentiable, grad_tol=tol)
        theta = torch.cat([cam, fixed], 1)
    return unpack(theta, R)


def _select(hyp: Problem, result: SolverResult, B: int, K: int, cfg: SolverConfig) -> SolverResult:
    score = result.cost.reshape(B, K)
    if cfg.select == "visible_front":
        front = front_score(hyp, result.rotation, result.coeffs).reshape(B, K)
        # Hypotheses with the visible points behind count only if no hypothesis has them in front.
        score = torch.where(front > 0, score, score + score.abs().amax(1, keepdim=True) + 1)
    chosen = score.argmin(1)
    idx = torch.arange(B, device=chosen.device) * K + chosen
    hypotheses = {"rotation": result.rotation.reshape(B, K, 3, 3), "cost": result.cost.reshape(B, K)}
    return SolverResult(result.rotation[idx], result.scale[idx], result.trans[idx], result.coeffs[idx],
                        result.cost[idx], result.history, chosen, hypotheses, result.point_weights[idx])
