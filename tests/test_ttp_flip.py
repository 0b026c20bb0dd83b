"""TTP's flip training (``--flip_train``): the mirrored batch, the mirrored camera and the flip-camera term."""

import pytest
import torch

from csmlab.data.synthetic import get_category, make_dataset
from csmlab.data.synthetic.birds_render import render_scenes
from csmlab.data.synthetic.birds_scenes import mirror_scenes, sample_scenes
from csmlab.geometry import ortho_project, quaternion_to_matrix, random_rotation
from csmlab.methods.ttp import fit_e2e
from csmlab.methods.ttp import losses as L
from csmlab.methods.ttp.presets import get_config

N, SEED, RES = 8, 3, 32


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    cat = get_category("birds")
    ds = make_dataset("birds", N, RES, seed=SEED, cache=False, progress=False)
    return cat, fit_e2e.stack_samples(ds)


def _cams(batch, sl):
    return {"rotation": quaternion_to_matrix(batch["cam_quat"][sl]), "scale": batch["cam_scale"][sl],
            "trans": batch["cam_trans"][sl]}


def test_flipped_batch_is_the_rendering_of_the_mirrored_scenes(setup):
    cat, data = setup
    fb = fit_e2e.flip_batch(data, cat.keypoint_flip)
    assert fb["image"].shape[0] == 2 * N and torch.equal(fb["image"][:N], data["image"])
    scenes = mirror_scenes(cat, sample_scenes(cat, N, SEED))
    mirrored = render_scenes(cat, scenes, RES)
    # The true camera of the flipped image is the mirrored scene's camera ...
    assert torch.allclose(fb["cam_quat"][N:], scenes["quat"].float(), atol=1e-6)
    assert torch.allclose(fb["cam_trans"][N:], scenes["trans"].float(), atol=1e-6)
    # ... and its pixels and keypoints are those of the mirrored scene's rendering.
    assert float((fb["image"][N:] - mirrored["image"]).abs().mean()) < 0.02
    vis = mirrored["keypoints"][..., 2] > 0.5
    err = (fb["keypoints"][N:, :, :2] - mirrored["keypoints"][..., :2]).norm(dim=-1)[vis]
    assert float(err.max()) < 0.5


def test_flip_camera_loss_is_zero_for_the_true_cameras_and_positive_for_wrong_ones(setup):
    cat, data = setup
    fb = fit_e2e.flip_batch(data, cat.keypoint_flip)
    truth, truth_flip = _cams(fb, slice(None, N)), _cams(fb, slice(N, None))
    assert float(L.flip_camera_loss(truth, truth_flip)) < 1e-3       # acos clamp: sqrt(2 eps) per angle
    # Not mirroring (the same camera for both images: a regressor that ignores the flip) costs.
    assert float(L.flip_camera_loss(truth, truth)) > 0.1
    wrong = dict(truth_flip, rotation=random_rotation(N, torch.Generator().manual_seed(0)))
    assert float(L.flip_camera_loss(truth, wrong)) > 0.1


def test_mirrored_camera_images_the_template_as_the_flipped_picture(setup):
    """proj(M R M, M t)(T)_i = flip_x(proj(R, t)(T))_{flip(i)}: the convention that makes a symmetric template's
    correspondences in the mirrored image the mirrored correspondences, swapped left and right."""
    cat, _ = setup
    T = cat.template.verts.double()[None].expand(4, -1, -1)
    R = random_rotation(4, torch.Generator().manual_seed(1), dtype=torch.float64)
    s, t = torch.full((4,), 0.7, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64) * 0.1
    R_m, t_m = L.mirror_camera(R, t)
    u = ortho_project(T, s, R, t)
    u_m = ortho_project(T, s, R_m, t_m)
    flipped = u[:, cat.vertex_flip] * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(u_m, flipped, atol=1e-6)
    assert torch.allclose(R_m.transpose(-1, -2) @ R_m, torch.eye(3, dtype=torch.float64).expand(4, 3, 3))
    assert torch.allclose(torch.linalg.det(R_m), torch.ones(4, dtype=torch.float64))


def test_flip_train_doubles_the_batch_and_logs_the_flip_camera_term(setup):
    cat, data = setup
    cfg = get_config("smoke", iters=1, n_train=N, n_test=4, n_pairs=20, batch_size=3, flip_train=True)
    model = fit_e2e.build_model(cfg, cat)
    objective = fit_e2e.TTPObjective(cfg, cat)
    terms, monitors = objective(model, {k: v[:3] for k, v in data.items()}, 0)
    assert "flip_camera" in terms and float(terms["flip_camera"].detach()) > 0
    terms["flip_camera"].backward()
    assert model.head.weight.grad is not None and float(model.head.weight.grad.abs().sum()) > 0
    off = fit_e2e.TTPObjective(get_config("smoke", n_train=N, n_test=4, n_pairs=20), cat)
    assert "flip_camera" not in off(model, {k: v[:3] for k, v in data.items()}, 0)[0]
