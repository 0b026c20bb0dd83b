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
    assert solves["true points, true visibility"]["median_deg"] < solves[
        "regressed points, regressed visibility (the model)"]["median_deg"]
    with pytest.raises(ValueError, match="model"):
        D.camera_diagnostics(object(), [], cfg)
