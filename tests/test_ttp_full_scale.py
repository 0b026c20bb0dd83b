"""``python -m csmlab.methods.ttp --scale full`` on the CUB fixture (official layouts), and its pieces.

The full recipe's data path: CUB read lazily with CMR's jitter, CMR's SfM mean bird as the template,
TTP's evaluation (mask IoU, keypoint PCK@0.1 over the box's longer side, per keypoint, then the mean).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures_real import build_cub_data_root

from csmlab.methods.ttp import fit_e2e, full_scale, presets
from csmlab.methods.ttp.model import TTPNet

ROOT = Path(__file__).resolve().parents[1]
TINY = ['device="cpu"', "resolution=32", "render_resolution=32", "vis_resolution=32", "dt_resolution=16", "iters=3",
        "batch_size=2", "n_basis=2", "width=4", "feat_dim=16", "def_steps=1", "lbfgs_iters=2", "polish_steps=1",
        'encoder="convs"', "encoder_weights=null"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return build_cub_data_root(tmp_path_factory.mktemp("data"))


def test_the_cub_template_keeps_the_keypoints_mirror_pairs(data_root):
    bird = full_scale.cub_category(data_root)
    kv = fit_e2e.keypoint_vertices(bird)
    assert kv.shape == (15,) and len(set(kv.tolist())) == 15, "one distinct template vertex per CUB keypoint"
    assert torch.equal(bird.vertex_flip[bird.vertex_flip], torch.arange(bird.template.num_verts))
    # the mirror twin of a keypoint's vertex is the vertex of its mirrored keypoint (left eye <-> right eye, ...)
    assert torch.equal(bird.vertex_flip[kv], kv[bird.keypoint_flip])
    near = (bird.template.verts[kv] - bird.keypoints_template).norm(dim=-1)
    assert float(near.max()) < 0.25 * float(bird.template.verts.norm(dim=-1).max())


def test_keypoint_pck_is_per_keypoint_over_visible_images_on_the_longer_side():
    box = torch.tensor([[0.0, 0.0, 100.0, 40.0], [0.0, 0.0, 40.0, 100.0]])      # longer side 100 in both
    gt = torch.tensor([[[10.0, 10.0, 1.0], [50.0, 20.0, 1.0]],
                       [[10.0, 10.0, 1.0], [50.0, 20.0, 0.0]]])
    pred = torch.tensor([[[15.0, 10.0], [51.0, 20.0]],      # keypoint 0 off by 0.05 of the side: correct
                         [[30.0, 10.0], [90.0, 90.0]]])      # 0.2: wrong; keypoint 1 hidden here: not counted
    assert full_scale.keypoint_pck(pred, gt, box) == pytest.approx(0.75)   # (1/2 + 1/1) / 2
    with pytest.raises(ValueError, match="bbox must be"):
        full_scale.keypoint_pck(pred, gt, box[:1])
    with pytest.raises(ValueError, match="pred must be"):
        full_scale.keypoint_pck(pred[..., :1], gt, box)
    hidden = gt.clone()
    hidden[..., 2] = 0
    with pytest.raises(ValueError, match="no keypoint is visible"):
        full_scale.keypoint_pck(pred, hidden, box)


def test_the_resnet_encoder_regresses_a_point_per_vertex():
    verts = torch.randn(20, 3) * 0.3
    faces = torch.randint(0, 20, (30, 3))
    net = TTPNet(verts, faces, 2, 64, feat_dim=16, encoder="resnet18")
    out = net.correspondences(torch.rand(2, 3, 64, 64))
    assert out["points"].shape == (2, 20, 2) and out["visibility"].shape == (2, 20)
    with pytest.raises(ValueError, match="encoder must be one of"):
        TTPNet(verts, faces, 2, 64, encoder="vit")
    cfg = presets.get_config("smoke", encoder_weights="imagenet")
    with pytest.raises(ValueError, match="encoder_weights"):
        fit_e2e.build_model(cfg, full_scale.category_for(cfg))


def test_requirements_name_what_is_missing(data_root, tmp_path):
    cfg = presets.get_config("full")
    have = full_scale.requirements(cfg, data_root)
    assert not any("CUB-200-2011" in n for n in have)
    assert any("CUDA" in n for n in have) == (not torch.cuda.is_available())
    missing = full_scale.requirements(cfg, tmp_path)
    assert any("CUB-200-2011" in n and "prepare_cub.py" in n for n in missing)


def test_a_lazy_dataset_cannot_take_the_csm_taught_start(data_root):
    cfg = presets.get_config("full", **{k: json.loads(v) for k, v in (t.split("=", 1) for t in TINY)})
    train, _ = full_scale.cub_splits(cfg, data_root)
    with pytest.raises(ValueError, match="teacher"):
        fit_e2e.fit({**cfg, "teacher": "csm.pt"}, train, full_scale.cub_category(data_root), progress=False)


def test_full_scale_trains_and_scores_on_the_cub_fixture(data_root, tmp_path):
    env = {**os.environ, "CSMLAB_DATA": str(data_root), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    cmd = [sys.executable, "-m", "csmlab.methods.ttp", "--scale", "full", "--no-progress", "--out", str(tmp_path)]
    for item in TINY:
        cmd += ["--set", item]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data: 2 train / 1 test images" in done.stdout
    record = json.loads((tmp_path / "ttp_full.json").read_text())
    m = record["metrics"]["cub_test"]
    assert 0.0 <= m["mask_iou"] <= 1.0 and 0.0 <= m["keypoint_pck"] <= 1.0 and m["n_images"] == 1
    assert record["iterations"] == 3 and record["paper"]["source"]
    again = subprocess.run([sys.executable, "-m", "csmlab.methods.ttp", "--evaluate", str(tmp_path / "ttp_full.pt")],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "ttp_full.json").read_text())["metrics"]["cub_test"] == m
    assert "paper not verified" in again.stdout
