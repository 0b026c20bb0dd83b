"""The deformation path of end-to-end TTP: the authors' mask and deformation terms, the basis learning rate,
and the oracle-basis variant scored with the basis it trained with (tiny, CPU)."""

import pytest
import torch

from csmlab import render
from csmlab.data.synthetic import get_category, make_dataset
from csmlab.methods.ttp import evaluate_e2e as E
from csmlab.methods.ttp import fit_e2e
from csmlab.methods.ttp import losses as L
from csmlab.methods.ttp.presets import PRESETS, get_config


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    cat = get_category("birds")
    cfg = get_config("smoke", iters=2, n_train=16, n_test=8, n_pairs=20)
    data = make_dataset("birds", 8, 32, seed=3, progress=False)
    return cat, cfg, data


def _raster(cat, n=2, res=32):
    R = torch.eye(3).expand(n, 3, 3)
    verts = cat.template.verts.float()[None].expand(n, -1, -1)
    return L.render_solution(verts, cat.template.faces, {"rotation": R, "scale": torch.full((n,), 0.6),
                                                           "trans": torch.zeros(n, 2)}, res)


def test_mask_loss_is_the_authors_l1_by_default(setup):
    cat, _, data = setup
    r = _raster(cat)
    mask = data.batch(range(2))["mask"]
    sil = render.silhouette(r)
    l1 = (sil - mask).abs().mean()
    assert torch.allclose(L.mask_loss(r, mask), l1)
    assert torch.allclose(L.mask_loss(r, mask, "mse"), ((sil - mask) ** 2).mean())
    with pytest.raises(ValueError, match="kind"):
        L.mask_loss(r, mask, "l2")
    assert all(PRESETS[s]["mask_loss"] == "l1" for s in PRESETS)


def test_deformation_loss_averages_every_coordinate_like_the_authors():
    g = torch.Generator().manual_seed(0)
    T = torch.randn(10, 3, generator=g)
    V = T + torch.randn(4, 10, 3, generator=g)
    assert torch.allclose(L.deformation_loss(V, T), ((V - T) ** 2).mean())   # not the sum over xyz
    assert torch.allclose(3 * L.deformation_loss(V, T), ((V - T) ** 2).sum(-1).mean())


def test_basis_and_ridge_weight_get_their_own_learning_rate(setup):
    cat, cfg, _ = setup
    model = fit_e2e.build_model(cfg, cat)
    groups = fit_e2e.param_groups(model, {**cfg, "lr": 1e-4, "basis_lr": 1e-2})
    assert [g["lr"] for g in groups] == [1e-4, 1e-2]
    assert groups[1]["params"][0] is model.basis and groups[1]["params"][1] is model.log_reg
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())
    assert fit_e2e.param_groups(model, {**cfg, "lr": 1e-3, "basis_lr": None})[1]["lr"] == 1e-3


def test_oracle_basis_variant_is_scored_with_the_true_basis(setup):
    cat, cfg, data = setup
    model = fit_e2e.build_model(cfg, cat)
    with torch.no_grad():
        model.basis.zero_()   # the learned basis of an oracle run is never trained: only the true one moves V
        g = torch.Generator().manual_seed(0)   # points off the rigid template's projection: c != 0
        model.head.bias.add_(0.3 * torch.randn(model.head.bias.shape, generator=g))
    test = fit_e2e.stack_samples(data)
    plain = E.evaluate(model, test, cfg)
    oracle = E.evaluate(model, test, {**cfg, "oracle_basis": True})
    assert plain["shape_error"] == pytest.approx(plain["shape_error_template"], abs=1e-9)
    assert abs(oracle["shape_error"] - oracle["shape_error_template"]) > 1e-4
