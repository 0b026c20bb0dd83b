"""Unsup3D synface reader: pairing, the paper's centre crop 170 + resize 64, and the depth mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_real import SYNFACE_SPLITS, build_synface, random_image, save_png, synface_pair
from torch.utils.data import DataLoader

from csmlab.data.real.layout import LayoutError, check_synface
from csmlab.data.real.synface import SynfaceDataset, centre_crop
from csmlab.data.sample import validate_sample


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_synface(root / "synface")
    return root


def test_pairs_follow_the_image_to_depth_file_name_rule(root):
    ds = SynfaceDataset(root, "train")
    assert len(ds) == SYNFACE_SPLITS["train"] and ds.unpaired == 1  # 999999_image.png has no depth
    image, depth = ds.pairs[0]
    assert (image.name, depth.name) == ("000000_image.png", "000000_depth.png")
    assert image.parent.name == "image" and depth.parent.name == "depth"
    assert ds[0]["rel_path"] == "train/image/000000_image.png"
    assert [len(SynfaceDataset(root, s)) for s in ("val", "test")] == [1, 2]


def test_centre_crop_170_takes_the_middle_of_a_256_image(root):
    s = SynfaceDataset(root, "test", image_size=170)[1]  # no resize: the crop itself
    image, depth = synface_pair("test", 1)
    assert torch.equal(s["image"], torch.from_numpy(image[43:213, 43:213].astype(np.float32) / 255).permute(2, 0, 1))
    x = torch.from_numpy(depth[43:213, 43:213, 0].astype(np.float32) / 255)
    assert torch.allclose(s["depth"][0], (1 - x) * 1.1 + x * 0.9)
    assert torch.allclose(s["depth"][0, 57:97, 67:107], torch.tensor(0.9))  # the white square: nearest
    assert centre_crop(np.zeros((255, 300, 3)), 170).shape[:2] == (170, 170)


def test_resize_to_64_keeps_features_where_the_geometry_says(tmp_path):
    d = tmp_path / "synface" / "synface" / "val"
    depth = np.zeros((256, 256, 3), dtype=np.uint8)
    depth[150:170, 60:90] = 255  # a near block; centre (x, y) = (75, 160) in the 256 image
    save_png(random_image(256, 256, 0), d / "image" / "a_image.png")
    save_png(depth, d / "depth" / "a_depth.png")
    s = SynfaceDataset(tmp_path, "val")[0]
    assert s["image"].shape == (3, 64, 64) and s["depth"].shape == (1, 64, 64)
    near = (1.1 - s["depth"][0]) / 0.2  # 1 on the block, 0 on the black background
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    centroid = torch.stack([(near * xs).sum(), (near * ys).sum()]) / near.sum()
    expected = (torch.tensor([75.0, 160.0]) - 43) * 64 / 170
    assert torch.allclose(centroid, expected, atol=0.3), (centroid, expected)
    assert near.sum().item() == pytest.approx(20 * 30 * (64 / 170) ** 2, rel=0.02)  # area scales too


def test_depth_range_follows_the_config(root):
    s = SynfaceDataset(root, "train", image_size=170, min_depth=1.0, max_depth=2.0)[0]
    _, depth = synface_pair("train", 0)
    x = torch.from_numpy(depth[43:213, 43:213, 0].astype(np.float32) / 255)
    assert torch.allclose(s["depth"][0], 2.0 - x)


def test_random_flip_mirrors_image_and_depth_together_repeatably(root):
    plain = SynfaceDataset(root, "train")
    flips = []
    for seed in range(6):
        ds = SynfaceDataset(root, "train", random_flip=True, seed=seed)
        s = ds[0]
        assert torch.equal(ds[0]["image"], s["image"])
        if s["flipped"]:
            assert torch.equal(s["image"], plain[0]["image"].flip(-1))
            assert torch.equal(s["depth"], plain[0]["depth"].flip(-1))
        flips.append(s["flipped"])
    assert set(flips) == {True, False}


def test_samples_follow_the_contract_and_batch(root):
    ds = SynfaceDataset(root, "train")
    for s in ds:
        validate_sample(s)
        assert s["category"] == "face" and "mask" not in s  # the release has no masks: none invented
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["depth"].shape == (3, 1, 64, 64)


def test_errors_and_layout_check(root, tmp_path):
    with pytest.raises(ValueError, match="split must be"):
        SynfaceDataset(root, "training")
    with pytest.raises(ValueError, match="crop 300 needs an image at least"):
        SynfaceDataset(root, "val", crop=300)[0]
    with pytest.raises(ValueError, match="synface folder .* is missing"):
        SynfaceDataset(tmp_path, "train")
    assert check_synface(root) == {"synface_dir": str(root / "synface" / "synface"), "train": 4, "val": 1, "test": 2}
    with pytest.raises(LayoutError, match="synface train/image is missing"):
        check_synface(tmp_path)
