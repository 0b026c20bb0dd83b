"""benchmarks/csm_pose_vs_masks.py's pieces: the rigid template's coverage and the covered / uncovered split."""

import importlib.util
from pathlib import Path

import torch

from csmlab.data.synthetic import get_category, make_dataset, rung_priors
from csmlab.methods import csm

_SPEC = importlib.util.spec_from_file_location(
    "csm_pose_vs_masks", Path(__file__).resolve().parents[1] / "benchmarks" / "csm_pose_vs_masks.py")
tool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tool)


def test_covered_split_averages_each_side_separately():
    truth = torch.zeros(1, 3, 2, 2)
    points = truth.clone()
    points[0, 0, 1, :] = torch.tensor([1.0, 3.0])          # the bottom row, uncovered, is off by 1 and 3
    data = {"surface_xyz": truth, "mask": torch.ones(1, 1, 2, 2)}
    covered = torch.tensor([[[True, True], [False, False]]])
    assert tool.covered_split(points, data, covered) == {"surface_error_covered": 0.0, "surface_error_uncovered": 2.0}


def test_rigid_coverage_under_the_true_cameras_is_the_rigid_birds_mask(tmp_path):
    # Rung A's birds are rigid (wings at rest, close to the template): under their true cameras the coverage is
    # their mask.
    # A camera convention mixed up (quaternion order, a mirrored axis) would move the silhouette off the mask.
    data = csm.stack_samples(make_dataset("birds", 4, 32, 3, root=tmp_path, progress=False, **rung_priors("A")))
    cams = {"scale": data["cam_scale"], "quat": data["cam_quat"], "trans": data["cam_trans"]}
    covered = tool.rigid_coverage(get_category("birds").template, cams, 32)
    mask = data["mask"][:, 0] > 0.5
    iou = (covered & mask).flatten(1).sum(1) / (covered | mask).flatten(1).sum(1)
    assert covered.shape == mask.shape
    assert float(iou.mean()) > 0.85, iou       # 0.90 here; the conjugate quaternions give 0.52
