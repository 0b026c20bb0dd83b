"""CSM's pictures (colour map, explorer logic, tables) and its small pretrained files."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from csmlab.geometry import Mesh, icosphere, sphere_to_uv
from csmlab.methods.csm.network import CSMNet
from csmlab.methods.csm.presets import get_config
from csmlab.methods.csm.pretrained import downsample_history, load_pretrained, save_pretrained
from csmlab.methods.csm.uvmap import TemplateUV
from csmlab.train import History
from csmlab.viz import csm as vcsm

matplotlib.use("Agg")


class _Category:
    def __init__(self):
        s = icosphere(1)
        self.template = Mesh(s.verts * torch.tensor([0.5, 0.4, 1.0]), s.faces)
        self.template_uv = sphere_to_uv(s.verts)
        self.vertex_flip = None


def test_uv_colours_are_continuous_across_the_seam_and_grey_at_the_poles():
    v = torch.linspace(0.05, 0.95, 7)
    left = vcsm.uv_to_rgb(torch.stack([torch.full_like(v, 1e-4), v], -1))
    right = vcsm.uv_to_rgb(torch.stack([torch.full_like(v, 1 - 1e-4), v], -1))
    assert (left - right).abs().max() < 0.01
    poles = vcsm.uv_to_rgb(torch.tensor([[0.1, 0.0], [0.7, 0.0], [0.2, 1.0], [0.9, 1.0]]))
    assert torch.allclose(poles[0], poles[1], atol=1e-6) and torch.allclose(poles[2], poles[3], atol=1e-6)
    assert ((poles >= 0) & (poles <= 1)).all()
    assert vcsm.uv_legend(8).shape == (3, 8, 16)
    with pytest.raises(ValueError, match="uv"):
        vcsm.uv_to_rgb(torch.zeros(3, 3))


def test_explorer_matches_the_nearest_template_point():
    points = torch.zeros(2, 3, 4, 4)
    points[1, :, 2, 3] = torch.tensor([0.5, 0.5, 0.5])                 # image B has the point at pixel (x=3, y=2)
    points[0, :, 1, 1] = torch.tensor([0.5, 0.5, 0.4])
    masks = torch.ones(2, 1, 4, 4)
    tuv = TemplateUV(_Category().template, _Category().template_uv, grid=(8, 16))
    ex = vcsm.CorrespondenceExplorer(torch.rand(2, 3, 4, 4), points, masks, tuv, pair=(0, 1), pixel=(1, 1),
                                     show_3d=False)
    assert ex.result["match_xy"] == (3.5, 2.5) and ex.result["distance"] == pytest.approx(0.1, abs=1e-6)
    masks[1, 0, 2, 3] = 0                                                # B's matching pixel becomes background
    assert ex.select(1, 1, 0, 1)["match_xy"] != (3.5, 2.5)
    with pytest.raises(ValueError, match="pixel"):
        ex.select(9, 0)


def test_metrics_table_and_figures_build():
    table = vcsm.metrics_table({"a": {"pck": 0.5, "n": 3}, "b": {"pck": 0.25}}, ["pck", "n"])
    assert table.splitlines()[2] == "| a | 0.500 | 3 |" and table.splitlines()[3] == "| b | 0.250 |  |"
    hist = History()
    for i in range(30):
        hist.log(i, {"cycle": 1.0 / (i + 1), "entropy": -0.1})
    assert vcsm.plot_losses(hist, ["cycle", "entropy", "missing"]) is not None
    assert vcsm.plot_hypotheses(torch.softmax(torch.randn(4, 3), -1), n=2) is not None
    fig = vcsm.plot_azimuths(torch.tensor([10.0, 170.0, -90.0]), torch.tensor([10.0, 190.0, 90.0]))
    dots = fig.axes[0].collections[0].get_offsets()
    assert np.allclose(dots, [[10, 10], [170, -170], [-90, 90]])       # wrapped to [-180, 180)
    with pytest.raises(ValueError, match="same length"):
        vcsm.plot_azimuths(torch.zeros(3), torch.zeros(2))


def test_pretrained_round_trip_is_small_and_exact_to_float16(tmp_path):
    category = _Category()
    cfg = get_config("smoke", unet_base=4, unet_depth=2, cam_base=4, cam_down=2, uv_grid=(8, 16))
    model = CSMNet(TemplateUV(category.template, category.template_uv, (8, 16)), n_hypotheses=4, unet_base=4,
                   unet_depth=2, cam_base=4, cam_down=2, init_scale=0.77)
    hist = History()
    for i in range(1000):
        hist.log(i, {"cycle": float(i)})
    path = save_pretrained(tmp_path / "m.pt", model, cfg, {"transfer_pck": 0.5}, hist, "cmd")
    loaded, info = load_pretrained(path, category)
    img = torch.rand(2, 3, 16, 16)
    a, b = model.eval()(img), loaded(img)
    assert torch.allclose(a["sphere"], b["sphere"], atol=2e-2) and torch.allclose(a["prob"], b["prob"], atol=1e-2)
    assert loaded.camera.init_scale == pytest.approx(0.77)
    assert info["metrics"] == {"transfer_pck": 0.5} and info["command"] == "cmd"
    assert len(info["history"]["cycle"]) <= 300 and info["history"].steps("cycle")[-1] == 999
    assert math.isclose(sum(downsample_history(hist, 10)["values"]["cycle"]) / 10, 499.5)
    with pytest.raises(ValueError, match="CSM pretrained"):
        torch.save({"format": "other"}, tmp_path / "x.pt")
        load_pretrained(tmp_path / "x.pt", category)
