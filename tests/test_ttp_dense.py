"""``ttp.surface_map_correspondences``: a dense surface map pooled into per-vertex correspondences for the solve."""

import pytest
import torch

from csmlab.data.synthetic import get_category, make_dataset
from csmlab.geometry import quaternion_to_matrix, rotation_angle_deg
from csmlab.methods import csm, ttp


def test_the_template_rendered_under_the_true_camera_gives_back_that_camera():
    cat = get_category("birds")
    data = csm.stack_samples(make_dataset("birds", 6, 64, seed=5, progress=False, views="cub", articulation="rest"))
    cams = {"scale": data["cam_scale"], "quat": data["cam_quat"], "trans": data["cam_trans"]}
    perfect = csm.template_points_under(cat.template, cams, 64)        # a map with no error of its own
    T = cat.template.verts.float()
    uv, vis = ttp.surface_map_correspondences(perfect, data["mask"], T)
    assert uv.shape == (6, T.shape[0], 2) and vis.shape == (6, T.shape[0])
    assert float(vis.min()) >= 0 and float(vis.max()) <= 1 and (vis > 0.5).any(1).all()
    res = ttp.solve(uv.double(), vis.double(), T.double(), None, None, ttp.SolverConfig(fit_deformation=False))
    err = rotation_angle_deg(res.rotation.float(), quaternion_to_matrix(data["cam_quat"]))
    assert float(err.max()) < 8.0, err


def test_bad_inputs_name_the_argument():
    T = torch.rand(10, 3)
    pts, mask = torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8)
    with pytest.raises(ValueError, match="points"):
        ttp.surface_map_correspondences(torch.rand(2, 2, 8, 8), mask, T)
    with pytest.raises(ValueError, match="mask"):
        ttp.surface_map_correspondences(pts, torch.ones(2, 8, 8), T)
    with pytest.raises(ValueError, match="template"):
        ttp.surface_map_correspondences(pts, mask, torch.rand(10, 2))
    with pytest.raises(ValueError, match="k must"):
        ttp.surface_map_correspondences(pts, mask, T, k=11)
    with pytest.raises(ValueError, match="empty"):
        ttp.surface_map_correspondences(pts, torch.zeros(2, 1, 8, 8), T)
