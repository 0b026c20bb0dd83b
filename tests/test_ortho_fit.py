"""Closed-form scaled-orthographic fitting: scale/translation, affine factorisation, Procrustes, mirror."""

import pytest
import torch

from csmlab.geometry import (
    affine_to_rotation,
    fit_affine,
    fit_scale_translation,
    flip_negative_scale,
    mirror_rotation,
    ortho_project,
    procrustes_init,
    random_rotation,
    rotation_angle_deg,
)

B, N = 6, 40


def scene(seed=0, planar=False):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, 3, generator=g, dtype=torch.float64) * torch.tensor([0.6, 0.4, 0.3], dtype=torch.float64)
    if planar:
        X[..., 2] = 0.0
    R = random_rotation(B, generator=g, dtype=torch.float64)
    s = 0.5 + torch.rand(B, generator=g, dtype=torch.float64)
    t = torch.rand(B, 2, generator=g, dtype=torch.float64) - 0.5
    return X, R, s, t, ortho_project(X, s, R, t)


def test_scale_translation_exact_and_weighted():
    X, R, s, t, u = scene()
    s_hat, t_hat = fit_scale_translation(X, u, R)
    assert torch.allclose(s_hat, s, atol=1e-12) and torch.allclose(t_hat, t, atol=1e-12)
    # Points with weight 0 may be anything: corrupt them, the weighted fit must not move.
    w = torch.ones(B, N, dtype=torch.float64)
    w[:, :10] = 0
    u_bad = u.clone()
    u_bad[:, :10] += 5.0
    s_w, t_w = fit_scale_translation(X, u_bad, R, w)
    assert torch.allclose(s_w, s, atol=1e-12) and torch.allclose(t_w, t, atol=1e-12)


def test_negative_scale_is_a_half_turn():
    X, R, s, t, u = scene(1)
    R_half = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)) @ R
    s_hat, t_hat = fit_scale_translation(X, u, R_half)
    assert (s_hat < 0).all() and torch.allclose(s_hat, -s, atol=1e-12)
    R2, s2, t2 = flip_negative_scale(R_half, s_hat, t_hat)
    assert torch.allclose(R2, R, atol=1e-12) and torch.allclose(s2, s, atol=1e-12)
    assert torch.allclose(ortho_project(X, s2, R2, t2), u, atol=1e-12)


def test_affine_and_procrustes_recover_the_camera():
    X, R, s, t, u = scene(2)
    A, b = fit_affine(X, u)
    assert torch.allclose(A, s[:, None, None] * R[:, :2], atol=1e-8) and torch.allclose(b, t, atol=1e-8)
    R_hat, s_hat = affine_to_rotation(A)
    assert rotation_angle_deg(R_hat, R).max() < 1e-5
    assert torch.allclose(s_hat, s, atol=1e-8)
    R_p, s_p, t_p = procrustes_init(X, u)
    assert rotation_angle_deg(R_p, R).max() < 1e-5 and torch.allclose(s_p, s, atol=1e-8)
    assert torch.allclose(t_p, t, atol=1e-8)


def test_procrustes_of_a_general_affine_is_a_proper_rotation():
    A = torch.randn(20, 2, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    R, s = affine_to_rotation(A)
    eye = torch.eye(3, dtype=torch.float64).expand(20, 3, 3)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(20, dtype=torch.float64), atol=1e-12)
    # It is the nearest scaled orthonormal pair of rows: no random rotation does better.
    err = (A - s[:, None, None] * R[:, :2]).flatten(1).norm(dim=1)
    for k in range(20):
        Q = random_rotation(20, generator=torch.Generator().manual_seed(10 + k), dtype=torch.float64)
        assert (err <= (A - s[:, None, None] * Q[:, :2]).flatten(1).norm(dim=1) + 1e-12).all()


def test_mirror_rotation_twins_planar_points_exactly():
    X, R, s, t, u = scene(4, planar=True)
    R_m = mirror_rotation(R, X)
    assert torch.allclose(torch.linalg.det(R_m), torch.ones(B, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(ortho_project(X, s, R_m, t), u, atol=1e-12)
    assert rotation_angle_deg(R_m, R).min() > 1.0  # a genuinely different rotation
    # The mirror of the mirror is the original rotation.
    assert rotation_angle_deg(mirror_rotation(R_m, X), R).max() < 1e-5


def test_mirror_of_a_solid_only_approximates():
    X, R, s, t, u = scene(5)
    R_m = mirror_rotation(R, X)
    gap = (ortho_project(X, s, R_m, t) - u).norm(dim=-1).mean()
    assert gap > 1e-3  # a non-planar object tells its mirror apart


def test_inputs_are_validated():
    X, R, s, t, u = scene()
    with pytest.raises(ValueError, match="X must be"):
        fit_scale_translation(X[..., :2], u, R)
    with pytest.raises(ValueError, match="u must be"):
        fit_affine(X, u[:, :5])
    with pytest.raises(ValueError, match="weights"):
        procrustes_init(X, u, -torch.ones(B, N, dtype=torch.float64))
    with pytest.raises(ValueError, match="R must be"):
        fit_scale_translation(X, u, R[:2])
    with pytest.raises(ValueError, match="A must be"):
        affine_to_rotation(torch.zeros(B, 3, 3))
