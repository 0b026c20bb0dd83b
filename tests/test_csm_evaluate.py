"""CSM's evaluation: keypoint transfer on a hand-built pair with known answers, APK and surface errors."""

import math

import pytest
import torch

from csmlab.geometry import sphere_to_uv
from csmlab.methods.csm.evaluate import (
    keypoint_transfer,
    sample_pairs,
    snap_to_mask,
    sphere_angle_error,
    surface_error,
    transfer_keypoints,
)
from csmlab.metrics import apk

H = W = 10


def _pair():
    """Image 0 sees template point (x, y, 0) / 10 at pixel column x, row y; image 1 sees it two columns right.

    Image 0's foreground is columns 0-7 and image 1's columns 2-9, so every point has one exact match.
    """
    rows, cols = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
    p0 = torch.stack([cols, rows, torch.zeros_like(rows)]) / 10
    p1 = torch.stack([cols - 2, rows, torch.zeros_like(rows)]) / 10
    m0 = (cols <= 7).float()[None]
    m1 = (cols >= 2).float()[None]
    # Keypoints (x, y, visible). Transfers 0 -> 1 move x by +2 pixels (to the pixel centre).
    k0 = torch.tensor([[1.5, 1.5, 1], [3.5, 2.5, 1], [5.2, 6.7, 1], [2.5, 8.5, 0]])
    k1 = torch.tensor([[3.5, 1.5, 1], [8.5, 2.5, 1], [7.5, 6.5, 1], [4.5, 8.5, 1]])
    return torch.stack([p0, p1]), torch.stack([k0, k1]), torch.stack([m0, m1])


def test_transfer_of_single_keypoints_lands_on_the_matching_pixel():
    points, kps, masks = _pair()
    xy, dist = transfer_keypoints(points[0], kps[0, :3, :2], points[1], masks[1])
    assert torch.equal(xy, torch.tensor([[3.5, 1.5], [5.5, 2.5], [7.5, 6.5]]))
    assert torch.allclose(dist, torch.zeros(3), atol=1e-6)
    back, _ = transfer_keypoints(points[1], kps[1, :3, :2], points[0], masks[0])
    assert torch.equal(back, torch.tensor([[1.5, 1.5], [6.5, 2.5], [5.5, 6.5]]))


def test_transfer_pck_on_the_hand_built_pair_is_exact():
    points, kps, masks = _pair()
    pairs = torch.tensor([[0, 1]])
    # Keypoint 3 is hidden in image 0: 3 transfers each way.
    # 0 -> 1: kp0 exact, kp1 off by 3 px, kp2 exact.  1 -> 0: kp0 exact, kp1 off by 3 px,
    # kp2 lands on (5.5, 6.5), 0.36 px from (5.2, 6.7).  Threshold 0.1 * 10 px = 1 px.
    res = keypoint_transfer(points, kps, masks, pairs, threshold=0.1)
    assert res["pck"] == pytest.approx(4 / 6)
    assert res["errors"].numel() == 6
    assert torch.allclose(res["errors"] * 10, torch.tensor([0, 3, 0, 0, 3, math.hypot(0.3, 0.2)]), atol=1e-5)
    # At 0.3 px the sub-pixel offset counts as a miss too.
    assert keypoint_transfer(points, kps, masks, pairs, threshold=0.03)["pck"] == pytest.approx(3 / 6)
    one_way = keypoint_transfer(points, kps, masks, pairs, threshold=0.1, both_directions=False)
    assert one_way["pck"] == pytest.approx(2 / 3) and one_way["errors"].numel() == 3


def test_transfer_only_matches_target_foreground():
    points, kps, masks = _pair()
    narrow = masks[1].clone()
    narrow[..., :6] = 0                                                 # columns 0-5 are background now
    xy, dist = transfer_keypoints(points[0], kps[0, :1, :2], points[1], narrow)
    assert float(xy[0, 0]) == 6.5 and float(dist[0]) == pytest.approx(0.3, abs=1e-6)


def test_source_keypoints_off_the_mask_snap_to_the_nearest_foreground_pixel():
    points, kps, masks = _pair()
    off = torch.tensor([[9.5, 4.5], [8.2, 0.2]])                         # columns 8-9 are background in image 0
    row, col = snap_to_mask(off, masks[0])
    assert row.tolist() == [4, 0] and col.tolist() == [7, 7]
    snapped, _ = transfer_keypoints(points[0], off, points[1], masks[1], src_mask=masks[0])
    assert torch.equal(snapped, torch.tensor([[9.5, 4.5], [9.5, 0.5]]))
    # Without snapping, the background pixel's (meaningless) point is used as is.
    raw, _ = transfer_keypoints(points[0], off, points[1], masks[1])
    assert float(raw[0, 0]) == 9.5 and float(raw[1, 0]) == 9.5          # (9,4)/10 and (8,0)/10 clamp to col 9
    with pytest.raises(ValueError, match="src_mask"):
        transfer_keypoints(points[0], off, points[1], masks[1], src_mask=torch.zeros(1, 10, 10))


def test_apk_ranks_by_confidence():
    err = torch.tensor([0.0, 0.5, 0.05, 0.2])
    # Ranked by confidence: correct, wrong, correct, wrong -> (1/4) * (1/1 + 2/3)
    assert float(apk(err, torch.tensor([4.0, 3.0, 2.0, 1.0]), 0.1)) == pytest.approx((1 + 2 / 3) / 4)
    # Correct ones first: APK equals PCK
    assert float(apk(err, torch.tensor([4.0, 1.0, 3.0, 2.0]), 0.1)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="confidence"):
        apk(err, torch.zeros(3), 0.1)


def test_surface_and_sphere_errors():
    gt = torch.zeros(1, 3, 2, 2)
    pred = gt.clone()
    pred[0, 0, 0, 0] = 0.3                                              # one pixel off by 0.3
    mask = torch.ones(1, 1, 2, 2)
    assert float(surface_error(pred, gt, mask)[0]) == pytest.approx(0.3 / 4)
    mask[0, 0, 0, 0] = 0
    assert float(surface_error(pred, gt, mask)[0]) == pytest.approx(0.0)
    front = torch.tensor([0.0, 0.0, 1.0])
    side = torch.tensor([1.0, 0.0, 0.0])
    gt_uv = sphere_to_uv(front.expand(1, 1, 1, 3)).permute(0, 3, 1, 2)
    assert float(sphere_angle_error(side.reshape(1, 3, 1, 1), gt_uv, torch.ones(1, 1, 1, 1))[0]) == pytest.approx(
        90.0, abs=1e-3)


def test_sample_pairs_are_distinct_and_repeatable():
    p = sample_pairs(5, 200, seed=3)
    assert (p[:, 0] != p[:, 1]).all() and p.min() >= 0 and p.max() < 5
    assert torch.equal(p, sample_pairs(5, 200, seed=3))
    with pytest.raises(ValueError, match="n_images"):
        sample_pairs(1, 3)


def test_bad_inputs_raise_value_errors():
    points, kps, masks = _pair()
    with pytest.raises(ValueError, match="tgt_mask"):
        transfer_keypoints(points[0], kps[0, :, :2], points[1], masks[1, :, :5])
    with pytest.raises(ValueError, match="no foreground"):
        transfer_keypoints(points[0], kps[0, :, :2], points[1], torch.zeros_like(masks[1]))
    with pytest.raises(ValueError, match="keypoints"):
        keypoint_transfer(points, kps[:, :, :2], masks, torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="visible in both"):
        hidden = kps.clone()
        hidden[0, :, 2] = 0
        keypoint_transfer(points, hidden, masks, torch.tensor([[0, 1]]))


def test_template_points_under_a_camera_match_the_render_and_fill_the_background():
    from csmlab.geometry import icosphere
    from csmlab.methods.csm.evaluate import template_points_under
    from csmlab.methods.csm.network import base_quaternions

    sphere = icosphere(2)
    cams = {"scale": torch.tensor([0.5, 0.7]), "quat": base_quaternions(2), "trans": torch.tensor([[0.1, 0.0],
                                                                                                    [0.0, -0.2]])}
    pts = template_points_under(sphere, cams, 24)
    assert pts.shape == (2, 3, 24, 24)
    radius = pts.norm(dim=1)
    assert radius.min() > 0.95 and radius.max() < 1.0 + 1e-5      # every pixel holds a point on the sphere
    # The front of the sphere faces the camera: depth along the view axis is the visible half.
    R = __import__("csmlab.geometry", fromlist=["quaternion_to_matrix"]).quaternion_to_matrix(cams["quat"])
    view_z = torch.einsum("bij,bjhw->bihw", R, pts)[:, 2]
    assert (view_z > -1e-3).float().mean() > 0.99
    with pytest.raises(ValueError, match="scale"):
        template_points_under(sphere, {**cams, "scale": cams["scale"][:, None]}, 24)


def test_nearest_covered_pixel_is_exactly_the_nearest():
    from csmlab.methods.csm.evaluate import nearest_covered_pixel

    g = torch.Generator().manual_seed(0)
    covered = torch.rand(23, 31, generator=g) > 0.93
    rows, cols = nearest_covered_pixel(covered.numpy())
    assert covered[torch.from_numpy(rows), torch.from_numpy(cols)].all()       # every pixel points at a covered one
    grid = torch.stack(torch.meshgrid(torch.arange(23.0), torch.arange(31.0), indexing="ij"), -1).reshape(-1, 2)
    brute = torch.cdist(grid, grid[covered.reshape(-1)]).min(dim=1).values
    picked = torch.stack([torch.from_numpy(rows), torch.from_numpy(cols)], -1).reshape(-1, 2).float()
    chosen = (grid - picked).norm(dim=1)
    assert torch.allclose(chosen, brute)                                         # and at a nearest one (ties aside)
