"""CUB-200-2011 + CMR reader against fixtures in the official layouts (.mat written in CMR's structure)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from fixtures_real import CONV_TRI, CUB_IMAGES, build_cub, build_cub_data_root, cub_image, cub_mask, cub_parts
from torch.utils.data import DataLoader

from csmlab.data.real.crop import hflip_sample, square_crop_window
from csmlab.data.real.cub import CUB_FLIP_PERM, CUB_KEYPOINT_NAMES, CubDataset, sfm_mean_shape
from csmlab.data.real.layout import LayoutError, check_cub
from csmlab.data.sample import validate_sample
from csmlab.geometry import OrthoCamera, ndc_to_pixel

K = {name: i for i, name in enumerate(CUB_KEYPOINT_NAMES)}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_cub_data_root(tmp_path_factory.mktemp("data"))


def _projected(sample, verts, size):
    cam = OrthoCamera.from_dict(sample["camera"])
    return ndc_to_pixel(cam.project(verts[None])[0], size, size)


def test_crop_and_keypoints_match_the_hand_computation(root):
    # Image 1: CUB box x=11, y=6, w=20, h=10 -> CMR bbox (11, 6, 30, 15) -> 0-based (10, 5, 29, 14).
    # Padding 5%: x by 1 -> 9..30, y by 0.5 -> 4.5..14.5 -> rounded half away 5..15: 22 x 11.
    # Square: size 22, rows grow by round(11 / 2 = 5.5) = 6 above -> window x0 = 9, y0 = -1, size 22.
    assert square_crop_window((10, 5, 29, 14), 0.05) == (9, -1, 22)
    s = CubDataset(root, "train", img_size=11)[0]  # scale 11 / 22 = 0.5
    # The beak is at MATLAB (21, 11) = pixel centre (20.5, 10.5) -> ((20.5 - 9) * 0.5, (10.5 + 1) * 0.5).
    assert s["keypoints"][K["beak"]].tolist() == [5.75, 5.75, 1.0]
    parts = cub_parts(1)[0]
    for k in range(15):
        if parts[2, k] > 0:
            expected = [(parts[0, k] - 0.5 - 9) * 0.5, (parts[1, k] - 0.5 + 1) * 0.5, 1.0]
            assert s["keypoints"][k].tolist() == pytest.approx(expected, abs=1e-5)
        else:
            assert s["keypoints"][k].tolist() == [0.0, 0.0, 0.0]
    assert s["bbox"].tolist() == [0.5, 3.0, 10.5, 8.0]  # edges (10, 5)-(30, 15) in the crop
    assert s["crop_box"].tolist() == [9.0, -1.0, 31.0, 21.0]


def test_crop_pixels_land_where_they_should_and_the_outside_is_white(root):
    s = CubDataset(root, "train", img_size=22)[0]  # scale 1: an exact copy of the window
    img, mask = cub_image(1).astype(np.float32) / 255, cub_mask(1).astype(np.float32)
    assert torch.equal(s["image"][:, 1:, :], torch.from_numpy(img[0:21, 9:31]).permute(2, 0, 1))
    assert torch.all(s["image"][:, 0, :] == 1.0)  # row y = -1 is outside the picture: white
    assert torch.equal(s["mask"][0, 1:, :], torch.from_numpy(mask[0:21, 9:31]))
    assert torch.all(s["mask"][0, 0, :] == 0.0)


def test_cub_text_files_and_cmr_mat_files_give_the_same_samples(root):
    cmr, cub = CubDataset(root, "train", img_size=32), CubDataset(root, "train", img_size=32, annotations="cub")
    assert len(cmr) == len(cub) == 2
    for a, b in zip(cmr, cub):
        assert a["rel_path"] == b["rel_path"] and a["class_id"] == b["class_id"]
        assert torch.equal(a["image"], b["image"]) and torch.allclose(a["keypoints"], b["keypoints"], atol=1e-5)
        assert "mask" not in b and "camera" not in b  # CUB's own files have neither: nothing invented
    test = CubDataset(root, "test", annotations="cub")
    assert [r["rel_path"] for r in test.records] == [CUB_IMAGES[2][0]]
    grey = cmr[1]["image"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # greyscale file read as RGB


@pytest.mark.parametrize("split, size, jitter", [("train", 64, 0.0), ("train", 50, 0.05), ("val", 40, 0.0),
                                                 ("testval", 33, 0.0)])
def test_the_sfm_camera_projects_the_mean_shape_onto_the_keypoints(root, split, size, jitter):
    verts, _ = sfm_mean_shape(root)
    ds = CubDataset(root, split, img_size=size, jitter_frac=jitter)
    for s in ds:
        vis = s["keypoints"][:, 2] > 0
        err = (_projected(s, verts, size)[vis] - s["keypoints"][vis, :2]).abs().max()
        assert err < 1e-3, f"{split} {s['rel_path']}: reprojection error {err:.2e} px"


def test_flipping_swaps_the_named_left_and_right_parts(root):
    s = CubDataset(root, "train", img_size=40)[0]
    f = hflip_sample(s, CUB_FLIP_PERM)
    for left, right in (("left eye", "right eye"), ("left leg", "right leg"), ("left wing", "right wing")):
        for a, b in ((left, right), (right, left)):
            if s["keypoints"][K[b], 2] > 0:
                assert f["keypoints"][K[a]].tolist() == pytest.approx(
                    [40 - s["keypoints"][K[b], 0].item(), s["keypoints"][K[b], 1].item(), 1.0])
            else:
                assert f["keypoints"][K[a]].tolist() == [0, 0, 0]
    assert f["keypoints"][K["left leg"], 2] == 0  # image 1 hides its right leg: the mirror hides the left
    assert f["keypoints"][K["beak"]].tolist() == pytest.approx([40 - 5.75 * 40 / 11, 5.75 * 40 / 11, 1.0])
    assert torch.equal(f["image"], s["image"].flip(-1)) and f["flipped"]
    verts, _ = sfm_mean_shape(root)  # a mirror-symmetric mean shape: the mirrored camera must still fit
    vis = f["keypoints"][:, 2] > 0
    assert (_projected(f, verts, 40)[vis] - f["keypoints"][vis, :2]).abs().max() < 1e-3
    back = hflip_sample(f, CUB_FLIP_PERM)
    assert torch.allclose(back["keypoints"], s["keypoints"]) and torch.allclose(back["bbox"], s["bbox"])


def test_augmentation_is_repeatable_and_changes_with_the_epoch(root):
    ds = CubDataset(root, "train", img_size=24, jitter_frac=0.05, random_flip=True, seed=3)
    a, b = ds[0], ds[0]
    assert torch.equal(a["image"], b["image"]) and a["flipped"] == b["flipped"]
    windows = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        windows.add(tuple(ds[0]["crop_box"].tolist()))
    assert len(windows) > 1
    flips = {CubDataset(root, "train", img_size=8, random_flip=True, seed=s)[0]["flipped"] for s in range(8)}
    assert flips == {True, False}


def test_the_mean_shape_is_in_the_canonical_frame(root):
    verts, faces = sfm_mean_shape(root)
    assert verts.shape == (15, 3) and torch.equal(faces, torch.from_numpy(CONV_TRI.astype(np.int64) - 1))
    assert verts[K["beak"], 2] > verts[K["tail"], 2]   # front is +z
    assert verts[K["back"], 1] > verts[K["belly"], 1]  # up is +y
    assert verts[K["left eye"], 0] > 0 > verts[K["right eye"], 0]  # a rotation leaves the anatomical left at +x
    mirrored = verts[list(CUB_FLIP_PERM)] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(mirrored, verts, atol=1e-6)


def test_samples_follow_the_contract_and_batch(root):
    ds = CubDataset(root, "train", img_size=16)
    for s in ds:
        validate_sample(s)
        assert s["category"] == "bird" and s["mask"].min() >= 0 and s["mask"].max() <= 1
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["camera"]["quat"].shape == (2, 4)


def test_errors_name_what_is_wrong(root, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        CubDataset(root, "val", annotations="cub")
    with pytest.raises(ValueError, match="annotations must be"):
        CubDataset(root, "train", annotations="cmr2")
    bare = tmp_path / "bare"
    build_cub(bare / "cub")
    with pytest.raises(ValueError, match="cachedir.tar.gz"):
        CubDataset(bare, "train")
    with pytest.raises(ValueError, match="no CUB images folder"):
        CubDataset(tmp_path / "empty", "train")
    broken = tmp_path / "broken"
    shutil.copytree(root / "cub", broken / "cub")
    shutil.copy(broken / "cub/cachedir/cub/sfm/anno_val.mat", broken / "cub/cachedir/cub/sfm/anno_train.mat")
    with pytest.raises(ValueError, match="1 cameras but train_cub_cleaned.mat has 2 images"):
        CubDataset(broken, "train")


def test_layout_check_counts_and_catches_truncated_annotation_files(root, tmp_path):
    summary = check_cub(root)
    assert (summary["images"], summary["train"], summary["test"]) == (3, 2, 1)
    assert summary["cmr_dir"].endswith("cachedir/cub") and summary["cmr_testval"]
    stub = tmp_path / "stub"
    shutil.copytree(root / "cub", stub / "cub")
    (stub / "cub/cachedir/cub/data/val_cub_cleaned.mat").write_bytes(b"x" * 45)  # what CMR's first host served
    with pytest.raises(LayoutError, match=r"\(45 bytes\) is not a MAT file"):
        check_cub(stub)
    shutil.rmtree(stub / "cub/cachedir")
    assert "cmr_dir" not in check_cub(stub, require_cmr=False)
    with pytest.raises(LayoutError, match="cachedir.tar.gz"):
        check_cub(stub)
    (stub / "cub/CUB_200_2011/images" / CUB_IMAGES[3][0]).unlink()
    with pytest.raises(LayoutError, match="1 of 3 images"):
        check_cub(stub, require_cmr=False)
