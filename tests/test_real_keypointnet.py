"""KeypointNet reader: ascii .pcd rows, point_index -> the right row, splits, reflection flip, notebook 07's layout."""

from __future__ import annotations

import pytest
import torch
from fixtures_real2 import KPNET_CLASS, KPNET_MODELS, KPNET_POINTS, build_keypointnet, kpnet_cloud

from csmlab.data.real.keypointnet import flip_permutation, load_keypointnet, read_pcd, read_split
from csmlab.data.real.layout_wave2 import check_keypointnet


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_keypointnet(root / "keypointnet")
    return root


def test_pcd_rows_and_packed_colours_are_read_exactly(root):
    xyz, rgb = read_pcd(root / "keypointnet" / "pcds" / KPNET_CLASS / "m_b.pcd")
    want_xyz, want_rgb = kpnet_cloud("m_b")
    assert xyz.shape == (KPNET_POINTS, 3) and torch.allclose(xyz, torch.tensor(want_xyz, dtype=torch.float32))
    assert torch.equal((rgb * 255).round().long(), torch.tensor(want_rgb))


def test_point_index_points_at_the_annotated_row(root):
    data = load_keypointnet(root, "chair")
    assert data["model_ids"] == list(KPNET_MODELS) and data["points"].shape == (3, KPNET_POINTS, 3)
    for r, (sem, rows) in enumerate(KPNET_MODELS.values()):
        for s, row in zip(sem, rows):
            assert data["keypoint_index"][r, s] == row
            assert torch.allclose(data["points"][r, row], data["keypoints"][r, s], atol=1e-6)
        absent = sorted(set(range(4)) - set(sem))
        assert data["keypoint_index"][r, absent].tolist() == [-1] * len(absent)
    # the structure of notebook 07's synthetic clouds, plus the real-only fields
    assert {"points", "keypoint_index", "keypoints", "keypoint_flip", "category"} <= set(data)
    assert data["keypoint_index"].dtype == torch.long and data["class_id"] == KPNET_CLASS


def test_reflection_groups_give_the_flip_permutation(root):
    data = load_keypointnet(root, "chair")
    assert data["keypoint_flip"].tolist() == [1, 0, 2, 3]
    bad = [dict(r) for r in data["records"][:2]]
    bad[1] = {**bad[1], "symmetries": {"reflection": [{"kp_indexes": [0, 2]}]}}  # 0 with 3 here, 0 with 1 there
    with pytest.raises(ValueError, match="pairs semantic id"):
        flip_permutation(bad, 4)


def test_splits_select_models(root):
    assert read_split(root / "keypointnet" / "splits" / "val.txt") == [(KPNET_CLASS, "m_b")]
    assert load_keypointnet(root, "chair", "train")["model_ids"] == ["m_a", "m_c"]
    with pytest.raises(ValueError, match="in the test split"):
        load_keypointnet(root, "chair", "test")
    summary = check_keypointnet(root)
    assert (summary["chair"], summary["split_train"], summary["pcds"]) == (3, 2, 3)


def test_bad_input_is_named(root, tmp_path):
    with pytest.raises(ValueError, match="category must be one of"):
        load_keypointnet(root, "sofa")
    with pytest.raises(ValueError, match="annotations are missing"):
        load_keypointnet(tmp_path, "chair")
    (tmp_path / "x.pcd").write_text("VERSION .7\nFIELDS x y z\nPOINTS 2\nDATA ascii\n0 0 0\n")
    with pytest.raises(ValueError, match="expected 2 rows"):
        read_pcd(tmp_path / "x.pcd")
