"""Pix3D reader: chair records, keypoints averaged over annotators after crop by hand, mask, model and pose."""

from __future__ import annotations

import pytest
import torch
from fixtures_real2 import PIX3D_KP3D, build_pix3d

from csmlab.data.real.layout_wave2 import check_pix3d
from csmlab.data.real.pix3d import Pix3dDataset, mean_keypoints
from csmlab.data.sample import validate_sample


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_pix3d(root / "pix3d")
    return root


def test_chair_keypoints_after_crop_by_hand(root):
    ds = Pix3dDataset(root, "chair", img_size=44)
    assert len(ds) == 2 and len(Pix3dDataset(root, "chair", skip_occluded=True)) == 1
    s = validate_sample(ds[0])
    # bbox (10, 5)-(29, 14) as in the SPair test: window x0 9, y0 -1, size 22 -> scale 2
    assert s["crop_box"].tolist() == [9.0, -1.0, 31.0, 21.0]
    # annotators: (12, 6) and (14, 8) -> mean (13, 7); (20, 10), (20, 12) -> (20, 11); the third is unmarked
    want = torch.tensor([[(13.5 - 9) * 2, (7.5 + 1) * 2, 1], [(20.5 - 9) * 2, (11.5 + 1) * 2, 1], [0, 0, 0]])
    assert torch.allclose(s["keypoints"], want)
    assert torch.allclose(s["keypoints_3d"], torch.tensor(PIX3D_KP3D, dtype=torch.float32))
    assert s["mask"][0, 20, 20].item() == 1.0 and s["mask"][0, 0, 0].item() == 0.0
    assert s["pose"]["focal_length"] == 35.0 and s["pose"]["trans_mat"].tolist() == [0.0, 0.0, 2.5]
    verts, faces = ds.model(0)
    assert verts.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3]]  # the quad as a fan
    assert "keypoints" not in ds[1]  # no 2d_keypoints in that record


def test_layout_check_and_bad_input(root, tmp_path):
    assert check_pix3d(root) == {"pix3d_dir": str(root / "pix3d"), "chair": 2, "sofa": 1}
    with pytest.raises(ValueError, match="category must be one of"):
        Pix3dDataset(root, "bed")
    with pytest.raises(ValueError, match="annotators, K, 2"):
        mean_keypoints([[1, 2]])
    with pytest.raises(ValueError, match="no pix3d.json"):
        Pix3dDataset(tmp_path)
