"""To The Point's solver on the synthetic birds at 128 px: acceptance figures, gradients, pieces, API."""

import math

import pytest
import torch

from csmlab.config import preset
from csmlab.geometry import rotation_angle_deg
from csmlab.methods import ttp
from csmlab.methods.ttp.cost import make_problem, moment_cost, moment_ridge, moments, ridge_coeffs
from csmlab.methods.ttp.lbfgs import batched_lbfgs
from csmlab.methods.ttp.newton import damped_solve
from csmlab.methods.ttp.robust import irls_weight, rho

RESOLUTION = 128


@pytest.fixture(scope="module")
def birds_rest():
    """24 synthetic birds, the dataset's cameras and deformations, joints at rest (the linear model holds)."""
    return ttp.bird_problem(24, seed=0, resolution=RESOLUTION, zero_articulation=True)


def run(problem, **kw):
    res = ttp.solve(ttp.points_ndc(problem), problem["visibility"], problem["template"], problem["basis"],
                    cfg=ttp.SolverConfig(**kw))
    return res, rotation_angle_deg(res.rotation, problem["camera"]["rotation"])


# ---------------------------------------------------------------- acceptance on the birds

def test_noiseless_recovers_camera_and_deformation(birds_rest):
    res, err = run(birds_rest, log_reg=math.log(1e-10))
    assert err.median() < 0.5 and err.max() < 0.5
    scale_err = (res.scale / birds_rest["camera"]["scale"] - 1).abs()
    assert scale_err.max() < 0.01
    coeff_err = (res.coeffs - birds_rest["deform"]).abs().amax(-1)
    assert coeff_err.median() < 1e-2
    # Every instance whose visible points determine all coefficients gets them all right.
    observable = ttp.deformation_observability(birds_rest) > 1e-6
    assert observable.sum() >= 20 and coeff_err[observable].max() < 1e-2


def test_unobservable_coefficients_are_flagged():
    # Seed 2 holds a bird seen from behind and below with its head hidden: the head modes move no visible point.
    problem = ttp.subset(ttp.bird_problem(29, seed=2, resolution=RESOLUTION, zero_articulation=True), [27, 28])
    res, err = run(problem, log_reg=math.log(1e-10))
    obs = ttp.deformation_observability(problem)
    coeff_err = (res.coeffs - problem["deform"]).abs().amax(-1)
    assert obs[1] < 1e-9 < obs[0] and err.max() < 0.5
    assert coeff_err[0] < 1e-2 < coeff_err[1]


def test_two_pixel_noise(birds_rest):
    _, err = run(ttp.corrupt(birds_rest, noise_px=2.0, seed=1), log_reg=math.log(0.05))
    assert err.median() < 3.0


@pytest.mark.parametrize("loss", ["huber", "geman_mcclure"])
def test_twenty_percent_outliers_with_a_robust_loss(birds_rest, loss):
    noisy = ttp.corrupt(birds_rest, noise_px=2.0, outlier_frac=0.2, seed=2)
    _, err = run(noisy, loss=loss, log_reg=math.log(0.05))
    assert err.median() < 5.0
    _, err_l2 = run(noisy, loss="l2", log_reg=math.log(0.05))
    assert err_l2.median() > 2 * err.median()  # the quadratic loss is what fails here


def test_problem_from_a_dataset_batch_matches_its_keypoints(tmp_path):
    from csmlab.data.synthetic import make_dataset
    ds = make_dataset("birds", 4, RESOLUTION, seed=0, root=tmp_path, progress=False)
    batch = ds.batch(range(4))
    problem = ttp.problem_from_batch(batch, ds.category)
    # Keypoints are fixed blends of vertices; projection is affine, so they blend the projected points.
    kp = torch.einsum("kv,bvc->bkc", ds.category.keypoint_weights.double(), problem["points"])
    assert torch.allclose(kp.float(), batch["keypoints"][..., :2], atol=1e-3)
    assert 0.3 < problem["visibility"].mean() < 0.8  # a depth test hides the far side
    assert problem["images"].shape == (4, 3, RESOLUTION, RESOLUTION)


def test_render_visibility_agrees_with_an_exact_depth_test(birds_rest):
    from csmlab.data.synthetic.meshops import surface_visibility
    from csmlab.geometry import ortho_depth, ortho_project
    cam, V = birds_rest["camera"], birds_rest["verts"][:4]
    uv = ortho_project(V, cam["scale"][:4], cam["rotation"][:4], cam["trans"][:4])
    depth = ortho_depth(V, cam["rotation"][:4])
    exact = surface_visibility(uv, depth, uv, depth, birds_rest["faces"], 1e-3)
    assert (birds_rest["visibility"][:4].bool() == exact).double().mean() > 0.9


# ---------------------------------------------------------------- gradients

def test_implicit_gradient_matches_finite_differences(birds_rest):
    problem = ttp.subset(ttp.corrupt(birds_rest, noise_px=2.0, seed=3), slice(0, 2))
    u0, vis = ttp.points_ndc(problem), problem["visibility"]
    cfg = ttp.SolverConfig(log_reg=math.log(0.05))
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(s, generator=g, dtype=torch.float64) for s in ((2, 3, 3), (2,), (2, 2), (2, 6))]

    def loss(out):
        return sum((o * w).sum() for o, w in zip(out, weights))

    u = u0.clone().requires_grad_(True)
    log_reg = torch.tensor(math.log(0.05), dtype=torch.float64, requires_grad=True)
    stats = {}
    loss(ttp.solve_implicit(u, vis, problem["template"], problem["basis"], log_reg, cfg, stats=stats)).backward()
    assert stats["fallback"] == 0
    direction = torch.randn(u0.shape, generator=g, dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        f = [loss(ttp.solve_implicit(u0 + k * eps * direction, vis, problem["template"], problem["basis"],
                                     math.log(0.05), cfg)) for k in (1, -1)]
        fd_u = (f[0] - f[1]) / (2 * eps)
        f = [loss(ttp.solve_implicit(u0, vis, problem["template"], problem["basis"], math.log(0.05) + k * eps, cfg))
             for k in (1, -1)]
        fd_w = (f[0] - f[1]) / (2 * eps)
    assert abs((u.grad * direction).sum() - fd_u) < 1e-3 * abs(fd_u)
    assert abs(log_reg.grad - fd_w) < 1e-3 * abs(fd_w)
    # Unrolling through the Newton steps converges to the same gradient.
    u2 = u0.clone().requires_grad_(True)
    loss(ttp.solve_unrolled(u2, vis, problem["template"], problem["basis"], None,
                            ttp.SolverConfig(log_reg=math.log(0.05), alternations=2, polish_steps=6))).backward()
    assert (u2.grad - u.grad).norm() < 1e-4 * u.grad.norm()


def test_damped_solve_and_its_fallback():
    g = torch.Generator().manual_seed(1)
    Q = torch.linalg.qr(torch.randn(3, 4, 4, generator=g, dtype=torch.float64)).Q
    ev = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 0.0], [1.0, 2.0, 3.0, -1.0]], dtype=torch.float64)
    H = Q @ torch.diag_embed(ev) @ Q.transpose(1, 2)
    b = torch.randn(3, 4, generator=g, dtype=torch.float64)
    x, fallback = damped_solve(H, b)
    assert fallback.tolist() == [False, True, True]
    assert torch.allclose(H[0] @ x[0], b[0], atol=1e-8)
    assert torch.isfinite(x).all()
    # The fallback inverts |eigenvalue| (floored): the singular direction gets a bounded answer.
    coords = (Q[2].T @ b[2]) / ev[2].abs()
    assert torch.allclose(x[2], Q[2] @ coords, atol=1e-8)


# ---------------------------------------------------------------- pieces

def test_moment_cost_and_ridge_equal_the_per_point_forms():
    pb = ttp.random_problem(5, n_basis=4, subdiv=2, seed=3)
    P = make_problem(ttp.points_ndc(pb), pb["visibility"], pb["template"], pb["basis"], math.log(0.1))
    g = torch.Generator().manual_seed(4)
    R = pb["camera"]["rotation"] @ torch.linalg.matrix_exp(0.1 * torch.randn(5, 3, 3, generator=g,
                                                                            dtype=torch.float64).mT.sub(0))
    R = torch.linalg.qr(R).Q * torch.linalg.det(torch.linalg.qr(R).Q)[:, None, None]
    s, t = pb["camera"]["scale"] * 1.1, pb["camera"]["trans"] + 0.02
    c = torch.randn(5, 4, generator=g, dtype=torch.float64)
    from csmlab.methods.ttp.cost import cost
    mom = moments(P)
    assert torch.allclose(moment_cost(mom, R, s, t, c), cost(P, R, s, t, c), rtol=1e-10)
    assert torch.allclose(moment_ridge(mom, R, s, t), ridge_coeffs(P, R, s, t), rtol=1e-8, atol=1e-10)


def test_robust_weights_are_the_derivative_of_the_penalty():
    e = torch.linspace(0, 0.05, 101, dtype=torch.float64).requires_grad_(True)
    for name in ("l2", "huber", "geman_mcclure"):
        (d,) = torch.autograd.grad(rho(e, name, 0.1).sum(), e)
        assert torch.allclose(d, irls_weight(e.detach(), name, 0.1), atol=1e-10)
    with pytest.raises(ValueError, match="loss must be"):
        rho(e, "cauchy", 0.1)


def test_batched_lbfgs_solves_independent_problems():
    # Rosenbrock valleys of different steepness: each instance has its own curvature and steps.
    a = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    b = torch.tensor([100.0, 10.0, 50.0], dtype=torch.float64)

    def f(x):
        return (a - x[:, 0]) ** 2 + b * (x[:, 1] - x[:, 0] ** 2) ** 2

    x, info = batched_lbfgs(f, torch.zeros(3, 2, dtype=torch.float64), max_iter=300, first_step=0.01)
    assert info.converged.all()
    assert torch.allclose(x, torch.stack([a, a * a], 1), atol=1e-5)


def test_restarts_and_random_start_recover_the_truth(birds_rest):
    problem = ttp.subset(birds_rest, slice(0, 8))
    for init in ("random", "restarts"):
        res, err = run(problem, init=init, log_reg=math.log(1e-10))
        assert err.max() < 0.5, init
    res, _ = run(problem, init="restarts", restarts=4)
    assert res.hypotheses["rotation"].shape == (8, 4, 3, 3) and res.chosen.shape == (8,)


def test_mirror_appears_when_the_bird_is_flattened(birds_rest):
    flat = ttp.flatten(ttp.subset(birds_rest, slice(0, 16)), 0.03)
    assert ttp.mirror_projection_gap(flat).median() < 1.0          # pixels: nearly an exact twin
    assert ttp.mirror_projection_gap(birds_rest).median() > 5.0   # the real bird tells them apart
    study = ttp.mirror_study(ttp.corrupt(flat, 2.0, seed=5), {
        "identity": ttp.SolverConfig(init="identity", fit_deformation=False),
        "prior": ttp.SolverConfig(init="procrustes+mirror", select="visible_front", fit_deformation=False)})
    assert study["identity"]["mirror"] > 0.1
    assert study["prior"]["mirror"] <= study["identity"]["mirror"] / 2


# ---------------------------------------------------------------- API and data

def test_fit_and_evaluate_with_the_smoke_preset(birds_rest):
    cfg = preset(ttp.PRESETS, "smoke", noise_px=0.0)
    data = ttp.subset(birds_rest, slice(0, 6))
    model, history = ttp.fit(cfg, data)
    assert history["cost"][-1] <= history["cost"][0]
    metrics = ttp.evaluate(model, data)
    assert metrics["rotation_error_deg"] < 0.5 and metrics["pck"] == 1.0 and metrics["mirror_rate"] == 0.0
    assert metrics["per_instance"]["rotation_error_deg"].shape == (6,)
    with pytest.raises(ValueError, match="unknown config keys"):
        preset(ttp.PRESETS, "smoke", learning_rate=1.0)


def test_cub_solve_on_the_fixture(tmp_path):
    from fixtures_real import build_cmr_cachedir, build_cub
    build_cub(tmp_path / "cub")
    build_cmr_cachedir(tmp_path / "cub")
    assert ttp.cub.cub_available(tmp_path)
    cfg = preset(ttp.PRESETS, "full", split="train", resolution=64)
    data = ttp.make_data(cfg, root=tmp_path)
    model, _ = ttp.fit(cfg, data)
    metrics = ttp.evaluate(model, data)
    # The fixture's keypoints are exact projections of the mean shape: the SfM camera is the optimum.
    assert metrics["rotation_error_deg"] < 0.1 and metrics["pck"] == 1.0


def test_solver_inputs_are_validated():
    pb = ttp.random_problem(2, subdiv=1)
    u = ttp.points_ndc(pb)
    with pytest.raises(ValueError, match="points must be"):
        ttp.solve(u[0], pb["visibility"], pb["template"])
    with pytest.raises(ValueError, match="weights must be"):
        ttp.solve(u, pb["visibility"][:, :3], pb["template"])
    with pytest.raises(ValueError, match="template must be"):
        ttp.solve(u, pb["visibility"], pb["template"][:5])
    with pytest.raises(ValueError, match="init must be"):
        ttp.SolverConfig(init="guess")


def test_solver_leaves_the_thread_count_alone(birds_rest, monkeypatch):
    """docs/design.md, section 5: a library function never reconfigures global state (torch's thread count)."""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    problem = ttp.subset(birds_rest, slice(0, 2))
    u = ttp.points_ndc(problem).clone().requires_grad_(True)
    rot = ttp.solve_implicit(u, problem["visibility"], problem["template"], problem["basis"], None,
                             ttp.SolverConfig())[0]
    rot.sum().backward()
    assert calls == [] and u.grad is not None
