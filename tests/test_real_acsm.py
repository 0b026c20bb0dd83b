"""ACSM reader: the rigged template (parts, hierarchy, joint centres, keypoint vertices) and quadruped annotations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_real2 import ACSM_FACES, ACSM_KP2VERTEX, ACSM_NODES, ACSM_PART_OF, ACSM_VERTS, build_acsm

from csmlab.data.real.acsm import AcsmQuadrupeds, load_template
from csmlab.data.real.crop import hflip_sample
from csmlab.data.real.layout_wave2 import check_acsm
from csmlab.data.sample import validate_sample


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    voc = root / "pascal3d" / "PASCAL3D+_release1.1" / "PASCAL" / "VOCdevkit" / "VOC2012" / "JPEGImages"
    build_acsm(root / "acsm", voc, root / "imagenet")
    return root


def test_template_mesh_parts_hierarchy_and_keypoint_vertices(dirs):
    t = load_template(dirs, "horse")
    assert torch.allclose(t["verts"], torch.tensor(ACSM_VERTS, dtype=torch.float32))
    assert t["faces"].tolist() == (torch.tensor(ACSM_FACES) - 1).tolist()  # OBJ's 1-based -> 0-based
    assert t["part_names"] == ["body", "L_leg", "R_leg"] and t["part_of_vertex"].tolist() == ACSM_PART_OF
    assert t["parent"].tolist() == [-1, 0, 0]
    assert torch.allclose(t["joint_centres"],
                          torch.tensor(np.array([n["rc"] for n in ACSM_NODES]), dtype=torch.float32))
    assert t["part_flip"].tolist() == [0, 2, 1]
    assert t["keypoint_names"] == [n for n, _ in ACSM_KP2VERTEX]
    assert t["keypoint_vertex"].tolist() == [v for _, v in ACSM_KP2VERTEX]
    assert torch.allclose(t["verts"][t["keypoint_vertex"]], torch.tensor(ACSM_VERTS[[5, 3, 4]], dtype=torch.float32))


def test_pascal_keypoints_after_crop_by_hand_and_the_flip_permutation(dirs):
    ds = AcsmQuadrupeds(dirs, "horse", "train", img_size=44)
    s = validate_sample(ds[0])
    # bbox (11, 6)-(30, 15) 1-based -> indices (10, 5)-(29, 14): as in the SPair test, window x0 9, y0 -1, size 22
    assert s["crop_box"].tolist() == [9.0, -1.0, 31.0, 21.0]
    assert torch.allclose(s["keypoints"], torch.tensor([[(20 - 0.5 - 9) * 2, (8 - 0.5 + 1) * 2, 1],
                                                        [(12 - 0.5 - 9) * 2, (14 - 0.5 + 1) * 2, 1], [0, 0, 0]]))
    assert ds.keypoint_names == ["nose", "L_foot", "R_foot"] and ds.flip_perm.tolist() == [0, 2, 1]
    f = hflip_sample(s, ds.flip_perm)
    assert torch.allclose(f["keypoints"][2, :2], torch.tensor([44 - s["keypoints"][1, 0], s["keypoints"][1, 1]]))
    assert f["keypoints"][1].tolist() == [0.0, 0.0, 0.0]  # the right foot was not visible
    assert s["mask"].sum() > 0 and len(AcsmQuadrupeds(dirs, "horse", "val")) == 1


def test_imagenet_samples_have_masks_but_no_keypoints(dirs):
    ds = AcsmQuadrupeds(dirs, "horse", "train", source="imagenet", imagenet_dir=dirs / "imagenet", img_size=32)
    s = ds[0]
    assert s["rel_path"] == "n02381460/n02381460_1.JPEG" and "keypoints" not in s
    with pytest.raises(ValueError, match="imagenet_dir"):
        AcsmQuadrupeds(dirs, "horse", source="imagenet")
    assert check_acsm(dirs) == {"templates": "horse", "pascal_files": 3, "imagenet_files": 1}
