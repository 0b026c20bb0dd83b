"""The camera diagnostics of end-to-end TTP: the summaries detect a mirror mode and a left/right swap."""

import pytest
import torch

from csmlab.data.synthetic import get_category, make_dataset
from csmlab.methods.ttp import diagnostics as D
from csmlab.methods.ttp import fit_e2e
from csmlab.methods.ttp.presets import get_config


def test_camera_summary_separates_the_truth_and_the_mirror_modes():
    err = torch.tensor([5.0, 10.0, 100.0, 120.0, 60.0])
    mirror = torch.tensor([90.0, 80.0, 4.0, 8.0, 70.0])
    s = D.camera_summary(err, mirror)
    assert s["frac_near_truth"] == pytest.approx(0.4) and s["frac_near_mirror"] == pytest.approx(0.4)
    assert s["frac_neither"] == pytest.approx(0.2) and s["median_error_of_neither_deg"] == pytest.approx(60.0)
    assert s["median_min_of_two_deg"] == pytest.approx(8.0) and sum(s["histogram"]) == 5
    with pytest.raises(ValueError, match="err"):
        D.camera_summary(err, mirror[:3])


def test_azimuth_bins_count_every_image_once():
    az = torch.tensor([-170.0, -90.0, 10.0, 100.0, 179.0])
    rows = D.azimuth_bins(torch.ones(5), torch.zeros(5), az, width=90.0)
    assert sum(r["n"] for r in rows) == 5 and all(r["frac_mirror_closer"] == 1.0 for r in rows)
    with pytest.raises(ValueError, match="width"):
        D.azimuth_bins(torch.ones(5), torch.zeros(5), az, width=0.0)


def test_point_errors_detect_a_left_right_swap():
    cat = get_category("birds")
    flip = cat.vertex_flip.long()
    N = flip.shape[0]
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(2, N, 2, generator=g) * 1.6 - 0.8
    truth[:, :, 0] = truth[:, flip, 0].neg()   # partners apart: mirror x
    truth = truth.clone()
    vis = torch.ones(2, N)
    exact = D.point_errors(truth, truth, vis, flip, cat.vertex_parts, cat.part_names, 64)
    swapped = D.point_errors(truth[:, flip], truth, vis, flip, cat.vertex_parts, cat.part_names, 64)
    assert exact["swap_rate_visible"] == 0.0 and exact["median_px_visible"] == 0.0
    assert swapped["swap_rate_visible"] == 1.0 and swapped["frac_images_mostly_swapped"] == 1.0
    with pytest.raises(ValueError, match="vertex_flip"):
        D.point_errors(truth, truth, vis, flip[:5], cat.vertex_parts, cat.part_names, 64)


def test_camera_diagnostics_runs_on_a_tiny_model():
    torch.set_num_threads(1)
    cat = get_category("birds")
    cfg = get_config("smoke")
    model = fit_e2e.build_model(cfg, cat)
    out = D.camera_diagnostics(model, make_dataset("birds", 6, 32, seed=3, progress=False), cfg, cat)
    assert out["camera"]["n"] == 6 and out["per_image"]["error_deg"].shape == (6,)
    # the true correspondences solve the camera better than an untrained regressor's
    solves = out["solves"]
    assert solves["true points, true visibility (l2)"]["median_deg"] < solves[
        "regressed points, regressed visibility (the model)"]["median_deg"]
    with pytest.raises(ValueError, match="model"):
        D.camera_diagnostics(object(), [], cfg)


def test_mirror_targets_are_the_mirrored_camera_s_projections():
    from csmlab.geometry import ortho_project, random_rotation
    from csmlab.methods.ttp import losses as L
    from csmlab.methods.ttp.teacher import mirror_targets

    cat = get_category("birds")
    T = cat.template.verts.double()[None].expand(3, -1, -1)
    R = random_rotation(3, generator=torch.Generator().manual_seed(1)).double()
    s, t = torch.full((3,), 0.7, dtype=torch.float64), torch.tensor([[0.1, -0.2]] * 3, dtype=torch.float64)
    uv = ortho_project(T, s, R, t)
    R_m, t_m = L.mirror_camera(R, t)
    uv_m, vis_m = mirror_targets(uv, torch.rand(3, T.shape[1], dtype=torch.float64), cat.vertex_flip)
    assert torch.allclose(uv_m, ortho_project(T, s, R_m, t_m), atol=1e-4)
    assert float(L.flip_points_loss(ortho_project(T, s, R_m, t_m), uv, cat.vertex_flip.long())) < 1e-8
    assert float(L.flip_points_loss(uv, uv, cat.vertex_flip.long())) > 1e-3
    with pytest.raises(ValueError, match="vertex_flip"):
        mirror_targets(uv, vis_m, cat.vertex_flip[:4])
    with pytest.raises(ValueError, match="points_flipped"):
        L.flip_points_loss(uv[:2], uv, cat.vertex_flip.long())


def test_texture_flip_half_is_the_texture_term_of_the_swapped_labelling():
    """Mirror half (authors' texture_pred_flip): on a symmetric bird it scores the points as the plain term
    scores their left/right swap, so the truth is exact for one half and not for the other."""
    from csmlab.data.synthetic import pose_vertices
    from csmlab.geometry import ortho_project, quaternion_to_matrix
    from csmlab.methods.ttp import losses as L

    cat = get_category("birds")
    d = fit_e2e.stack_samples(make_dataset("birds", 4, 64, seed=5, progress=False, cache=False,
                                           views="cub", articulation="rest"))
    R, s, t = quaternion_to_matrix(d["cam_quat"]), d["cam_scale"], d["cam_trans"]
    V = pose_vertices(cat, d["deform"], d["articulation"]).float()
    P, sol, faces = ortho_project(V, s, R, t), {"rotation": R, "scale": s, "trans": t}, cat.template.faces
    r = L.render_solution(V, faces, sol, 64)
    plain = float(L.texture_loss(r, P, d["image"], d["mask"]))
    half = float(L.texture_flip_loss(V, faces, sol, P, d["image"], d["mask"], 64))
    swapped = float(L.texture_loss(r, P[:, cat.vertex_flip.long()], d["image"], d["mask"]))
    assert plain < 1e-6 < 0.01 < half
    assert half == pytest.approx(swapped, rel=0.05)
