"""PF-PASCAL reader: pair lists, classes, keypoints from MATLAB pixels, resizing by hand."""

from __future__ import annotations

import pytest
import torch
from fixtures_real2 import PF_IMAGES, build_pf_pascal

from csmlab.data.real.layout_wave2 import check_pf_pascal
from csmlab.data.real.pf_pascal import PfPascalPairs, read_pairs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_pf_pascal(root / "pf_pascal")
    return root


def test_only_the_course_classes_are_kept_in_file_order(root):
    pairs = PfPascalPairs(root, "test")
    assert [pairs[i]["category"] for i in range(len(pairs))] == ["chair", "car"]
    assert [p["category"] for p in PfPascalPairs(root, "val").pairs] == ["aeroplane"]
    assert len(PfPascalPairs(root, "test", categories=("horse",))) == 1


def test_keypoints_at_native_size_and_after_resize_by_hand(root):
    p = PfPascalPairs(root, "test")[0]
    assert p["source"]["image"].shape == (3, 20, 40) and p["target"]["image"].shape == (3, 30, 30)
    assert p["source"]["keypoints"].tolist() == [[0.5, 0.5, 1.0], [39.5, 19.5, 1.0]]  # 1-based -> centres
    q = PfPascalPairs(root, "test", img_size=10)[0]
    # source 40 x 20 -> 10 x 10: x scales by 1/4, y by 1/2
    assert torch.allclose(q["source"]["keypoints"], torch.tensor([[0.125, 0.25, 1.0], [9.875, 9.75, 1.0]]))
    assert torch.allclose(q["target"]["keypoints"][:, :2], torch.tensor([[14.5, 14.5], [29.5, 29.5]]) / 3)
    assert q["source"]["image"].shape == (3, 10, 10) and set(q) == {"source", "target", "category", "pair"}
    assert q["source"]["image_name"].endswith("2007_000001.jpg")


def test_bad_lists_and_arguments_are_named(root, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("source_image,target_image,class,XA,YA,XB,YB\na,b,9,1;2,1,1;2,1;2\n")
    with pytest.raises(ValueError, match="lengths"):
        read_pairs(bad)
    bad.write_text("source_image,target_image,class,XA,YA,XB,YB\na,b,21,1,1,1,1\n")
    with pytest.raises(ValueError, match="class"):
        read_pairs(bad)
    with pytest.raises(ValueError, match="split must be"):
        PfPascalPairs(root, "train")
    with pytest.raises(ValueError, match="PASCAL VOC classes"):
        PfPascalPairs(root, categories=("plane",))
    summary = check_pf_pascal(root)
    assert (summary["annotations"], summary["val_pairs"], summary["test_pairs"]) == (1, 1, 3)
    assert len(PF_IMAGES) == 4
