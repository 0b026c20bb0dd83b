"""SPair-71k reader: crop + resize of keypoints by hand, visibility, azimuth_id, masks, pairs, per-category split."""

from __future__ import annotations

import pytest
import torch
from fixtures_real2 import SPAIR_EXTRA_TEST, SPAIR_IMAGES, SPAIR_PAIRS, build_spair, spair_mask

from csmlab.data.real.layout import LayoutError
from csmlab.data.real.layout_wave2 import check_spair
from csmlab.data.real.spair import SpairImages, SpairPairs, category_split, pair_names
from csmlab.data.sample import validate_sample


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_spair(root / "spair")
    return root


def test_keypoints_after_crop_and_resize_by_hand(root):
    ds = SpairImages(root, "aeroplane", img_size=50)
    s = validate_sample(ds[ds.index_of("2008_000001")])
    # box (10, 5)-(29, 14): w = 20, h = 10; padding 5% -> x 9..30, y 4.5..14.5 -> round half away: y 5..15
    # (x1 = 10 - 1 = 9, x2 = 29 + 1 = 30, y1 = 5 - 0.5 = 4.5 -> 5, y2 = 14.5 -> 15): 22 x 11 -> square 22,
    # y0 = 5 - round(5.5) = -1; x0 = 9. Scale 50 / 22.
    assert s["crop_box"].tolist() == [9.0, -1.0, 31.0, 21.0]
    sc = 50 / 22
    expected = torch.tensor([[(12.5 - 9) * sc, (6.5 + 1) * sc, 1], [0, 0, 0], [(28.5 - 9) * sc, (14.5 + 1) * sc, 1],
                             [(20.5 - 9) * sc, (10.5 + 1) * sc, 1]])
    assert torch.allclose(s["keypoints"], expected, atol=1e-5)
    assert torch.allclose(s["bbox"], torch.tensor([1 * sc, 6 * sc, 21 * sc, 16 * sc]), atol=1e-5)


def test_visibility_and_azimuth_id_come_from_the_annotation(root):
    ds = SpairImages(root, "aeroplane")
    for name, (*_, kps, az) in SPAIR_IMAGES.items():
        s = ds[ds.index_of(name)]
        assert s["azimuth_id"] == az and s["imname"] == name
        assert s["keypoints"][:, 2].tolist() == [0.0 if k is None else 1.0 for k in kps]
        assert set(s) == {"image", "mask", "keypoints", "category", "index", "bbox", "crop_box", "azimuth_id", "imname"}


def test_mask_follows_the_segmentation_through_the_crop(root):
    ds = SpairImages(root, "aeroplane", img_size=22)  # the window is 22 px: no resize for 2008_000001
    s = ds[ds.index_of("2008_000001")]
    # window x 9..30, y -1..20; the object covers rows 5..14, columns 10..29 -> crop rows 6..15, columns 1..20
    want = torch.zeros(22, 22)
    want[6:16, 1:21] = 1
    assert torch.equal(s["mask"][0], want)
    assert spair_mask("2008_000001").sum() == want.sum()


def test_pairs_link_the_right_images_and_shared_keypoints(root):
    pairs = SpairPairs(root, "test", category="aeroplane")
    assert len(pairs) == 2
    p = pairs[0]
    assert p["pair"] == "000002-2008_000002-2008_000003:aeroplane"
    assert (p["source"]["imname"], p["target"]["imname"]) == ("2008_000002", "2008_000003")
    assert p["kps_ids"].tolist() == [1, 3]  # 0 is hidden in the target, 2 in the source
    assert bool((p["source"]["keypoints"][p["kps_ids"], 2] == 1).all())
    assert (p["viewpoint_variation"], p["occlusion"]) == (1, 2)
    assert len(SpairPairs(root, "trn")) == 1


def test_per_category_split_and_layout_check(root):
    split = category_split(root, "test")
    assert split == {"aeroplane": [n for n, v in SPAIR_PAIRS.items() if v[0] == "test"], "bus": [SPAIR_EXTRA_TEST]}
    assert pair_names(root / "spair" / "SPair-71k", "test", "bus") == [SPAIR_EXTRA_TEST]
    summary = check_spair(root)
    assert (summary["trn"], summary["val"], summary["test"], summary["images"]) == (1, 0, 3, 3)


def test_bad_arguments_and_missing_files_are_named(root, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        SpairPairs(root, "train")
    with pytest.raises(ValueError, match="category must be one of"):
        SpairImages(root, "plane")
    with pytest.raises(ValueError, match="not among"):
        SpairImages(root, "aeroplane").index_of("2010_000001")
    with pytest.raises(LayoutError, match="SPair-71k folder"):
        check_spair(tmp_path)
