"""KeypointNet evaluation: the symmetry twins of a viewpoint, the baseline's clouds, the geometry bound of 2D PCK."""

import math

import pytest
import torch

from csmlab.data.synthetic import get_category, make_dataset
from csmlab.geometry import azel_to_matrix, quaternion_to_matrix
from csmlab.methods.keypointnet import get_config
from csmlab.methods.keypointnet.evaluation import (
    evaluate_3d,
    position_baseline,
    project,
    shapes_for,
    viewpoint_metrics,
)
from csmlab.methods.keypointnet.projection import keypoints_from_pixels, pck_per_image, silhouette
from csmlab.methods.keypointnet.training import cloud_split
from csmlab.methods.keypointnet.viewpoint import twin_azimuths


def _template_silhouette(az: float, el: float) -> torch.Tensor:
    cat = get_category("birds")
    R = azel_to_matrix(torch.tensor([az]), torch.tensor([el]), torch.zeros(1))
    return silhouette(cat.template.verts[None], cat.template.faces, torch.tensor([0.8]), R, torch.zeros(1, 2), 64)[0, 0]


def test_twin_azimuths_are_the_birds_symmetry():
    a, e = math.radians(60), math.radians(12)
    s = _template_silhouette(a, e)
    twins = twin_azimuths(torch.tensor(a))
    mirror = _template_silhouette(float(twins["mirror"]), e)
    same = _template_silhouette(float(twins["silhouette"]), -e)
    assert float((s - mirror.flip(-1)).abs().mean()) < 1e-4          # -a: the mirror image
    assert float((s - same).abs().mean()) < 0.03 * float(s.mean())   # pi - a at -e: the same silhouette
    assert float((s - mirror).abs().mean()) > 0.3 * float(s.mean())  # and neither is the view itself


def test_viewpoint_metrics_report_twin_confusions_apart():
    true_az = torch.deg2rad(torch.tensor([60.0, 60.0, -80.0, 100.0]))
    true = torch.stack([true_az, torch.zeros(4), torch.zeros(4)], -1)
    pred = torch.deg2rad(torch.tensor([61.0, 120.0, 80.0, 100.0]))     # right, silhouette twin, mirror, right
    m = viewpoint_metrics(pred, torch.zeros(4), true)
    assert m["azimuth_within_one_bin"] == pytest.approx(0.5)
    assert m["azimuth_within_one_bin_mod_silhouette"] == pytest.approx(0.75)
    assert m["azimuth_within_one_bin_mod_mirror"] == pytest.approx(0.75)
    assert m["misses_at_silhouette_twin"] == pytest.approx(0.5) and m["misses_at_mirror_twin"] == pytest.approx(0.5)


class _XYZ(torch.nn.Module):
    """A 'network' whose embedding is the point's position: nearest mean embedding = nearest mean position."""

    def forward(self, points):
        return {"saliency": torch.zeros(points.shape[:2] + (2,)), "embedding": points}


def test_position_baseline_is_scored_on_the_backbones_clouds():
    cfg = get_config("smoke")
    train, test = cloud_split(12, 256, 5), cloud_split(4, 256, 6)
    table, points = train["table"], train["points"]
    mean_xyz = torch.stack([points[torch.arange(len(points)), table[:, k]].mean(0) for k in range(table.shape[1])])
    for n in (None, 128):
        # The same guess through evaluate_3d's path must score the same: both see the same test clouds.
        learned = evaluate_3d(_XYZ(), mean_xyz, test, cfg, n)["pck_3d"]
        assert position_baseline(train, test, cfg, n)["pck_3d"] == learned


def test_geometry_bound_oracle_reaches_one_and_template_does_not():
    ds = make_dataset("birds", 6, 64, seed=11, progress=False, cache=False)
    batch = ds.batch(range(6))
    cam = batch["camera"]
    true_cam = (cam["scale"], quaternion_to_matrix(cam["quat"]), cam["trans"])
    pck = {}
    for kind in ("template", "oracle"):
        shape = shapes_for(kind, batch, 512)
        assert shape["keypoints"].shape == (6, len(get_category("birds").keypoint_names), 3)
        exact = project(shape, shape["points"], shape["keypoints"], true_cam, 64)   # per-image means [B,K,3]
        pck[kind] = pck_per_image(exact["keypoints"], batch["keypoints"], batch["mask"], 0.1)["pck_bbox"]
    assert pck["oracle"] > 0.95
    assert pck["template"] < pck["oracle"]
    with pytest.raises(ValueError, match="means"):
        keypoints_from_pixels(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 3, 5), torch.zeros(3, 2, 5))


def test_clouds_take_the_rungs_articulation_and_the_benchmark_shapes():
    from csmlab.data.synthetic import make_pointclouds
    from csmlab.data.synthetic.benchmark import BENCHMARK_SEED
    from csmlab.data.synthetic.birds_scenes import sample_scenes

    cat = get_category("birds")
    cub = make_pointclouds(4, 64, seed=BENCHMARK_SEED, articulation="cub")
    scenes = sample_scenes(cat, 4, BENCHMARK_SEED, "cub", "cub")        # the benchmark split's rung-B birds
    assert torch.equal(cub["articulation"], scenes["articulation"]) and torch.equal(cub["deform"], scenes["deform"])
    full = make_pointclouds(4, 64, seed=BENCHMARK_SEED)
    assert torch.equal(full["deform"], cub["deform"]) and not torch.equal(full["articulation"], cub["articulation"])
    with pytest.raises(ValueError, match="articulation"):
        make_pointclouds(2, 64, articulation="flying")
