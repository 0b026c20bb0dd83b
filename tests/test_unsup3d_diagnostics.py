"""The failure-analysis probes of Unsup3D (csmlab.methods.unsup3d.diagnostics) on a few synthetic faces.

They pin the facts the medium-scale analysis rests on: the objective itself is right (with the
ground-truth factors it is smallest at the true yaw, and its yaw gradient points there for almost
every face), and the near-orthographic camera nearly hides the concave, mirrored solution.
"""

import pytest
import torch

from csmlab.methods.unsup3d import Unsup3D, get_config, load_faces, unsup3d_losses
from csmlab.methods.unsup3d.diagnostics import (
    albedo_with_background,
    faces_background,
    factor_agreement,
    fit_with_given,
    mirrored_solution_error,
    view_depth_decomposition,
    yaw_landscape,
    yaw_translation_landscape,
)


@pytest.fixture(scope="module")
def small():
    cfg = get_config("smoke", n_train=24, n_test=24)
    test = load_faces(cfg, "test")
    test["albedo_bg"] = albedo_with_background(test, faces_background(cfg, "test", 24))
    return cfg, test


def test_background_albedo_restores_the_flat_background(small):
    cfg, test = small
    model = Unsup3D(cfg)
    f = {"canon_depth": test["canonical_depth"], "albedo": test["albedo_bg"], "light": test["light"],
         "view": test["view"]}
    model.factors = lambda image: f
    with torch.no_grad():
        plain = unsup3d_losses(model(test["image"]), test["image"], {**cfg, "use_conf": False})
        f["albedo"] = test["albedo"]
        skin = unsup3d_losses(model(test["image"]), test["image"], {**cfg, "use_conf": False})
    assert float(plain["photometric"]) < 0.5 * float(skin["photometric"])


def test_the_objective_is_smallest_at_the_true_yaw(small):
    cfg, test = small
    land = yaw_landscape(cfg, test, test["albedo_bg"], scales=(0.0, 0.5, 0.8, 1.0, 1.2))
    assert min(land, key=land.get) == 1.0
    assert land[0.0] > land[0.5] > land[0.8] > land[1.0]


def test_the_yaw_gradient_points_to_the_true_yaw(small):
    cfg, test = small
    cfg = {**cfg, "use_conf": False, "lam_depth_sm": 0.0}
    rot = test["view"]["rotation"].clone()
    rot[:, 0] = rot[:, 0] * 0.5
    rot.requires_grad_(True)
    model = Unsup3D(cfg)
    model.factors = lambda image: {"canon_depth": test["canonical_depth"], "albedo": test["albedo_bg"],
                                   "light": test["light"], "view": {"rotation": rot, "trans": test["view"]["trans"]}}
    terms = unsup3d_losses(model(test["image"]), test["image"], cfg)
    (grad,) = torch.autograd.grad(terms["photometric"] + terms["photometric_flip"], rot)
    yaw = test["view"]["rotation"][:, 0]
    big = yaw.abs() > 0.2
    agree = ((-grad[:, 0]).sign() == yaw.sign()).float()[big].mean()
    assert float(agree) >= 0.9


def test_the_mirrored_concave_face_nearly_reconstructs_the_image(small):
    _, test = small
    r = mirrored_solution_error(test)
    assert r["truth"] < 0.005                 # the true factors reconstruct the face
    assert r["truth"] < r["mirrored"] < 0.06  # the concave twin is worse, but only by a few percent
    assert r["mirrored_mad"] > 45             # and its shape is wrong


def test_fit_with_given_reports_agreement_and_rejects_unknown_factors(small):
    cfg, test = small
    out = fit_with_given({**cfg, "batch_size": 4}, test, test, give=("light", "view"), iters=2, report_every=2,
                         log=lambda s: None)
    assert out[-1]["iteration"] == 2
    assert out[-1]["yaw_slope"] == pytest.approx(1.0) and out[-1]["light_corr_x"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="give"):
        fit_with_given(cfg, test, test, give=("shape",), iters=1)
    agreement = factor_agreement({"view": test["view"], "light": test["light"],
                                  "canon_depth": test["canonical_depth"]}, test)
    assert agreement["relief_pred"] == pytest.approx(agreement["relief_true"])
    assert agreement["relief_corr"] == pytest.approx(1.0)
    concave = factor_agreement({"view": test["view"], "canon_depth": 2.0 - test["canonical_depth"]}, test)
    assert concave["relief_corr"] == pytest.approx(-1.0)   # the inverted face is told apart from the true one
    # the light's spread and diffuse strength (the medium runs' light net collapses both) are reported too
    assert agreement["diffuse_pred"] == pytest.approx(agreement["diffuse_true"])
    assert agreement["light_std_x"] == pytest.approx(agreement["light_std_x_true"])


def test_view_depth_decomposition_tells_the_view_from_the_depth(small):
    _, test = small
    rot = test["view"]["rotation"].clone()
    rot[:, 0] = 0.0                                        # a "model" with the true depth and no yaw
    rows = view_depth_decomposition({"canon_depth": test["canonical_depth"],
                                     "view": {"rotation": rot, "trans": test["view"]["trans"]}}, test)
    assert rows["pred_depth_true_view"]["side_ratio"] == pytest.approx(0.0, abs=1e-6)   # its depth is right
    assert rows["true_depth_pred_view"] == pytest.approx(rows["pred_depth_pred_view"])  # so its view is the error
    assert rows["true_depth_yaw_x0"] == pytest.approx(rows["pred_depth_pred_view"])
    assert rows["pred_depth_pred_view"]["mad_ratio"] > 0.2
    assert rows["flat_depth_true_view"]["mad_ratio"] > rows["true_depth_yaw_x0.5"]["mad_ratio"]
    # a flatter true face and a slightly wrong yaw cost something, a flat face more than a 25% flatter one
    assert 0 < rows["true_relief_x0.75_true_view"]["mad_ratio"] < rows["flat_depth_true_view"]["mad_ratio"]
    assert 0 < rows["true_depth_yaw_plus5deg"]["side_ratio"] < rows["true_depth_yaw_x0"]["side_ratio"]


def test_a_smaller_yaw_with_a_following_translation_does_not_beat_the_truth(small):
    # The view probes learn yaw x ~0.45 with the x translation following the yaw; the objective disagrees.
    cfg, test = small
    r = yaw_translation_landscape(cfg, test, test["albedo_bg"], yaw_scales=(0.5,), couplings=torch.linspace(-0.08, 0.08, 9))
    row = r["yaw_x0.5"]
    assert r["truth"] < row["best_coupled"] <= row["true_translation"]
    assert row["fraction_beating_truth"] < 0.25
