"""KeypointNet's 3D benchmark metrics on hand-built cases, and the annotation layout's input checks."""

import math

import numpy as np
import pytest
import torch

from csmlab.data.kpnet_layout import check_annotations, check_cloud, keypoint_table, make_record, reflection_pairs
from csmlab.methods.keypointnet import metrics3d


def test_geodesic_on_a_known_graph():
    # Points on a "U": the straight-line distance between the tips is 1, the geodesic goes round (1 + 1 + 1 = 3).
    side = np.linspace(0, 1, 11)
    pts = np.concatenate([np.stack([np.zeros(11), side[::-1], np.zeros(11)], 1),      # down the left side
                          np.stack([side[1:], np.zeros(10), np.zeros(10)], 1),       # along the bottom
                          np.stack([np.ones(10), side[1:], np.zeros(10)], 1)])       # up the right side
    geo = metrics3d.geodesic_distances(torch.tensor(pts), sources=[0], k=2)
    assert geo.shape == (1, len(pts))
    assert geo[0, -1] == pytest.approx(3.0, abs=1e-9)       # tip to tip along the U
    assert np.linalg.norm(pts[0] - pts[-1]) == pytest.approx(1.0)
    assert geo[0, 10] == pytest.approx(1.0)                 # the bottom-left corner


def test_geodesic_unconnected_points_are_infinitely_far():
    pts = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [10.0, 0, 0], [10.1, 0, 0]])
    geo = metrics3d.geodesic_distances(pts, sources=[0], k=1)
    assert geo[0, 1] == pytest.approx(0.1) and math.isinf(geo[0, 2])


def _line_geo(n=10):
    x = np.arange(n, dtype=float) * 0.01
    return np.abs(x[:, None] - x[None, :])


def test_miou_hand_case():
    geo = _line_geo()
    # gt {0, 5}; pred {0, 1, 9}. At t=0.015: 0 and 1 are near gt 0 (tp), 9 is a false positive; gt 5 is missed.
    miou = metrics3d.saliency_miou([[0, 1, 9]], [[0, 5]], [geo[[0, 5]]], 0.015)
    assert miou == pytest.approx((2 - 1) / (2 + 1))
    assert metrics3d.saliency_miou([[0, 5]], [[0, 5]], [geo[[0, 5]]], 0.001) == pytest.approx(1.0)
    assert metrics3d.saliency_miou([[]], [[0, 5]], [geo[[0, 5]]], 0.1) == pytest.approx(0.0)


def test_map_hand_case():
    geo = _line_geo()
    gt = [[0, 5]]
    # Perfect ranking: the two keypoints score highest -> AP 1 at any threshold above 0.
    scores = np.zeros(10)
    scores[[0, 5]] = [0.9, 0.8]
    assert metrics3d.saliency_map([scores], gt, [geo[[0, 5]]], 0.005) == pytest.approx(1.0)
    # One false positive ranked first: precision 1/2 at recall 1/2, 2/3 at recall 1 -> AP = 2/3 (envelope).
    scores[9] = 1.0
    assert metrics3d.saliency_map([scores], gt, [geo[[0, 5]]], 0.005) == pytest.approx(2 / 3)
    # A duplicate detection of a taken keypoint is a false positive: point 1 (near 0) after point 0.
    s2 = np.zeros(10)
    s2[[0, 1, 5]] = [0.9, 0.85, 0.8]
    ap = metrics3d.saliency_map([s2], gt, [geo[[0, 5]]], 0.015)
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    # Strict comparison: nothing matches at threshold 0.
    assert metrics3d.saliency_map([scores], gt, [geo[[0, 5]]], 0.0) == 0.0


def test_correspondence_pck_hand_case():
    geo = _line_geo()
    gt = np.array([[0, 5, -1]])
    pred = np.array([[2, 5, 7]])          # errors 0.02 and 0; the third is not annotated
    rows = geo[[0, 5, 0]]
    pck = metrics3d.correspondence_pck(gt, pred, [rows])
    assert pck[0] == 0.0                  # strict: nothing is closer than 0
    assert pck[1] == pytest.approx(0.5) and pck[2] == pytest.approx(0.5) and pck[3] == pytest.approx(1.0)


def test_normalize_diagonal():
    pts = torch.tensor([[0.0, 0, 0], [3.0, 4.0, 0.0]])
    out = metrics3d.normalize_diagonal(pts)
    assert float((out.max(0).values - out.min(0).values).norm()) == pytest.approx(1.0)


def _record(n_points=20):
    cloud = torch.rand(n_points, 3)
    rec = make_record("birds", "m0", cloud[[3, 7]], [0, 1], [3, 7], [(0, 1)])
    return rec, cloud


def test_layout_round_trip():
    rec, cloud = _record()
    assert set(rec) == {"class_id", "model_id", "keypoints", "symmetries"}
    assert rec["keypoints"][0]["pcd_info"]["point_index"] == 3
    assert check_annotations([rec], [cloud]) == 2
    assert keypoint_table([rec], 3).tolist() == [[3, 7, -1]]
    assert reflection_pairs(rec) == [(0, 1)]


def test_bad_inputs_raise_value_errors():
    rec, cloud = _record()
    with pytest.raises(ValueError, match=r"\[N,3\]"):
        check_cloud(torch.rand(10, 2))
    nan = cloud.clone()
    nan[4, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_cloud(nan)
    with pytest.raises(ValueError, match="semantic ids must be in"):
        check_annotations([rec], [cloud], num_semantics=1)
    with pytest.raises(ValueError, match="semantic ids must be in"):
        keypoint_table([rec], 1)
    empty = dict(rec, keypoints=[])
    with pytest.raises(ValueError, match="empty"):
        check_annotations([empty], [cloud])
    bad_idx = make_record("birds", "m0", cloud[[3]], [0], [3])
    bad_idx["keypoints"][0]["pcd_info"]["point_index"] = 99
    with pytest.raises(ValueError, match="point_index"):
        check_annotations([bad_idx], [cloud])
    with pytest.raises(ValueError, match="NaN"):
        check_annotations([rec], [nan])
