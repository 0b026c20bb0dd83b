"""Bird point clouds: keypoint indices, surface sampling, correspondence, determinism."""

from __future__ import annotations

import pytest
import torch

from csmlab.data.synthetic import get_category, make_pointclouds, pose_surface_points, pose_vertices


@pytest.fixture(scope="module")
def clouds():
    return make_pointclouds(8, num_points=2048, seed=0)


def test_shapes_and_keypoint_indices(clouds):
    cat = get_category("birds")
    K = len(cat.keypoint_names)
    assert clouds["points"].shape == (8, 2048, 3) and clouds["keypoint_index"].shape == (8, K)
    picked = torch.gather(clouds["points"], 1, clouds["keypoint_index"][..., None].expand(-1, -1, 3))
    assert torch.equal(picked, clouds["keypoints"])
    # Keypoint rows are distinct and spread over the cloud, not stacked at the end.
    assert all(len(set(row.tolist())) == K for row in clouds["keypoint_index"])
    assert clouds["keypoint_index"].float().std() > 300
    assert clouds["keypoint_names"] == list(cat.keypoint_names)
    assert torch.allclose(clouds["normals"].norm(dim=-1), torch.ones(8, 2048), atol=1e-4)
    assert clouds["parts"].min() >= 0 and clouds["parts"].max() < len(cat.part_names)


def test_points_lie_on_the_posed_surface(clouds):
    """Template points with their sphere UV, carried to the instance, give the cloud back."""
    cat = get_category("birds")
    posed = pose_surface_points(cat, clouds["template_points"], clouds["surface_uv"], clouds["deform"],
                                clouds["articulation"])
    err = (posed - clouds["points"]).norm(dim=-1)
    assert err.max() < 1e-4, err.max()


def test_area_uniform_and_deterministic(clouds):
    again = make_pointclouds(8, num_points=2048, seed=0)
    other = make_pointclouds(8, num_points=2048, seed=1)
    assert torch.equal(again["points"], clouds["points"]) and not torch.equal(other["points"], clouds["points"])
    # Wings hold a share of the points close to their share of the area.
    cat = get_category("birds")
    verts = pose_vertices(cat, clouds["deform"], clouds["articulation"])
    tri = verts[:, cat.template.faces]
    area = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1).norm(dim=-1)
    wing = torch.isin(cat.vertex_parts[cat.template.faces].mode(1).values, torch.tensor([3, 4]))
    share_area = (area[:, wing].sum(1) / area.sum(1)).mean()
    share_points = torch.isin(clouds["parts"], torch.tensor([3, 4])).float().mean()
    assert abs(share_points - share_area) < 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must"):
        make_pointclouds(0)
    with pytest.raises(ValueError, match="num_points"):
        make_pointclouds(2, num_points=10)
