"""KeypointNet pipeline pieces: contrastive loss, soft viewpoint bins, networks, projection visibility."""

import math

import pytest
import torch

from csmlab.geometry import azel_to_matrix
from csmlab.methods.keypointnet.losses import online_contrastive_loss, select_pairs
from csmlab.methods.keypointnet.networks import KeypointModel
from csmlab.methods.keypointnet.projection import point_visibility, refine_camera, silhouette
from csmlab.methods.keypointnet.viewpoint import azimuth_bin_distance, decode_bins, soft_bins, viewpoint_labels


def test_contrastive_zero_for_separated_clusters_positive_otherwise():
    labels = torch.tensor([0, 0, 1, 1])
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    emb = centres[labels]                                   # tight clusters 3 apart, margin 1
    assert float(online_contrastive_loss(emb, labels, margin=1.0)) == pytest.approx(0.0, abs=1e-6)
    close = emb.clone()
    close[2:] = torch.tensor([0.5, 0.0])                    # clusters 0.5 apart: negatives inside the margin
    assert float(online_contrastive_loss(close, labels)) > 0.01
    spread = emb.clone()
    spread[1] = torch.tensor([0.4, 0.0])                    # a loose positive pair
    assert float(online_contrastive_loss(spread, labels)) == pytest.approx(0.16 / 4, rel=1e-4)


def test_hard_negatives_as_many_as_positives():
    labels = torch.tensor([0, 0, 1, 2, 3])
    emb = torch.tensor([[0.0], [0.1], [5.0], [0.2], [9.0]])
    pos, neg = select_pairs(emb, labels)
    assert len(pos) == 1 and len(neg) == 1
    assert sorted(neg[0].tolist()) == [1, 3]                # the closest pair of different labels


def test_soft_bins_sum_to_one_and_wrap():
    angles = torch.linspace(-2 * math.pi, 2 * math.pi, 97)
    p = soft_bins(angles, 24, 2 * math.pi, circular=True)
    assert torch.allclose(p.sum(-1), torch.ones(97))
    assert ((p > 0).sum(-1) <= 2).all()
    w = 2 * math.pi / 24
    # On the boundary of the circle (angle 0 = 2 pi) the weight is split between the last and the first bin.
    at_zero = soft_bins(torch.tensor(0.0), 24, 2 * math.pi, True)
    assert at_zero[0] == pytest.approx(0.5) and at_zero[23] == pytest.approx(0.5)
    near = soft_bins(torch.tensor(-w / 4), 24, 2 * math.pi, True)      # just below 2 pi
    assert near[23] == pytest.approx(0.75) and near[0] == pytest.approx(0.25)
    centre = soft_bins(torch.tensor(5.5 * w), 24, 2 * math.pi, True)
    assert centre[5] == pytest.approx(1.0)
    # Decoding (the direction of the weighted sum of the two centres) inverts the encoding up to the
    # chord-versus-arc difference of linear weights (under 0.2 degrees for 15-degree bins), also across the wrap.
    for a in (0.01, 1.0, 6.2):
        assert float(decode_bins(soft_bins(torch.tensor(a), 24, 2 * math.pi, True), 2 * math.pi, True)) == \
            pytest.approx(a, abs=3e-3)
    el = soft_bins(torch.tensor([0.0, math.pi, 1.3]), 12, math.pi, circular=False)
    assert torch.allclose(el.sum(-1), torch.ones(3)) and el[0, 0] == 1 and el[1, 11] == 1
    with pytest.raises(ValueError, match="non-circular"):
        soft_bins(torch.tensor(4.0), 12, math.pi, circular=False)
    with pytest.raises(ValueError, match="elevation"):
        viewpoint_labels(torch.tensor([0.0]), torch.tensor([2.0]))


def test_azimuth_bin_distance_is_circular():
    w = 2 * math.pi / 24
    assert int(azimuth_bin_distance(torch.tensor(0.5 * w), torch.tensor(-0.5 * w))) == 1
    assert int(azimuth_bin_distance(torch.tensor(0.5 * w), torch.tensor(12.5 * w))) == 12


@pytest.mark.parametrize("backbone", ["pointnet", "dgcnn"])
def test_networks_shapes_and_bad_input(backbone):
    model = KeypointModel(backbone, emb_dim=16, width=0.125, k=4).eval()
    out = model(torch.rand(2, 64, 3))
    assert out["saliency"].shape == (2, 64, 2) and out["embedding"].shape == (2, 64, 16)
    with pytest.raises(ValueError, match=r"\[N,3\]"):
        model(torch.rand(2, 64, 4))
    bad = torch.rand(2, 64, 3)
    bad[0, 5, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(bad)


def _two_squares():
    """A front square at z = +0.5 (nearer the viewer) hiding a back square at z = -0.5."""
    sq = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    front = torch.cat([sq, torch.full((4, 1), 0.5)], 1)
    back = torch.cat([sq * 1.6, torch.full((4, 1), -0.5)], 1)  # larger: its rim shows around the front one
    verts = torch.cat([front, back])[None]
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    return verts, faces


def test_projection_marks_an_occluded_keypoint_invisible():
    verts, faces = _two_squares()
    points = torch.tensor([[[0.0, 0.0, 0.5],      # on the front square: visible
                            [0.0, 0.0, -0.5],     # behind it, on the back square: occluded
                            [0.7, 0.0, -0.5],     # on the back square's rim: visible
                            [3.0, 0.0, 0.5],      # outside the image
                            [0.0, 0.95, -0.5]]])  # beyond both squares' pixels: nothing in front, visible
    one, R, t = torch.ones(1), azel_to_matrix(torch.zeros(1), torch.zeros(1)), torch.zeros(1, 2)
    vis = point_visibility(points, verts, faces, one * 0.5, R, t, resolution=32)
    assert vis[0].tolist() == [True, False, True, False, True]
    # Seen from behind (azimuth 180 degrees) the roles swap.
    R_back = azel_to_matrix(torch.tensor([math.pi]), torch.zeros(1))
    vis_back = point_visibility(points, verts, faces, one * 0.5, R_back, t, resolution=32)
    assert vis_back[0, :2].tolist() == [False, True]


def test_refinement_recovers_the_scale():
    verts, faces = _two_squares()
    R, t = azel_to_matrix(torch.zeros(1), torch.zeros(1)), torch.zeros(1, 2)
    # The antialiased silhouette as the target: a binarised one leaves the scale undetermined within a pixel.
    target = silhouette(verts, faces, torch.tensor([0.5]), R, t, 32).detach()
    out = refine_camera(verts, faces, target, torch.tensor([0.4]), R, t, mode="scale", steps=40, lr=0.03)
    assert out["losses"][-1] < 0.3 * out["losses"][0]
    assert float(out["scale"]) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="mode"):
        refine_camera(verts, faces, target, torch.tensor([0.4]), R, t, mode="affine")
