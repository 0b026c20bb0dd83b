"""PASCAL3D+ reader against a fixture in the release-1.1 layout (record .mat files via scipy.io.savemat)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from fixtures_real import build_pascal3d, p3d_image
from torch.utils.data import DataLoader

from csmlab.data.real.layout import LayoutError, check_pascal3d
from csmlab.data.real.pascal3d import Pascal3DDataset, read_objects
from csmlab.data.sample import validate_sample


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_pascal3d(root / "pascal3d")
    return root


def test_objects_are_filtered_like_cmr_and_read_with_their_viewpoints(root):
    ds = Pascal3DDataset(root, "car", "train", img_size=22)
    assert [(r["source"], r["image_id"]) for r in ds.records] == [("pascal", "2008_000001"),
                                                                  ("imagenet", "n02958343_1")]
    assert ds.skipped == {"truncated": 1, "occluded": 0, "difficult": 0, "no fine viewpoint": 1}
    s = ds[0]
    assert {k: round(v.item(), 6) for k, v in s["viewpoint"].items()} == {
        "azimuth": round(math.radians(30), 6), "elevation": round(math.radians(10), 6),
        "theta": round(math.radians(-5), 6), "distance": 5.0}
    assert s["cad_index"] == 2 and s["category"] == "car" and s["index"] == 0  # 1-based 3 in the file
    assert ds[1]["cad_index"] == 1 and ds[1]["viewpoint"]["azimuth"].item() == pytest.approx(math.radians(-45))


def test_the_crop_is_cmrs_square_around_the_padded_box(root):
    s = Pascal3DDataset(root, "car", "train", img_size=22)[0]
    # bbox (11, 6, 30, 15), as the CUB hand computation: window x0 = 9, y0 = -1, size 22, scale 1.
    assert s["crop_box"].tolist() == [9.0, -1.0, 31.0, 21.0]
    assert s["bbox"].tolist() == [1.0, 6.0, 21.0, 16.0]  # pixel edges: columns 10..29 -> 10..30, minus 9
    img = p3d_image("2008_000001", 30, 40).astype(np.float32) / 255
    assert torch.equal(s["image"][:, 1:, :], torch.from_numpy(img[0:21, 9:31]).permute(2, 0, 1))
    assert torch.all(s["image"][:, 0, :] == 1.0)
    big = Pascal3DDataset(root, "car", "train", img_size=44)[0]  # scale 2
    assert big["bbox"].tolist() == [2.0, 12.0, 42.0, 32.0]


def test_filters_can_be_relaxed_and_splits_and_subsets_chosen(root):
    assert len(Pascal3DDataset(root, "car", "train", keep_truncated=True)) == 3
    val = Pascal3DDataset(root, "car", "val")
    assert [r["image_id"] for r in val.records] == ["2008_000002"]
    assert val[0]["viewpoint"]["azimuth"].item() == pytest.approx(math.radians(200))
    assert len(Pascal3DDataset(root, "car", "train", subset="imagenet")) == 1
    planes = Pascal3DDataset(root, "aeroplane", "train")
    assert [r["source"] for r in planes.records] == ["pascal", "imagenet"]


def test_read_objects_keeps_only_the_class_and_its_flags(root):
    path = root / "pascal3d/PASCAL3D+_release1.1/Annotations/car_pascal/2008_000001.mat"
    filename, objects = read_objects(path, "car")
    assert filename == "2008_000001.jpg"
    assert [o["record_index"] for o in objects] == [0, 2]  # the person (index 1) is not a car
    assert [o["truncated"] for o in objects] == [False, True]
    assert objects[0]["bbox"] == (11.0, 6.0, 30.0, 15.0)
    _, coarse = read_objects(path.parents[1] / "car_imagenet" / "n02958343_2.mat", "car")
    assert coarse[0]["viewpoint"]["azimuth"] is None and coarse[0]["viewpoint"]["distance"] == 0.0


def test_samples_follow_the_contract_and_batch(root):
    ds = Pascal3DDataset(root, "car", "train", img_size=16)
    for s in ds:
        validate_sample(s)
        assert "keypoints" not in s and "mask" not in s and "camera" not in s  # not read: nothing invented
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["viewpoint"]["theta"].shape == (2,)


def test_errors_and_layout_check(root, tmp_path):
    with pytest.raises(ValueError, match="category must be one of"):
        Pascal3DDataset(root, "cat")
    with pytest.raises(ValueError, match="split must be"):
        Pascal3DDataset(root, "car", "test")
    with pytest.raises(ValueError, match="no PASCAL3D\\+ Annotations folder"):
        Pascal3DDataset(tmp_path, "car")
    assert check_pascal3d(root) == {"pascal3d_dir": str(root / "pascal3d/PASCAL3D+_release1.1"),
                                    "car_pascal": 2, "car_imagenet": 2, "aeroplane_pascal": 1,
                                    "aeroplane_imagenet": 1}
    broken = tmp_path / "broken"
    shutil.copytree(root / "pascal3d", broken / "pascal3d")
    (broken / "pascal3d/PASCAL3D+_release1.1/Image_sets/car_imagenet_train.txt").unlink()
    with pytest.raises(ValueError, match="imagenet train list is missing"):
        Pascal3DDataset(broken, "car", "train")
    with pytest.raises(LayoutError, match="ImageNet train list for car"):
        check_pascal3d(broken)
