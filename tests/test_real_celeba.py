"""CelebA with Unsup3D's crop: replicated borders, the 128 crop then 64, splits; no depth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_real import save_png
from fixtures_real2 import CELEBA_ROWS, build_celeba, celeba_image
from PIL import Image

from csmlab.data.real.celeba import CelebaDataset, replicate_crop
from csmlab.data.real.layout import LayoutError
from csmlab.data.real.layout_wave2 import check_celeba
from csmlab.data.sample import validate_sample


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_celeba(root / "celeba")
    return root


def test_replicate_crop_matches_cv2_border_replicate_by_hand():
    img = np.arange(4 * 5).reshape(4, 5, 1)
    out = replicate_crop(img, -2, 1, 3, 2)[..., 0]
    assert out.tolist() == [[5, 5, 5], [10, 10, 10]]  # columns -2, -1 repeat column 0
    out = replicate_crop(img, 3, 3, 3, 2)[..., 0]
    assert out.tolist() == [[18, 19, 19], [18, 19, 19]]  # past the right and bottom edges
    with pytest.raises(ValueError, match="padded by"):
        replicate_crop(img, -4, 0, 3, 2)


def test_samples_are_the_papers_crop_at_64(root):
    ds = CelebaDataset(root, "train")
    assert len(ds) == 2 and [ds[i]["filename"] for i in range(2)] == ["000001.jpg", "000002.jpg"]
    s = validate_sample(ds[0])
    assert s["image"].shape == (3, 64, 64)
    assert set(s) == {"image", "category", "index", "filename", "flipped"}  # no depth, mask or keypoints
    _, _, _, x0, y0, w, h = CELEBA_ROWS["000001.jpg"]
    crop = celeba_image("000001.jpg")[y0:y0 + h, x0:x0 + w]
    step128 = np.asarray(Image.fromarray(crop).resize((128, 128), Image.BILINEAR))
    want = np.asarray(Image.fromarray(step128).resize((64, 64), Image.BILINEAR)).astype(np.float32) / 255
    assert torch.allclose(s["image"], torch.from_numpy(want).permute(2, 0, 1), atol=1e-6)
    assert len(CelebaDataset(root, "test")) == 1 and len(CelebaDataset(root, "val")) == 0


def test_a_box_leaving_the_image_repeats_its_border(root):
    s = CelebaDataset(root, "train", image_size=128)[1]  # 000002: x0 = -8, so 8 of 30 columns are column 0
    left = s["image"][:, :, :30]  # 8/30 of 128 = 34 columns are the replicated edge
    assert torch.allclose(left, left[:, :, :1].expand_as(left), atol=1e-6)


def test_the_cropped_folder_of_the_authors_script_is_read_too(tmp_path):
    save_png(np.full((128, 128, 3), 200, dtype=np.uint8), tmp_path / "celeba" / "celeba_cropped" / "val" / "a.jpg")
    s = CelebaDataset(tmp_path, "val", source="cropped")[0]
    assert s["image"].shape == (3, 64, 64) and torch.allclose(s["image"], torch.tensor(200 / 255))


def test_flip_and_checks(root, tmp_path):
    a = CelebaDataset(root, "train")[0]["image"]
    flipped = [CelebaDataset(root, "train", random_flip=True, seed=k)[0] for k in range(8)]
    assert any(f["flipped"] for f in flipped) and not all(f["flipped"] for f in flipped)
    assert all(torch.equal(f["image"], a.flip(-1) if f["flipped"] else a) for f in flipped)
    assert check_celeba(root) == {"celeba_dir": str(root / "celeba"), "train": 2, "val": 0, "test": 1}
    with pytest.raises(LayoutError):
        check_celeba(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        CelebaDataset(root, "testing")
