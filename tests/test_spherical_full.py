"""The full-scale recipe's code path (SPair-71k reader, ViT tokens, training step, KAP/PCK per category) on the
SPair fixture with a tiny random ViT, on the CPU; the real run needs the data, DINOv2-B/14 and a GPU."""

import pytest
import torch
from fixtures_real2 import build_spair

from csmlab.methods.spherical import full, spherical_preset
from csmlab.nets import DinoViT


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_spair(root / "spair")
    return root


def test_full_recipe_runs_on_the_fixture(root):
    torch.manual_seed(0)
    vit = DinoViT(embed_dim=64, depth=1, num_heads=1, img_size=112).eval()
    for p in vit.parameters():
        p.requires_grad_(False)
    cfg = spherical_preset("full", resolution=112, feat_dim=64, epochs=1, batch_size=2)
    model, _ = full.train_full(cfg, root, device="cpu", progress=False, backbone=vit)
    out = full.evaluate_full(model, vit, root, device="cpu", progress=False, categories=["aeroplane"], img_size=112)
    assert set(out) == {"aeroplane", "weighted"}
    for key in ("pck@0.1", "pck@0.05", "kap@0.1"):
        assert 0.0 <= out["aeroplane"][key] <= 1.0
    assert out["weighted"] == out["aeroplane"]


def test_requirements_name_what_is_missing(tmp_path):
    miss = full.requirements(tmp_path)
    assert any("SPair-71k" in m for m in miss) and any("dinov2_vitb14" in m for m in miss)
    with pytest.raises(ValueError, match="missing"):
        full.train_full(spherical_preset("full"), tmp_path, device="cpu")
