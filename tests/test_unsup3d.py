"""Unsup3D (csmlab.methods.unsup3d): image formation, the flip, the metrics, the confidence loss, bad input."""

import math

import pytest
import torch

from csmlab.data.synthetic import make_dataset
from csmlab.methods.unsup3d import (
    Unsup3D,
    confidence_l1,
    constant_depth_baseline,
    depth_metrics,
    get_config,
    normals_from_depth,
    photometric_loss,
    reconstruct,
)
from csmlab.methods.unsup3d.evaluate import erode


@pytest.fixture(scope="module")
def faces():
    ds = make_dataset("faces", 12, 32, seed=5, cache=False, progress=False)
    return ds.batch(range(len(ds)))


def _psnr(a, b, mask):
    mse = ((a - b) ** 2 * mask).sum() / (a.shape[1] * mask.sum())
    return float(-10 * torch.log10(mse))


@pytest.mark.parametrize("resolution", [32, 64])
def test_ground_truth_factors_reconstruct_the_image(resolution):
    ds = make_dataset("faces", 6, resolution, seed=1, cache=False, progress=False)
    b = ds.batch(range(6))
    out = reconstruct(b["canonical_depth"], b["albedo"], b["light"], b["view"])
    covered = (out["mask"] * b["mask"]).sum() / b["mask"].sum()
    assert covered > 0.99                        # the moved grid mesh covers the face
    assert _psnr(out["image"], b["image"], b["mask"] * out["mask"]) >= 35.0
    both = b["mask"] * out["mask"]
    off = ((out["depth"] - b["depth"]).abs() * both > 1e-3).sum() / both.sum()
    # The rasterized view depth is the data's, but for at most a few pixels per thousand: the model meshes
    # the whole image, and at steep yaws the skirt outside the outline (which the data does not render)
    # can hide a pixel at the face's edge (one pixel of 6 faces at 64x64, yaw 55 degrees).
    assert off < 2e-3


def test_ground_truth_factors_reconstruct_the_background_too():
    """The background is drawable by the model's image formation (faces cache 7): a flat frontal plane.

    Outside the face the ground-truth factors are completed with a flat depth at the outline's depth and
    the scene's background albedo; with the ground-truth light and view the model then draws the
    background pixels of the image too (away from the outline, whose normals mix face and plane). On
    faces cache 6 (an unlit random colour) a quarter of the background was brighter than any albedo <= 1
    could be under the scene's light, and this PSNR was ~20 dB.
    """
    from csmlab.data.synthetic.faces import DEPTH_RIM, sample_scenes

    n, S, seed = 8, 32, 1
    b = make_dataset("faces", n, S, seed=seed, cache=False, progress=False).batch(range(n))
    inside = b["canonical_mask"] > 0
    depth = torch.where(inside, b["canonical_depth"], torch.full_like(b["canonical_depth"], DEPTH_RIM))
    bg_albedo = sample_scenes(n, seed)["background"][:, :, None, None].expand(-1, 3, S, S)
    albedo = torch.where(inside, b["albedo"], bg_albedo)
    out = reconstruct(depth, albedo, b["light"], b["view"])
    near_face = torch.nn.functional.max_pool2d(b["mask"], 7, stride=1, padding=3)   # 3 px around the face
    background = (1 - near_face) * out["mask"]
    assert background.sum() > 0.1 * n * S * S
    assert _psnr(out["image"], b["image"], background) >= 35.0


def test_a_wrong_view_does_not_reconstruct(faces):
    view = {"rotation": -faces["view"]["rotation"], "trans": faces["view"]["trans"]}
    out = reconstruct(faces["canonical_depth"], faces["albedo"], faces["light"], view)
    assert _psnr(out["image"], faces["image"], faces["mask"] * out["mask"]) < 30.0


def _model_with_factors(cfg, factors):
    model = Unsup3D(cfg)
    model.factors = lambda image: factors       # the decoder and the flip, fed with known factors
    return model


def _gt_factors(b):
    return {"canon_depth": b["canonical_depth"], "albedo": b["albedo"], "light": b["light"], "view": b["view"]}


def test_flipping_a_symmetric_face_leaves_its_reconstruction_unchanged(faces):
    cfg = get_config("smoke")
    sym = ~faces["asymmetric"]
    assert sym.sum() >= 2 and (~sym).sum() >= 2
    out = _model_with_factors(cfg, _gt_factors(faces))(faces["image"])
    B = faces["image"].shape[0]
    rec, rec_flip, mask = out["recon"]["image"][:B], out["recon"]["image"][B:], out["mask_both"][:B]
    diff = ((rec - rec_flip).abs() * mask).flatten(1).amax(1)
    assert float(diff[sym].max()) < 1e-4          # symmetric faces: the flip changes nothing
    assert float(diff[~sym].min()) > 0.05         # asymmetric ones: it does (the test can fail)


def test_the_flip_is_horizontal_and_the_ablations_switch_it_off(faces):
    B = faces["image"].shape[0]
    for flip_depth, flip_albedo in ((True, True), (False, True), (True, False), (False, False)):
        cfg = get_config("smoke", flip_depth=flip_depth, flip_albedo=flip_albedo)
        out = _model_with_factors(cfg, _gt_factors(faces))(faces["image"])
        d, a = faces["canonical_depth"], faces["albedo"]
        assert torch.equal(out["depth2"][B:], d.flip(3) if flip_depth else d)
        assert torch.equal(out["albedo2"][B:], a.flip(3) if flip_albedo else a)


def _their_side(pred, gt, mask):
    """compute_sc_inv_err of unsup3d/utils.py on log depth, then sqrt(sum / mask sum) as in model.py."""
    b = pred.shape[0]
    diff = (pred.log() - gt.log()) * mask
    avg = diff.view(b, -1).sum(1) / mask.view(b, -1).sum(1)
    score = (diff - avg.view(b, 1, 1, 1)) ** 2 * mask
    return (score.view(b, -1).sum(1) / mask.view(b, -1).sum(1)) ** 0.5


def test_side_is_their_formula_on_a_hand_built_case():
    gt = torch.full((1, 1, 6, 6), 1.0)
    gt[..., 2:4, 2:4] = 0.95                       # a bump in the middle
    gt[..., :, 5] = 1.1                            # the background column, at the maximum
    pred = torch.full_like(gt, 1.02)
    pred[..., 2, 2] = 0.9
    m = depth_metrics(pred, gt)
    expected_mask = torch.zeros_like(gt)
    expected_mask[..., 1:5, 1:4] = 1               # below the max, eroded by one pixel (image border too)
    assert torch.equal(m["mask"], expected_mask)
    d = [math.log(p) - math.log(g) for p, g, k in zip(pred.flatten().tolist(), gt.flatten().tolist(),
                                                      expected_mask.flatten().tolist()) if k]
    mean = sum(d) / len(d)
    by_hand = math.sqrt(sum((x - mean) ** 2 for x in d) / len(d))
    assert float(m["side"][0]) == pytest.approx(by_hand, rel=1e-5)
    assert float(m["side"][0]) == pytest.approx(float(_their_side(pred, gt, expected_mask)[0]), rel=1e-5)
    assert by_hand > 0.01


def test_side_is_scale_invariant_and_mad_sees_shape(faces):
    gt, mask = faces["depth"], faces["mask"]
    pred = torch.where(mask > 0, gt, torch.ones_like(gt)) + 0.01 * torch.randn_like(gt)
    valid = torch.ones_like(gt)      # 1.37 x depth passes the model's validity cut (1.2); score every pixel
    a, b = depth_metrics(pred, gt, mask, valid), depth_metrics(pred * 1.37, gt, mask, valid)
    assert torch.allclose(a["side"], b["side"], rtol=1e-4)
    assert float(depth_metrics(torch.where(mask > 0, gt, 1.0), gt, mask)["side"].max()) < 1e-6
    assert float(a["side"].min()) > 1e-3


def test_metrics_are_zero_on_the_ground_truth_and_small_on_a_noised_copy(faces):
    # The sanity checks of the evaluation frame: the data's view depth against itself, then with 0.1 %
    # multiplicative noise on the face (SIDE is then the noise's spread, about 1e-3).
    gt, mask = faces["depth"], faces["mask"]
    exact = depth_metrics(gt, gt, mask)
    assert float(exact["side"].max()) < 1e-6 and float(exact["mad"].max()) < 0.01
    g = torch.Generator().manual_seed(0)
    noised = gt * torch.exp(1e-3 * torch.randn(gt.shape, generator=g) * mask)
    m = depth_metrics(noised, gt, mask, torch.ones_like(gt))
    assert float(m["side"].mean()) == pytest.approx(1e-3, rel=0.2)
    assert float(m["mad"].mean()) < 0.5 * constant_depth_baseline(faces)["mad"]


def test_constant_depth_baseline_is_the_spread_of_log_depth(faces):
    r = constant_depth_baseline(faces)
    mask = erode(faces["mask"])
    logs = [faces["depth"][i][mask[i] > 0].log() for i in range(len(mask))]
    expected = sum(float(v.std(unbiased=False)) for v in logs) / len(logs)
    assert r["side"] == pytest.approx(expected, rel=1e-4)
    assert 5 < r["mad"] < 80


def test_normals_of_a_plane_tilted_about_y():
    # A plane z = -(1 + 0.2 x): its normal is (0.2, 0, 1)/norm, i.e. facing +x and the camera.
    S, k = 16, math.tan(math.radians(5.0))
    x = ((2 * torch.arange(S) + 1) / S - 1) * k
    # depth d along the ray (x k, y k, -1): z = -d, X = d x k; solve d = 1 + 0.2 d x k.
    d = (1 / (1 - 0.2 * x))[None, None, None, :].expand(1, 1, S, S)
    n = normals_from_depth(d.contiguous())[0, :, 5, 5]
    expected = torch.tensor([0.2, 0.0, 1.0]) / math.sqrt(1.04)
    assert torch.allclose(n, expected, atol=1e-4)


def test_confidence_loss_is_smallest_at_sqrt2_times_the_error():
    sigma = torch.linspace(0.01, 3, 30000)
    for err in (0.05, 0.3, 1.0):
        loss = confidence_l1(torch.full_like(sigma, err), sigma)
        best = float(sigma[loss.argmin()])
        assert best == pytest.approx(math.sqrt(2) * err, rel=2e-3)
        assert abs(best - err) > 0.1 * err       # not at |e| (a common wrong form)
    # without a confidence map the term is the plain L1, averaged over the mask
    im1, im2 = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    im2[..., 2:, :] = 5
    assert float(photometric_loss(im1, im2, mask)) == pytest.approx(1.0)


def test_bad_input_raises_value_errors_naming_the_argument(faces):
    model = Unsup3D(get_config("smoke"))
    with pytest.raises(ValueError, match="image.*32x32"):
        model(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="image.*square"):
        model(torch.rand(2, 3, 32, 16))
    with pytest.raises(ValueError, match="image"):
        model(torch.rand(2, 1, 32, 32))
    d, a, light, view = faces["canonical_depth"], faces["albedo"], faces["light"], faces["view"]
    with pytest.raises(ValueError, match="canon_depth.*0.9, 1.1"):
        reconstruct(d + 0.3, a, light, view)
    with pytest.raises(ValueError, match="canon_depth"):
        reconstruct(d[:, :, :, :16], a, light, view)
    with pytest.raises(ValueError, match="albedo"):
        reconstruct(d, a[:, :, :16, :16], light, view)
    with pytest.raises(ValueError, match=r"light\['direction'\]"):
        reconstruct(d, a, {**light, "direction": light["direction"][:, :2]}, view)
    with pytest.raises(ValueError, match="light"):
        reconstruct(d, a, torch.zeros(12, 4), view)
    with pytest.raises(ValueError, match=r"view\['rotation'\]"):
        reconstruct(d, a, light, {**view, "rotation": view["rotation"][:3]})
    with pytest.raises(ValueError, match="view"):
        reconstruct(d, a, light, torch.zeros(12, 6))
    with pytest.raises(ValueError, match="resolution"):
        Unsup3D(get_config("smoke", resolution=48))


def test_light_ranges_are_the_authors_rescalers():
    """``min_diff_light`` etc. bound the light as the authors' rescalers do (their syncar sets min_diff_light 0.5)."""
    raw = torch.tensor([[-1.0, -1.0, 0.3, -0.2], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    light = Unsup3D(get_config("smoke", min_diff_light=0.25, max_amb_light=0.8)).light_from_raw(raw)
    assert torch.allclose(light["diffuse"], torch.tensor([0.25, 1.0, 0.625]))
    assert torch.allclose(light["ambient"], torch.tensor([0.0, 0.8, 0.4]))
    default = Unsup3D(get_config("smoke", min_diff_light=0.0)).light_from_raw(raw)
    assert torch.allclose(default["diffuse"], (1 + raw[:, 1]) / 2)   # the [0, 1] range of the authors' defaults
    with pytest.raises(ValueError, match="min_diff_light"):
        Unsup3D(get_config("smoke", min_diff_light=0.9, max_diff_light=0.5))


def test_the_medium_diffuse_bound_keeps_every_true_light_reachable():
    """``min_diff_light`` of the medium preset stops the diffuse collapse without excluding the faces' own lights."""
    from csmlab.data.synthetic.faces import sample_scenes

    bound = get_config("medium")["min_diff_light"]
    assert 0 < bound <= float(sample_scenes(2048, 0)["diffuse"].min())
    assert get_config("full")["min_diff_light"] == 0.0      # the paper's synface recipe leaves it free


def test_border_depth_is_the_authors_option():
    """The two border columns sit at 0.7 max + 0.3 min by default; ``border_depth`` moves them (their syncar: 1.08)."""
    raw = torch.randn(2, 1, 32, 32)
    d = Unsup3D(get_config("smoke")).depth_from_raw(raw)
    assert torch.allclose(d[..., :2], torch.full_like(d[..., :2], 0.7 * 1.1 + 0.3 * 0.9))
    far = Unsup3D(get_config("smoke", border_depth=1.08)).depth_from_raw(raw)
    assert torch.allclose(far[..., -2:], torch.full_like(far[..., -2:], 1.08))
    assert torch.equal(far[..., 2:-2], d[..., 2:-2])
    with pytest.raises(ValueError, match="border_depth"):
        Unsup3D(get_config("smoke", border_depth=1.3))
