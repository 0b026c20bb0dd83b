"""CSM's losses on hand-built inputs: a template rendered under a known camera gives exact ground truth.

Every pixel centre of the rendering holds the template point seen there, so with
the true camera its projection is the pixel (cycle = 0) and it is the visible
surface (visibility = 0). Points on the far side of the template at the same
pixels are invisible and must be penalised.
"""

import math

import pytest
import torch

from csmlab.geometry import Mesh, azel_to_matrix, icosphere, matrix_to_quaternion, ortho_clip, sphere_to_uv
from csmlab.methods.csm import losses as L
from csmlab.methods.csm.fit import mirror_cameras
from csmlab.methods.csm.uvmap import TemplateUV
from csmlab.render import interpolate_image, rasterize_mesh

RES = 32


@pytest.fixture(scope="module")
def scene():
    s = icosphere(2)
    verts = s.verts * torch.tensor([0.45, 0.35, 0.9])                 # mirror-symmetric in x, like a bird
    tuv = TemplateUV(Mesh(verts, s.faces), sphere_to_uv(s.verts), grid=(64, 128))
    R = azel_to_matrix(torch.tensor([0.6, -2.0]), torch.tensor([0.3, -0.2]))
    cams = {"scale": torch.tensor([[0.9], [0.8]]), "quat": matrix_to_quaternion(R)[:, None],
            "trans": torch.tensor([[[0.05, -0.1]], [[-0.1, 0.0]]]), "prob": torch.ones(2, 1)}
    scale, Rf, trans = L.flatten_cameras(cams)
    X = verts[None].expand(2, -1, -1)
    front = rasterize_mesh(ortho_clip(X, scale, Rf, trans), s.faces, RES)
    pos_far = ortho_clip(X, scale, Rf, trans) * torch.tensor([1.0, 1.0, -1.0, 1.0])   # farthest surface wins
    back = rasterize_mesh(pos_far, s.faces, RES)
    mask = front.mask
    return dict(tuv=tuv, cams=cams, mask=mask,
                points=interpolate_image(front, verts) * mask,          # [2,3,H,W] visible template points
                back_points=interpolate_image(back, verts) * mask,
                uv=interpolate_image(front, sphere_to_uv(s.verts)))


def test_cycle_loss_is_zero_for_the_true_points_and_camera(scene):
    loss = L.cycle_loss(scene["points"], scene["cams"], scene["mask"])
    assert loss.shape == (2, 1) and loss.max() < 1e-10


def test_cycle_loss_is_near_zero_through_the_ground_truth_uv_and_grows_with_noise(scene):
    # The network's path: UV -> uv_map lookup -> point. Only the table's bilinear error remains.
    uv = scene["tuv"].points_to_uv(scene["points"].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    via_uv = L.cycle_loss(scene["tuv"].uv_image_to_points(uv), scene["cams"], scene["mask"])
    noisy_uv = uv + 0.03 * torch.randn(uv.shape, generator=torch.Generator().manual_seed(0))
    noisy = L.cycle_loss(scene["tuv"].uv_image_to_points(noisy_uv), scene["cams"], scene["mask"])
    assert via_uv.max() < 1e-5
    assert noisy.min() > 100 * via_uv.max()


def test_cycle_loss_prefers_the_true_camera(scene):
    cams = dict(scene["cams"])
    wrong_q = matrix_to_quaternion(azel_to_matrix(torch.tensor([0.6, -2.0]) + math.pi / 2, torch.tensor([0.3, -0.2])))
    two = {"scale": cams["scale"].repeat(1, 2), "quat": torch.stack([cams["quat"][:, 0], wrong_q], 1),
           "trans": cams["trans"].repeat(1, 2, 1)}
    loss = L.cycle_loss(scene["points"], two, scene["mask"])
    assert (loss[:, 0] < 1e-10).all() and (loss[:, 1] > 1e-2).all()


def test_visibility_loss_is_zero_on_visible_points_and_positive_behind(scene):
    rendered = L.render_template(scene["tuv"].verts, scene["tuv"].faces, scene["cams"], RES)
    args = (scene["cams"], rendered["depth"], rendered["coverage"], scene["mask"])
    front = L.visibility_loss(scene["points"], *args)
    back = L.visibility_loss(scene["back_points"], *args)
    assert front.max() < 1e-10
    assert back.min() > 1e-2
    # The cycle alone cannot tell them apart: both project onto their pixels.
    assert L.cycle_loss(scene["back_points"], scene["cams"], scene["mask"]).max() < 1e-10


def test_visibility_gradient_pulls_hidden_points_forward(scene):
    rendered = L.render_template(scene["tuv"].verts, scene["tuv"].faces, scene["cams"], RES)
    pts = scene["back_points"].clone().requires_grad_(True)
    L.visibility_loss(pts, scene["cams"], rendered["depth"], rendered["coverage"], scene["mask"]).sum().backward()
    R = L.flatten_cameras(scene["cams"])[1]
    # ortho_depth = -(R X)_z: a descent step must raise (R X)_z, i.e. move points towards the camera.
    step = -pts.grad.flatten(2).transpose(1, 2)
    towards_camera = (step @ R[:, 2, :, None])[..., 0]
    assert torch.isfinite(pts.grad).all()
    assert towards_camera.min() >= 0 and towards_camera.sum() > 0


def test_mask_loss_is_lowest_at_the_true_camera_and_reaches_the_scale(scene):
    scale = scene["cams"]["scale"].clone().requires_grad_(True)
    cams = dict(scene["cams"], scale=scale)
    rendered = L.render_template(scene["tuv"].verts, scene["tuv"].faces, cams, RES)
    true_loss = L.mask_render_loss(rendered["silhouette"], scene["mask"])
    true_loss.sum().backward()
    assert scale.grad.abs().min() > 0                                   # antialiasing gives vertex gradients
    bigger = L.render_template(scene["tuv"].verts, scene["tuv"].faces, dict(cams, scale=scale.detach() * 1.3), RES)
    assert (L.mask_render_loss(bigger["silhouette"], scene["mask"]) > 3 * true_loss.detach()).all()


def test_mirrored_camera_renders_the_mirror_image_of_a_symmetric_template(scene):
    cams = scene["cams"]
    a = L.render_template(scene["tuv"].verts, scene["tuv"].faces, cams, RES)
    b = L.render_template(scene["tuv"].verts, scene["tuv"].faces, mirror_cameras(cams), RES)
    differ = (a["coverage"].flip(-1) != b["coverage"]).float().mean()
    assert differ < 0.005                                               # rasteriser ties on exact edges only
    both = (a["coverage"].flip(-1) * b["coverage"]) > 0
    assert torch.allclose(a["depth"].flip(-1)[both], b["depth"][both], atol=1e-5)


def test_expected_entropy_and_diversity():
    per = torch.tensor([[1.0, 3.0], [2.0, 4.0]])
    prob = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert float(L.expected(per, prob)) == pytest.approx((2.0 + 2.0) / 2)
    assert float(L.usage_entropy(torch.full((3, 4), 0.25))) == pytest.approx(math.log(4))
    # one-hot per image but spread over the batch: usage is uniform, entropy still maximal
    assert float(L.usage_entropy(torch.eye(4))) == pytest.approx(math.log(4))
    assert float(L.usage_entropy(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))) == pytest.approx(0.0, abs=1e-9)
    q_same = torch.tensor([[[1.0, 0, 0, 0], [1.0, 0, 0, 0]]])
    q_far = torch.tensor([[[1.0, 0, 0, 0], [0.0, 0, 1, 0]]])          # 180 degrees apart
    q_90 = torch.tensor([[[1.0, 0, 0, 0], [math.cos(math.pi / 4), 0, math.sin(math.pi / 4), 0]]])
    assert float(L.rotation_diversity(q_same)) == pytest.approx(1.0, abs=1e-3)
    assert float(L.rotation_diversity(q_far)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.rotation_diversity(q_90)) == pytest.approx(0.5, abs=1e-5)
    assert float(L.rotation_diversity(q_same[:, :1])) == 0.0


def test_mask_bce_and_bad_inputs():
    logit = torch.full((1, 1, 4, 4), 20.0)
    assert float(L.mask_bce(logit, torch.ones(1, 1, 4, 4))) < 1e-8
    with pytest.raises(ValueError, match="cams"):
        L.cycle_loss(torch.zeros(1, 3, 4, 4), {"scale": torch.ones(1, 2), "quat": torch.ones(1, 2, 4)},
                     torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="points"):
        L.cycle_loss(torch.zeros(1, 2, 4, 4), {}, torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="prob"):
        L.expected(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="mask"):
        L.mask_render_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 5, 5))
