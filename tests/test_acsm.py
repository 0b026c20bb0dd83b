"""ACSM: the rig, the articulation-aware cycle, coverage / consistency, the joint angles and bad input."""

import math

import pytest
import torch

from csmlab.data.synthetic import get_category
from csmlab.data.synthetic.birds_render import render_scenes
from csmlab.data.synthetic.birds_scenes import sample_scenes
from csmlab.geometry import axis_angle_to_matrix, quaternion_to_matrix
from csmlab.methods.acsm import Rig, bird_rig, build_model, compose, get_config, pose_vertices
from csmlab.methods.acsm import losses as L
from csmlab.methods.acsm.fit import ACSMObjective, stack_dataset
from csmlab.methods.acsm.joints import (
    articulation_errors,
    joint_angles_to_rotations,
    rotations_to_joint_angles,
    single_axis_rotation,
)
from csmlab.methods.acsm.network import PartHead, surface_points_exact
from csmlab.methods.acsm.rig import identity_transforms


@pytest.fixture(scope="module")
def birds():
    return get_category("birds")


@pytest.fixture(scope="module")
def model(birds):
    return build_model(get_config("smoke"), birds)


def random_rotations(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(torch.randn(*shape, 3, generator=g))


def test_zero_angles_give_the_rigid_template(model):
    R, t = identity_transforms(model.rig, (2, 3))
    verts = model.pose(R, t)
    assert torch.equal(verts, model.template.verts.expand(2, 3, -1, -1))
    tables = model.posed_table(verts.reshape(6, -1, 3))
    assert (tables - model.template.uv_map).abs().max() < 1e-5
    # and a non-zero angle does move the wing's vertices (the check above could not pass vacuously)
    R2 = R.clone()
    R2[0, 0, 4] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.5]))
    moved = (model.pose(R2, t)[0, 0] - model.template.verts).norm(dim=-1) > 1e-4
    assert moved.any() and torch.equal(moved, model.rig.membership == 4)


def test_recursive_composition_matches_a_hand_composed_chain():
    # root -> a -> b, each part one vertex; b's vertex must move by T_root(T_a(T_b(x))).
    pivots = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.1, 0.0], [0.6, -0.2, 0.1]])
    rig = Rig(("root", "a", "b"), (-1, 0, 1), torch.tensor([0, 1, 2]), pivots)
    verts = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.0, -0.1], [0.8, -0.3, 0.2]])
    R = random_rotations((3,), seed=1)
    t = torch.tensor([[0.01, 0.0, 0.02], [0.0, -0.03, 0.0], [0.02, 0.01, -0.01]])

    def T(p, x):
        return R[p] @ (x - pivots[p]) + pivots[p] + t[p]

    posed = pose_vertices(rig, verts, R, t)
    expected = [T(0, verts[0]), T(0, T(1, verts[1])), T(0, T(1, T(2, verts[2])))]
    for v in range(3):
        assert torch.allclose(posed[v], expected[v], atol=1e-6)
    # applying the ancestors root-first (the other order) gives another answer for the depth-2 part
    assert not torch.allclose(posed[2], T(1, T(0, T(2, verts[2]))), atol=1e-3)
    A, b = compose(rig, R, t)
    assert A.shape == (3, 3, 3) and b.shape == (3, 3)


def _zero_deform_sample(birds, seed=3, res=32):
    scenes = sample_scenes(birds, 2, seed, "full", "full")
    scenes["deform"] = torch.zeros_like(scenes["deform"])
    return scenes, render_scenes(birds, scenes, res)


def test_articulated_cycle_is_zero_for_the_true_camera_joints_and_uv(birds, model):
    scenes, sample = _zero_deform_sample(birds)
    rig = bird_rig(birds, 5, soft=True)          # the generator's own skinning
    R_true = joint_angles_to_rotations(scenes["articulation"], rig.names)
    cams = {"scale": scenes["scale"][:, None], "quat": scenes["quat"][:, None], "trans": scenes["trans"][:, None]}
    mask = sample["mask"]
    H = mask.shape[-1]
    uv = sample["surface_uv"].permute(0, 2, 3, 1)

    def cycle(rotations):
        verts = pose_vertices(rig, birds.template.verts, rotations)                 # [2,V,3]
        pts = torch.stack([surface_points_exact(model.template, uv[b].reshape(-1, 2), verts[b])
                           for b in range(2)]).reshape(2, 1, H, H, 3)
        return L.articulated_cycle_loss(pts, cams, mask)

    assert cycle(R_true).max() < 1e-9
    wrong = joint_angles_to_rotations(scenes["articulation"] + 0.5, rig.names)
    assert cycle(wrong).min() > 1e-4
    rigid = cycle(torch.eye(3).expand_as(R_true))
    assert rigid.min() > 1e-5                    # the rigid template does not close the cycle on a posed bird


def test_coverage_is_zero_when_contour_and_projection_coincide():
    verts = torch.tensor([[[[0.0, 0.0], [0.5, 0.2], [-0.3, 0.4]]]])       # [1,1,3,2]
    contour = verts[:, 0, [0, 2, 1, 1]]                                     # every contour point on a vertex
    assert L.coverage_loss(verts, contour).item() == 0.0
    off = contour + torch.tensor([0.1, 0.0])
    assert L.coverage_loss(verts, off).item() == pytest.approx(0.01, abs=1e-6)


def test_consistency_costs_only_outside_the_mask():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    dist = L.mask_distance_transform(mask > 0.5)
    assert L.consistency_loss(mask.expand(1, 2, 8, 8), dist).abs().max() == 0
    bigger = torch.ones(1, 1, 8, 8)
    assert (L.consistency_loss(bigger, dist) > 0).all()


def test_contours_lie_on_the_mask_boundary():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    c = L.contour_points(mask, 50)
    x = (c[0, :, 0] + 1) * 8 - 0.5                                           # back to column index
    y = (1 - c[0, :, 1]) * 8 - 0.5
    on_edge = (x.round() == 4) | (x.round() == 11) | (y.round() == 4) | (y.round() == 11)
    assert c.shape == (1, 50, 2) and on_edge.all()


def test_joint_angles_round_trip_and_errors(birds):
    g = torch.Generator().manual_seed(0)
    angles = (torch.rand(20, 7, generator=g) - 0.5) * 1.5
    R = joint_angles_to_rotations(angles, bird_rig(birds).names)
    back = rotations_to_joint_angles(R, bird_rig(birds).names)
    assert torch.allclose(back, angles, atol=1e-5)
    three = rotations_to_joint_angles(R[:, :3], bird_rig(birds, 3).names)
    assert torch.isnan(three[:, :4]).all() and torch.allclose(three[:, 4:], angles[:, 4:], atol=1e-5)
    obs = torch.ones(20, 7, dtype=torch.bool)
    err = articulation_errors(back + math.radians(10), angles, obs)
    assert err["articulation_error_deg"] == pytest.approx(10, abs=1e-3) and err["n_observable"] == 140


def test_part_head_starts_at_the_rest_pose():
    for rotation in ("axis", "quat"):
        head = PartHead(16, 3, 5, rotation)
        out = head(torch.randn(2, 16))
        assert torch.allclose(out["rotations"], torch.eye(3).expand(2, 3, 5, 3, 3), atol=1e-6)
        assert out["translations"].abs().max() == 0
    angle = torch.tensor([0.7])
    assert torch.allclose(single_axis_rotation(torch.tensor([[0.0, 2.0, 0.0]]), angle),
                          quaternion_to_matrix(torch.tensor([[math.cos(0.35), 0.0, math.sin(0.35), 0.0]])),
                          atol=1e-6)


def test_objective_terms_are_named_and_finite(birds, model):
    from csmlab.data.synthetic import make_dataset

    cfg = get_config("smoke", n_contour=16, w_keypoints=3.0)
    data = stack_dataset(make_dataset("birds", 4, 32, seed=1, progress=False), cfg)
    obj = ACSMObjective(cfg, birds.keypoint_weights)
    warm, _ = obj(model, data, 0)
    assert set(warm) == {"mask", "diversity"}
    terms, _ = obj(model, data, cfg["articulation_warmup_iters"])
    assert {"cycle", "visibility", "mask", "coverage", "consistency", "translation", "keypoints", "entropy",
            "diversity", "mask_pred"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert model.parts.out.weight.grad.abs().sum() > 0


def test_pretrained_round_trip(tmp_path, birds, model):
    from csmlab.methods.acsm.pretrained import load_pretrained, save_pretrained

    save_pretrained(tmp_path / "m.pt", model, get_config("smoke"), {"x": 1.0})
    back, info = load_pretrained(tmp_path / "m.pt", birds)
    assert info["metrics"] == {"x": 1.0}
    for k, v in model.state_dict().items():
        if v.is_floating_point() and not v.is_sparse:
            assert torch.allclose(back.state_dict()[k], v, atol=1e-2), k


def test_bad_input_is_refused(birds):
    member = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="cycle"):
        Rig(("body", "a", "b"), (-1, 2, 1), member, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="root"):
        Rig(("a", "b"), (1, 0), torch.tensor([0, 1]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"no.*|none"):
        Rig(("body", "head", "tail"), (-1, 0, 0), torch.tensor([0, 0, 1]), torch.zeros(3, 3))
    rig = bird_rig(birds)
    with pytest.raises(ValueError, match="rotations must be"):
        pose_vertices(rig, birds.template.verts, torch.eye(3).expand(2, 4, 3, 3))
    with pytest.raises(ValueError, match="articulation must be"):
        joint_angles_to_rotations(torch.zeros(2, 5), rig.names)
    with pytest.raises(ValueError, match="parts must be"):
        bird_rig(birds, 4)
    with pytest.raises(ValueError, match="translations must be"):
        compose(rig, torch.eye(3).expand(5, 3, 3), torch.zeros(5, 2))


def test_rig_from_acsm_cachedir_fixture(tmp_path):
    from fixtures_real2 import ACSM_PART_OF, build_acsm

    from csmlab.data.real.acsm import load_template
    from csmlab.methods.acsm.full_scale import PAPER, requirements, rig_from_acsm_template

    voc = tmp_path / "pascal3d" / "PASCAL3D+_release1.1" / "PASCAL" / "VOCdevkit" / "VOC2012" / "JPEGImages"
    build_acsm(tmp_path / "acsm", voc, tmp_path / "imagenet")
    t = load_template(tmp_path, "horse")
    rig = rig_from_acsm_template(t)
    assert rig.names == ("body", "L_leg", "R_leg") and rig.parents == (-1, 0, 0)
    assert rig.membership.tolist() == ACSM_PART_OF
    R = torch.eye(3).expand(3, 3, 3).clone()
    R[1] = axis_angle_to_matrix(torch.tensor([0.3, 0.0, 0.0]))
    posed = pose_vertices(rig, t["verts"], R)
    moved = (posed - t["verts"]).norm(dim=-1) > 1e-6
    assert moved.any() and torch.equal(moved & (rig.membership != 1), torch.zeros_like(moved))   # only L_leg
    assert PAPER["pascal_pck_with_keypoints"] == {"cow": 29.2, "sheep": 39.0, "horse": 44.6}
    needs = requirements(get_config("full"), tmp_path)
    assert needs and all(isinstance(n, str) for n in needs)
