"""CSM's networks and training entry points on a tiny hand-made dataset (no synthetic birds needed)."""

import math
from types import SimpleNamespace

import pytest
import torch

from csmlab import geometry as G
from csmlab.geometry import (
    Mesh,
    icosphere,
    matrix_to_quaternion,
    ortho_clip,
    ortho_depth,
    quaternion_to_matrix,
    random_rotation,
    rotation_angle_deg,
    sphere_to_uv,
)
from csmlab.methods.csm.evaluate import evaluate
from csmlab.methods.csm.experiments import training_fields
from csmlab.methods.csm.fit import CSMObjective, estimate_init_scale, fit, is_mirror_symmetric, stack_samples
from csmlab.methods.csm.network import CameraHead, CSMNet, UNet, base_quaternions, mirror_quaternion
from csmlab.methods.csm.presets import get_config
from csmlab.methods.csm.uvmap import TemplateUV
from csmlab.render import interpolate_image, rasterize_mesh


def _template():
    s = icosphere(2)
    return Mesh(s.verts * torch.tensor([0.45, 0.35, 0.9]), s.faces), sphere_to_uv(s.verts)


def _samples(n, res=16, seed=0):
    """Ellipsoids under random cameras, with every field CSM uses (keypoints are 6 template vertices)."""
    mesh, vuv = _template()
    g = torch.Generator().manual_seed(seed)
    R = random_rotation(n, generator=g)
    scale = 0.9 + 0.1 * torch.rand(n, generator=g)
    trans = 0.05 * torch.randn(n, 2, generator=g)
    X = mesh.verts[None].expand(n, -1, -1)
    r = rasterize_mesh(ortho_clip(X, scale, R, trans), mesh.faces, res)
    mask = r.mask
    xyz = interpolate_image(r, mesh.verts) * mask
    kp_ids = torch.tensor([0, 1, 5, 7, 9, 11])
    kp_ndc = (scale[:, None, None] * (mesh.verts[kp_ids] @ R[:, :2].transpose(1, 2)) + trans[:, None])
    kp_px = torch.stack([(kp_ndc[..., 0] + 1) * res / 2, (1 - kp_ndc[..., 1]) * res / 2], -1)
    kp_depth = ortho_depth(mesh.verts[kp_ids][None].expand(n, -1, -1), R)
    vis = kp_depth < 0.05                                                # roughly the front half
    out = []
    for i in range(n):
        out.append({"image": xyz[i] * 0.5 + 0.5 * mask[i], "mask": mask[i],
                    "surface_xyz": xyz[i], "surface_uv": interpolate_image(r, vuv)[i],
                    "keypoints": torch.cat([kp_px[i], vis[i, :, None].float()], -1),
                    "camera": {"scale": scale[i], "quat": matrix_to_quaternion(R[i]), "trans": trans[i]}})
    return out


def test_unet_shapes_and_size_check():
    net = UNet(3, 4, base=4, depth=3)
    assert net(torch.zeros(2, 3, 16, 24)).shape == (2, 4, 16, 24)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 3, 12, 16))


def test_unet_stem_stride_and_coordinates_keep_the_full_resolution_output():
    net = UNet(3, 4, base=4, depth=2, stem_stride=2, coords=True, norm="batch")
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 4, 16, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 3, 12, 12))
    with pytest.raises(ValueError, match="stem_stride"):
        UNet(3, 4, base=4, depth=2, stem_stride=3)


def test_camera_hypotheses_stay_in_their_azimuth_sectors():
    head = CameraHead(n_hypotheses=4, base=4, n_down=2, init_scale=0.8, max_elevation_deg=30, max_roll_deg=10)
    torch.nn.init.normal_(head.out.weight, std=10.0)                     # drive every output into saturation
    out = head(torch.rand(3, 3, 16, 16))
    az, el, roll = G.matrix_to_azel(G.quaternion_to_matrix(out["quat"]))
    offset = torch.remainder(az - head.base_azimuth + math.pi, 2 * math.pi) - math.pi
    assert offset.abs().max() <= head.azimuth_range + 1e-4                # +-60 degrees for K = 4
    assert el.abs().max() <= math.radians(30) + 1e-4 and roll.abs().max() <= math.radians(10) + 1e-4
    assert (out["scale"] >= 0.8 * math.exp(-0.5) - 1e-6).all() and (out["scale"] <= 0.8 * math.exp(0.5) + 1e-6).all()
    assert torch.allclose(out["prob"].sum(-1), torch.ones(3))


def test_base_rotations_spread_over_azimuth():
    q = base_quaternions(4)
    R = quaternion_to_matrix(q)
    angles = rotation_angle_deg(R[:1].expand(4, 3, 3), R)
    assert torch.allclose(angles, torch.tensor([0.0, 90.0, 180.0, 90.0]), atol=1e-3)
    view = R[:, 2, :]                                                    # viewing direction in object frame
    assert torch.allclose(view[:, 1], torch.zeros(4), atol=1e-6)         # elevation 0


def test_mirror_quaternion_is_the_reflected_rotation():
    R = random_rotation(5, generator=torch.Generator().manual_seed(0))
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    mirrored = quaternion_to_matrix(mirror_quaternion(matrix_to_quaternion(R)))
    assert torch.allclose(mirrored, M @ R @ M, atol=1e-5)


def test_csmnet_outputs_and_initial_hypotheses():
    mesh, vuv = _template()
    net = CSMNet(TemplateUV(mesh, vuv, (16, 32)), n_hypotheses=4, unet_base=4, unet_depth=2, cam_base=4,
                 cam_down=2, init_scale=0.8)
    out = net(torch.rand(2, 3, 16, 16))
    assert out["sphere"].shape == (2, 3, 16, 16) and out["uv"].shape == (2, 2, 16, 16)
    assert torch.allclose(out["sphere"].norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)
    assert out["points"].shape == (2, 3, 16, 16) and out["mask_logit"].shape == (2, 1, 16, 16)
    assert torch.allclose(out["prob"], torch.full((2, 4), 0.25))
    assert torch.allclose(out["scale"], torch.full((2, 4), 0.8))
    assert torch.allclose(out["quat"], base_quaternions(4)[None].expand(2, 4, 4), atol=1e-6)
    # every predicted point lies inside the template's bounding box
    lo, hi = mesh.verts.min(0).values, mesh.verts.max(0).values
    pts = out["points"].permute(0, 2, 3, 1).reshape(-1, 3)
    assert ((pts >= lo - 1e-4) & (pts <= hi + 1e-4)).all()
    with pytest.raises(ValueError, match="img"):
        net(torch.rand(2, 1, 16, 16))


def test_objective_terms_and_gradients():
    mesh, vuv = _template()
    cfg = get_config("smoke", resolution=16, unet_base=4, unet_depth=2, cam_base=4, cam_down=2, uv_grid=(16, 32),
                     pose_warmup_iters=0)
    data = stack_samples(_samples(4))
    net = CSMNet(TemplateUV(mesh, vuv, (16, 32)), n_hypotheses=cfg["n_hypotheses"], unet_base=4, unet_depth=2,
                 cam_base=4, cam_down=2)
    objective = CSMObjective(cfg, symmetric_template=True)
    terms, monitors = objective(net, data, 0)
    assert set(terms) == {"cycle", "visibility", "mask", "mask_pred", "entropy", "diversity"}
    assert float(terms["entropy"].detach()) == pytest.approx(-0.05 * math.log(cfg["n_hypotheses"]), rel=1e-4)
    sum(terms.values()).backward()
    for name, module in (("unet", net.unet), ("camera", net.camera)):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0, name
    # With reuse of the mirrored renders, the loss equals rendering the mirrored cameras directly.
    full, _ = CSMObjective(cfg, symmetric_template=False)(net, data, 0)
    for key in ("cycle", "visibility", "mask"):
        assert float(full[key].detach()) == pytest.approx(float(terms[key].detach()), rel=0.02, abs=1e-6), key
    # Pose warm-up: silhouettes only (every hypothesis weighted 1/K); the U-Net is not even run.
    net.zero_grad()
    warm, _ = CSMObjective(dict(cfg, pose_warmup_iters=5), True)(net, data, 0)
    assert set(warm) == {"mask", "diversity"}
    sum(warm.values()).backward()
    assert all(p.grad is None for p in net.unet.parameters())
    assert sum(float(p.grad.abs().sum()) for p in net.camera.parameters() if p.grad is not None) > 0


def test_supervised_uv_reference_trains_only_the_surface_map():
    mesh, vuv = _template()
    cfg = get_config("smoke", "supervised_uv", resolution=16, unet_base=4, unet_depth=2, cam_base=4, cam_down=2,
                     uv_grid=(16, 32))
    data = stack_samples(_samples(4))
    assert "surface_uv" in data
    net = CSMNet(TemplateUV(mesh, vuv, (16, 32)), n_hypotheses=1, unet_base=4, unet_depth=2, cam_base=4, cam_down=2)
    terms, _ = CSMObjective(cfg, symmetric_template=True)(net, data, 0)
    assert set(terms) == {"uv_supervised", "mask_pred"}
    assert 0 < float(terms["uv_supervised"].detach()) < 2                  # 1 - cos lies in [0, 2]
    sum(terms.values()).backward()
    assert all(p.grad is None for p in net.camera.parameters())
    assert sum(float(p.grad.abs().sum()) for p in net.unet.parameters() if p.grad is not None) > 0
    with pytest.raises(ValueError, match="surface_uv"):
        CSMObjective(cfg, True)(net, {k: v for k, v in data.items() if k != "surface_uv"}, 0)
    # Masks-only training data never carries the true UV; only this reference keeps it.
    assert "surface_uv" not in training_fields(data, get_config("smoke"))
    assert "surface_uv" in training_fields(data, cfg)


def test_command_line_overrides_parse_json_or_strings():
    from csmlab.methods.csm.__main__ import parse_overrides

    assert parse_overrides(["eval_every=1000", "norm=batch", "uv_grid=[32, 64]", "flip=false"]) == {
        "eval_every": 1000, "norm": "batch", "uv_grid": [32, 64], "flip": False}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_overrides(["oops"])


def test_fit_and_evaluate_end_to_end(tmp_path):
    mesh, vuv = _template()
    train_set, test_set = _samples(24, seed=1), stack_samples(_samples(8, seed=2))
    cfg = get_config("smoke", resolution=16, unet_base=4, unet_depth=2, cam_base=4, cam_down=2, uv_grid=(16, 32),
                     iters=6, batch_size=4, n_hypotheses=2, pose_warmup_iters=0)
    category = SimpleNamespace(template=mesh, template_uv=vuv, vertex_flip=None)
    model, hist = fit(cfg, train_set, category, checkpoint_path=tmp_path / "c.pt", progress=False)
    assert {"total", "cycle", "visibility", "mask", "mask_pred", "entropy"} <= set(hist.names)
    assert len(hist["cycle"]) == 6 and all(math.isfinite(v) for v in hist["total"])
    assert (tmp_path / "c.pt").is_file()
    metrics = evaluate(model, test_set, n_pairs=10)
    for key in ("transfer_pck", "transfer_apk", "surface_error", "sphere_angle_deg", "mask_iou",
                "camera_error_deg"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert 0 <= metrics["transfer_apk"] <= metrics["transfer_pck"] <= 1


def test_helpers():
    mesh, _ = _template()
    s = icosphere(2)
    mirror = torch.cdist(s.verts * torch.tensor([-1.0, 1, 1]), s.verts).argmin(1)
    assert is_mirror_symmetric(mesh.verts, mirror)
    assert not is_mirror_symmetric(mesh.verts + torch.tensor([0.1, 0, 0]), mirror)
    assert not is_mirror_symmetric(mesh.verts, None)
    masks = torch.stack([d["mask"] for d in _samples(6)])
    assert 0.8 < estimate_init_scale(mesh, masks) < 1.1                   # the samples use scales 0.9-1.0
    with pytest.raises(ValueError, match="image"):
        stack_samples([{"mask": torch.zeros(1, 4, 4)}])
    with pytest.raises(ValueError, match="variant"):
        get_config("smoke", variant="nope")
