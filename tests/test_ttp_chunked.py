"""The batched TTP solve in chunks: the same answers and implicit gradients as one block; its LM pieces."""

import math

import pytest
import torch

from csmlab.geometry import fit_scale_translation, procrustes_init, rotation_angle_deg
from csmlab.methods import ttp
from csmlab.methods.ttp.cost import make_problem, moment_cost, moments, unpack
from csmlab.methods.ttp.levenberg import _normal_equations, _Terms, _Work, levenberg_marquardt
from csmlab.methods.ttp.moment_start import moment_procrustes, moment_scale_translation


@pytest.fixture(scope="module")
def birds():
    """10 synthetic birds at 128 px, joints at rest, 2 px noise: chunks of 4 give blocks of 4, 4 and 2."""
    return ttp.corrupt(ttp.bird_problem(10, seed=0, resolution=128, zero_articulation=True), 2.0, seed=1)


def args(problem):
    return ttp.points_ndc(problem), problem["visibility"], problem["template"], problem["basis"]


def assert_same(a, b, tol=1e-9):
    assert rotation_angle_deg(a.rotation, b.rotation).max() < 1e-5   # acos round-off of equal rotations
    assert (a.rotation - b.rotation).abs().max() < tol
    for name in ("scale", "trans", "coeffs", "cost", "point_weights"):
        assert (getattr(a, name) - getattr(b, name)).abs().max() < tol, name
    assert [h[0] for h in a.history] == [h[0] for h in b.history]
    assert all(abs(x[1] - y[1]) < tol for x, y in zip(a.history, b.history))


@pytest.mark.parametrize("kw", [{}, {"init": "procrustes+mirror", "select": "visible_front"},
                                {"init": "random"}, {"loss": "huber"}])
def test_chunked_solve_equals_one_block(birds, kw):
    cfg = ttp.SolverConfig(log_reg=math.log(0.05), **kw)
    whole = ttp.solve(*args(birds), cfg=cfg, chunk=None)
    chunked = ttp.solve(*args(birds), cfg=cfg, chunk=4)
    assert_same(chunked, whole)
    if whole.chosen is not None:
        assert torch.equal(chunked.chosen, whole.chosen)
        assert (chunked.hypotheses["cost"] - whole.hypotheses["cost"]).abs().max() < 1e-9


def test_chunked_implicit_gradients_equal_one_block(birds):
    problem = ttp.subset(birds, slice(0, 5))
    u0, vis, T, B = args(problem)
    cfg = ttp.SolverConfig(log_reg=math.log(0.05))
    weights = [torch.randn(s, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
               for s in ((5, 3, 3), (5,), (5, 2), (5, 6))]
    grads, outs = [], []
    for chunk in (None, 2):
        u = u0.clone().requires_grad_(True)
        log_reg = torch.tensor(math.log(0.05), dtype=torch.float64, requires_grad=True)
        out = ttp.solve_implicit(u, vis, T, B, log_reg, cfg, chunk=chunk)
        sum((o * w).sum() for o, w in zip(out, weights)).backward()
        grads.append((u.grad, log_reg.grad))
        outs.append(out)
    for a, b in zip(*outs):
        assert (a - b).abs().max() < 1e-9
    assert (grads[0][0] - grads[1][0]).abs().max() < 1e-7 * grads[0][0].abs().max()
    assert abs(grads[0][1] - grads[1][1]) < 1e-7 * abs(grads[0][1])


def test_chunked_unrolled_solve_equals_one_block(birds):
    problem = ttp.subset(birds, slice(0, 3))
    cfg = ttp.SolverConfig(log_reg=math.log(0.05), alternations=1, lbfgs_iters=5, polish_steps=2)
    u0, vis, T, B = args(problem)
    rots, grads = [], []
    for chunk in (None, 2):
        u = u0.clone().requires_grad_(True)
        rot = ttp.solve(u, vis, T, B, cfg=cfg, differentiable=True, chunk=chunk).rotation
        rot[:, :, 0].sum().backward()
        rots.append(rot.detach())
        grads.append(u.grad)
    assert (rots[0] - rots[1]).abs().max() < 1e-9
    assert (grads[0] - grads[1]).abs().max() < 1e-7 * grads[0].abs().max()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_bad_chunk_is_a_value_error_naming_it(birds, bad):
    with pytest.raises(ValueError, match="chunk"):
        ttp.solve(*args(birds), chunk=bad)
    with pytest.raises(ValueError, match="chunk"):
        ttp.solve_implicit(*args(birds), chunk=bad)


def test_moment_start_equals_the_per_point_fits(birds):
    prob = make_problem(*args(birds)).to(torch.float64)
    mom = moments(prob)
    X, u = prob.verts_nk(), prob.points_nk()
    R, _, _ = procrustes_init(X, u, prob.weights)
    assert (moment_procrustes(mom) - R).abs().max() < 1e-9
    s, t = fit_scale_translation(X, u, R, prob.weights)
    s2, t2 = moment_scale_translation(mom, R)
    assert (s - s2).abs().max() < 1e-10 and (t - t2).abs().max() < 1e-10


def test_normal_equations_are_gauss_newton_of_the_residuals(birds):
    """J^T W J and J^T W r from the moments equal those of the explicit per-point Jacobian."""
    prob = make_problem(*args(ttp.subset(birds, slice(0, 3)))).to(torch.float64)
    mom = moments(prob)
    g = torch.Generator().manual_seed(1)
    R = procrustes_init(prob.verts_nk(), prob.points_nk(), prob.weights)[0]
    s = torch.full((3,), 1.1, dtype=torch.float64)
    t = 0.05 * torch.randn(3, 2, generator=g, dtype=torch.float64)
    c = 0.3 * torch.randn(3, 6, generator=g, dtype=torch.float64)
    work = _Work(mom)
    JtJ, rhs = _normal_equations(work, R, s, c, _Terms(work, R, s, t, c), joint=True)
    gamma = math.exp(ttp.SolverConfig().log_reg)
    for b in range(3):
        w = prob.weights[b].sqrt()

        def resid(theta, b=b, w=w):  # sqrt(w) (u - u_hat) and the ridge, rotation exp([theta_0:3]x) R
            x, y, z = theta[:3]
            zero = torch.zeros((), dtype=theta.dtype)
            skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero]).reshape(3, 3)
            Rb = torch.linalg.matrix_exp(skew) @ R[b]
            V = prob.template + (theta[6:] @ prob.basis.reshape(6, -1)).reshape(3, -1)
            u_hat = (s[b] * theta[5].exp()) * (Rb[:2] @ V) + (t[b] + theta[3:5])[:, None]
            return torch.cat([(w * (prob.points[b] - u_hat)).reshape(-1), math.sqrt(gamma) * theta[6:]])

        x0 = torch.cat([torch.zeros(6, dtype=torch.float64), c[b]])
        J = -torch.autograd.functional.jacobian(resid, x0)
        r = resid(x0)
        assert (JtJ[b] - J.T @ J).abs().max() < 1e-9 * (J.T @ J).abs().max()
        assert (rhs[b] - J.T @ r).abs().max() < 1e-9 * (J.T @ r).abs().max()


def test_levenberg_reaches_a_stationary_point(birds):
    prob = make_problem(*args(birds)).to(torch.float64)
    mom = moments(prob)
    R = moment_procrustes(mom)
    s, t = moment_scale_translation(mom, R)
    c = torch.zeros(10, 6, dtype=torch.float64)
    R, s, t, c, _ = levenberg_marquardt(mom, R, s, t, c, joint=False, max_iter=20, grad_tol=1e-6)
    R, s, t, c, iters = levenberg_marquardt(mom, R, s, t, c, joint=True, max_iter=60, grad_tol=1e-10)
    assert iters < 60
    theta = torch.cat([torch.zeros(10, 3, dtype=torch.float64), t, s.log()[:, None], c], 1).requires_grad_(True)
    f = moment_cost(mom, *unpack(theta, R))
    (grad,) = torch.autograd.grad(f.sum(), theta)
    assert grad.abs().max() < 1e-8
