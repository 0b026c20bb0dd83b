"""CSM's camera encoder option: the ImageNet ResNet-18 of the paper's recipe (csmlab.nets), offline."""

import importlib

import pytest
import torch

from csmlab.geometry import Mesh, icosphere, sphere_to_uv
from csmlab.methods.csm.fit import build_model
from csmlab.methods.csm.network import ResNet18Trunk
from csmlab.methods.csm.presets import get_config
from csmlab.nets import WeightsNotFound, imagenet_normalize, resnet18

torch.set_num_threads(1)
csm_fit = importlib.import_module("csmlab.methods.csm.fit")   # the module (the package exports a function `fit`)


def _template():
    s = icosphere(2)
    return Mesh(s.verts * torch.tensor([0.45, 0.35, 0.9]), s.faces), sphere_to_uv(s.verts)


def _cfg(**kw):
    return get_config("smoke", camera_encoder="resnet18", **kw)


def test_smoke_and_medium_train_from_scratch_and_full_uses_the_imagenet_resnet18():
    for scale in ("smoke", "medium"):
        cfg = get_config(scale)
        assert (cfg["camera_encoder"], cfg["encoder_weights"]) == ("convs", None)
    full = get_config("full")
    assert (full["camera_encoder"], full["encoder_weights"]) == ("resnet18", "imagenet")


def test_the_resnet18_camera_encoder_gets_the_official_weights(tmp_path, monkeypatch):
    torch.manual_seed(5)
    official = resnet18().state_dict()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(official, path)
    asked = []
    monkeypatch.setattr(csm_fit, "fetch_weights", lambda name: asked.append(name) or path)
    mesh, vuv = _template()
    model = build_model(_cfg(encoder_weights="imagenet"), mesh, vuv, load_encoder_weights=True)
    assert asked == ["resnet18"]
    trunk = model.camera.encoder
    assert isinstance(trunk, ResNet18Trunk)
    assert all(torch.equal(trunk.resnet.state_dict()[k], v) for k, v in official.items())
    img = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(trunk.eval()(img), trunk.resnet(imagenet_normalize(img))["s32"])
        out = model.eval()(img)
    assert out["quat"].shape == (2, 4, 4) and out["prob"].shape == (2, 4) and out["uv"].shape == (2, 2, 64, 64)
    # rebuilding a trained model (load_pretrained) never fetches: its weights come from the CSM file
    build_model(_cfg(encoder_weights="imagenet"), mesh, vuv)
    assert asked == ["resnet18"]


def test_offline_without_the_file_the_full_recipe_says_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("CSMLAB_DATA", str(tmp_path))
    monkeypatch.setenv("CSMLAB_NO_DOWNLOAD", "1")
    mesh, vuv = _template()
    with pytest.raises(WeightsNotFound, match="resnet18-f37072fd.pth does not exist.*download.pytorch.org"):
        build_model(_cfg(encoder_weights="imagenet"), mesh, vuv, load_encoder_weights=True)


def test_encoder_options_are_checked():
    mesh, vuv = _template()
    with pytest.raises(ValueError, match="encoder_weights"):
        build_model(get_config("smoke", encoder_weights="imagenet"), mesh, vuv)
    with pytest.raises(ValueError, match="encoder must be one of"):
        build_model(get_config("smoke", camera_encoder="vgg"), mesh, vuv)
