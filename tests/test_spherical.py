"""Spherical Maps: the losses on hand-built sphere maps, the prototype, bad input (all fast)."""

import math

import pytest
import torch
import torch.nn.functional as F

from csmlab.methods.spherical import (
    SphericalMapModel,
    azimuth_bins,
    orientation_loss,
    prepare,
    prototype_loss,
    relative_distance_loss,
    spherical_preset,
    standin_features,
    viewpoint_loss,
)
from csmlab.methods.spherical.evaluate import score_pairs
from csmlab.methods.spherical.fit import flip_batch
from csmlab.methods.spherical.model import token_coords

GRID = (8, 8)


def _gnomonic(mirror: bool = False) -> torch.Tensor:
    """[1,64,3] a correctly oriented sphere map: image right -> +x, image down -> -y, facing +z."""
    rc = token_coords(GRID)[0] - 0.5                         # (row, col) in [-0.5, 0.5]
    x = -rc[:, 1] if mirror else rc[:, 1]
    return F.normalize(torch.stack([x, -rc[:, 0], torch.ones_like(x)], -1), dim=-1)[None]


def test_orientation_loss_zero_for_correct_map_positive_for_mirror():
    g = torch.Generator().manual_seed(0)
    good = orientation_loss(_gnomonic(), GRID, n_triplets=256, thresh=0.0, generator=g)
    bad = orientation_loss(_gnomonic(mirror=True), GRID, n_triplets=256, thresh=0.0,
                           generator=torch.Generator().manual_seed(0))
    assert float(good) == 0.0
    assert float(bad) > 0.1
    # the paper's threshold 1 also wants orthogonal tangents: the correct map still costs far less
    paper_good = orientation_loss(_gnomonic(), GRID, 256, 1.0, generator=torch.Generator().manual_seed(0))
    paper_bad = orientation_loss(_gnomonic(True), GRID, 256, 1.0, generator=torch.Generator().manual_seed(0))
    assert float(paper_good) < 0.2 < 2.0 < float(paper_bad)


def test_relative_distance_loss_prefers_a_faithful_map():
    faithful = relative_distance_loss(_gnomonic(), GRID, 256, 0.0, torch.Generator().manual_seed(0))
    shuffled = _gnomonic()[:, torch.randperm(64, generator=torch.Generator().manual_seed(1))]
    # the gnomonic map is not an isometry, so near-ties may swap: almost, not exactly, zero
    assert float(faithful) < 1e-3
    assert float(relative_distance_loss(shuffled, GRID, 256, 0.0, torch.Generator().manual_seed(0))) > 0.02


def test_prototype_loss_zero_when_prototype_reproduces_features():
    torch.manual_seed(0)
    model = SphericalMapModel(feat_dim=16)
    sph = _gnomonic().expand(2, -1, -1).contiguous()
    with torch.no_grad():
        feats = model.prototype(sph, torch.zeros(2, dtype=torch.long))
    mask = torch.ones(2, 64, dtype=torch.bool)
    assert float(prototype_loss(feats, feats.clone(), mask)) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        assert float(prototype_loss(feats, model.prototype(sph, torch.zeros(2, dtype=torch.long)), mask)) < 1e-6
    assert float(prototype_loss(-feats, feats, mask)) == pytest.approx(2.0, abs=1e-5)


def test_viewpoint_loss_zero_when_mean_vectors_turn_with_azimuth():
    bins = torch.tensor([0, 2, 4, 6])
    ang = bins.double() * 2 * math.pi / 8
    sph = torch.stack([ang.cos(), ang.sin(), torch.zeros_like(ang)], -1)[:, None].expand(-1, 5, -1)
    assert float(viewpoint_loss(sph, bins)) == pytest.approx(0.0, abs=1e-12)
    assert float(viewpoint_loss(sph, torch.tensor([0, 0, 4, 4]))) > 0.1


def test_flip_negates_the_azimuth_bin():
    quat = torch.tensor([[math.cos(0.6), 0.0, math.sin(0.6), 0.0]])          # a rotation about y
    mirrored = quat * torch.tensor([1.0, 1.0, -1.0, 1.0])                     # about y by the opposite angle
    b, bm = azimuth_bins(quat), azimuth_bins(mirrored)
    _, _, flipped = flip_batch(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool), b, 8,
                               torch.tensor([True]))
    assert int(flipped) == int(bm) != int(b)


def test_flip_feeds_the_features_of_the_mirrored_image():
    """A CNN is not flip-equivariant: a mirrored batch must carry net(mirrored image), not a flipped feature map."""
    from csmlab.methods.spherical import FeatureNet, fit
    from csmlab.methods.spherical.features import encode

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = FeatureNet(dim=8, width=8).eval()
        images = torch.rand(2, 3, 32, 32)
    masks = torch.zeros(2, 1, 32, 32)
    masks[..., 8:24, 4:20] = 1                                                 # off-centre: the flip moves it
    feats, feats_mirror = encode(net, images), encode(net, images.flip(-1))
    assert (feats.flip(-1) - feats_mirror).abs().max() > 1e-2                 # the bug fed the former
    data = prepare(feats, images, masks, torch.tensor([1, 5]), stride=4, feats_mirror=feats_mirror)
    f, m, b = flip_batch(data["feats"], data["token_mask"], data["azimuth_bin"], 8, torch.tensor([True, False]),
                         data["feats_mirror"])
    assert torch.equal(f[0], feats_mirror[0]) and torch.equal(f[1], feats[1])
    assert torch.equal(m[0], data["token_mask"][0].flip(-1)) and b.tolist() == [6, 5]
    cfg = spherical_preset("smoke", feat_dim=8, flip=True)
    no_mirror = {k: v for k, v in data.items() if k != "feats_mirror"}
    with pytest.raises(ValueError, match="feats_mirror"):
        fit(cfg, no_mirror, progress=False, iters=1)
    with pytest.raises(ValueError, match="feats_mirror"):
        prepare(feats, images, masks, torch.tensor([1, 5]), stride=4, feats_mirror=feats_mirror[:, :4])
    fit(cfg, data, progress=False, iters=2)


def test_bad_input_names_the_argument():
    images, masks = torch.rand(2, 3, 32, 32), torch.ones(2, 1, 32, 32)
    with pytest.raises(ValueError, match="feats"):
        prepare(torch.rand(2, 8, 7, 8), images, masks, torch.tensor([0, 1]), stride=4)
    with pytest.raises(ValueError, match="azimuth_bins"):
        prepare(torch.rand(2, 8, 8, 8), images, masks, torch.tensor([0, 8]), stride=4)
    with pytest.raises(ValueError, match="azimuth_bins"):
        viewpoint_loss(torch.rand(2, 4, 3), torch.tensor([-1, 3]))
    empty = masks.clone()
    empty[1] = 0
    with pytest.raises(ValueError, match=r"masks is empty .*\[1\]"):
        prepare(torch.rand(2, 8, 8, 8), images, empty, torch.tensor([0, 1]), stride=4)
    with pytest.raises(ValueError, match="mask is empty"):
        prototype_loss(torch.rand(1, 4, 8), torch.rand(1, 4, 8), torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="stride"):
        standin_features(torch.rand(1, 3, 30, 30), torch.ones(1, 1, 30, 30), stride=4)
    with pytest.raises(ValueError, match="unknown config keys"):
        spherical_preset("smoke", not_a_key=1)


def test_standin_folds_the_symmetry_and_fusion_scores():
    # a bird-free check: the stand-in gives mirror points (x, y, z) and (-x, y, z) the same feature
    xyz = torch.zeros(1, 3, 8, 8)
    xyz[0, 0, :, :4], xyz[0, 0, :, 4:] = 0.5, -0.5
    f = standin_features(xyz, torch.ones(1, 1, 8, 8), stride=4, noise=0.0)
    assert torch.allclose(f[..., 0], f[..., 1])
    # score_pairs on two identical images with exact embeddings: every keypoint transfers correctly
    n, hw = 2, 16
    emb = torch.eye(hw)[None].expand(n, -1, -1)
    cent = torch.stack(torch.meshgrid(torch.arange(4) * 8 + 4.0, torch.arange(4) * 8 + 4.0, indexing="ij"), -1)
    kps = torch.cat([cent.reshape(-1, 2).flip(-1), torch.ones(hw, 1)], -1)[None].expand(n, -1, -1).double()
    data = {"token_mask": torch.ones(n, 4, 4, dtype=torch.bool), "keypoints": kps,
            "bbox": torch.full((n,), 32.0, dtype=torch.float64), "resolution": 32}
    out = score_pairs({"exact": [(1.0, emb)]}, data, torch.tensor([[0, 1]]), confusion=False)
    assert out["exact"]["pck@0.05"] == 1.0 and out["exact"]["kap@0.1"] == pytest.approx(1.0)


def test_checkpoint_round_trip(tmp_path):
    from csmlab.methods.spherical.features import FeatureNet
    from csmlab.methods.spherical.fit import build
    from csmlab.methods.spherical.pretrained import load_pretrained, save_pretrained
    from csmlab.train import History

    cfg = spherical_preset("smoke")
    torch.manual_seed(0)
    model, net = build(cfg), FeatureNet(cfg["feat_dim"], cfg["feat_width"])
    hist = History()
    for i in range(700):
        hist.log(i, {"total": float(i)})
    save_pretrained(tmp_path / "m.pt", cfg, {"net": model}, net, {"net": {"x": 1.0}}, {"net": hist}, "cmd")
    back = load_pretrained(tmp_path / "m.pt")
    feats, mask = torch.randn(1, cfg["feat_dim"], 4, 4), torch.ones(1, 4, 4, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(back["models"]["net"](feats, mask), model(feats, mask), atol=1e-2)   # float16 weights
    assert back["command"] == "cmd" and len(back["histories"]["net"]["total"]) <= 300
    with pytest.raises(ValueError, match="not a Spherical Maps checkpoint"):
        torch.save({"format": "other"}, tmp_path / "x.pt")
        load_pretrained(tmp_path / "x.pt")


def test_standin_sets_share_one_feature_function():
    # train and test stand-ins differ by their noise only; the first medium run drew a new W per set
    xyz = torch.rand(1, 3, 8, 8) * 2 - 1
    ones = torch.ones(1, 1, 8, 8)
    a = standin_features(xyz, ones, stride=4, noise=0.0, seed=0, noise_seed=0)
    assert torch.equal(a, standin_features(xyz, ones, stride=4, noise=0.0, seed=0, noise_seed=1))
    assert not torch.allclose(a, standin_features(xyz, ones, stride=4, noise=0.0, seed=1))
    assert not torch.equal(standin_features(xyz, ones, stride=4, seed=0, noise_seed=0),
                           standin_features(xyz, ones, stride=4, seed=0, noise_seed=1))


@pytest.fixture(scope="module")
def gt_sphere_data():
    """24 rung-B birds at 64^2: prepare() + evaluation_fields() with stand-in features, and the true sphere map."""
    from csmlab.data.synthetic import make_dataset
    from csmlab.data.synthetic.benchmark import rung_priors
    from csmlab.methods.spherical.experiment import dataset_for, features_of

    cfg = spherical_preset("smoke", source="standin")
    ds = make_dataset("birds", 24, 64, seed=5, cache=False, progress=False, **rung_priors("B"))
    batch = ds.batch(slice(None))
    data = dataset_for(cfg, batch, features_of(cfg, batch, seed_offset=1))
    tok = data["token_mask"].flatten(1)
    return data, F.normalize(data["surface"].float(), dim=-1) * tok[..., None]


def test_true_sphere_map_scores_well_and_its_mirror_costs_more(gt_sphere_data):
    """A correct map (template points, normalised) under the real losses and evaluation code."""
    from csmlab.metrics import sample_pairs

    data, gt = gt_sphere_data
    mirror = gt * torch.tensor([-1.0, 1.0, 1.0])
    grid = tuple(data["token_mask"].shape[-2:])

    def orient(s):
        return float(orientation_loss(s, grid, 256, 1.0, generator=torch.Generator().manual_seed(0)))
    assert orient(gt) < 0.7 < 2.0 < orient(mirror)
    vp_true = float(viewpoint_loss(gt, data["azimuth_bin"]))
    # a global mirror keeps every cos(delta azimuth): the viewpoint term alone cannot see it
    assert vp_true == pytest.approx(float(viewpoint_loss(mirror, data["azimuth_bin"])), abs=1e-6)
    wrong_bins = data["azimuth_bin"][torch.randperm(24, generator=torch.Generator().manual_seed(0))]
    assert vp_true < 0.3 < float(viewpoint_loss(gt, wrong_bins))
    tokens = data["feats"].flatten(2).transpose(1, 2)
    out = score_pairs({"true sphere": [(1.0, gt)], "raw stand-in": [(1.0, tokens)]}, data, sample_pairs(24, 60, 0))
    assert out["true sphere"]["lr_confusion"] < 0.02 < 0.05 < out["raw stand-in"]["lr_confusion"]
    assert out["true sphere"]["pck@0.1"] > out["raw stand-in"]["pck@0.1"]


def test_mirrored_batch_shows_the_mirrored_bird():
    """A mirrored photo shows the mirror bird: surface points flip columns and negate x (the lateral axis)."""
    from csmlab.methods.spherical.experiment import mirrored

    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(2, 3, 8, 8, generator=g), "mask": (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float(),
             "surface_xyz": torch.randn(2, 3, 8, 8, generator=g)}
    m = mirrored(batch)
    assert torch.equal(m["image"], batch["image"].flip(-1)) and torch.equal(m["mask"], batch["mask"].flip(-1))
    assert torch.equal(m["surface_xyz"][:, 0], -batch["surface_xyz"][:, 0].flip(-1))
    assert torch.equal(m["surface_xyz"][:, 1:], batch["surface_xyz"][:, 1:].flip(-1))
    assert torch.equal(mirrored(m)["surface_xyz"], batch["surface_xyz"])
