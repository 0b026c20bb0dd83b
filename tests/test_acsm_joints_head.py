"""ACSM's joint-angle part head (``rotation="joints"``) and the per-head learning-rate multipliers."""

import pytest
import torch

from csmlab.data.synthetic import get_category
from csmlab.methods.acsm import get_config
from csmlab.methods.acsm.fit import build_model, parameter_groups
from csmlab.methods.acsm.joints import rotations_to_joint_angles
from csmlab.methods.acsm.network import PartHead
from csmlab.methods.acsm.rig import BIRD_PARTS_5


@pytest.fixture(scope="module")
def limits():
    cat = get_category("birds")
    return cat.articulation_low, cat.articulation_high


def test_joint_head_starts_at_rest_and_stays_inside_the_joint_range(limits):
    head = PartHead(16, 3, 5, "joints", hidden=8, part_names=BIRD_PARTS_5, joint_limits=limits)
    out = head(torch.randn(2, 16))
    assert torch.allclose(out["joint_angles"], torch.zeros(2, 3, 7), atol=1e-6)
    assert torch.allclose(out["rotations"], torch.eye(3).expand(2, 3, 5, 3, 3), atol=1e-6)
    with torch.no_grad():
        head.joint_out.weight.normal_(0, 50.0)          # drive tanh into saturation
    angles = head(torch.randn(64, 16))["joint_angles"]
    assert (angles >= limits[0] - 1e-6).all() and (angles <= limits[1] + 1e-6).all()
    assert (angles.amax((0, 1)) - limits[1]).abs().max() < 0.05   # it reaches the ends of the range


def test_joint_head_rotations_decode_to_its_angles(limits):
    head = PartHead(16, 2, 5, "joints", hidden=8, part_names=BIRD_PARTS_5, joint_limits=limits)
    with torch.no_grad():
        head.joint_out.weight.normal_(0, 0.5)
    out = head(torch.randn(4, 16))
    decoded = rotations_to_joint_angles(out["rotations"], BIRD_PARTS_5)
    assert torch.allclose(decoded, out["joint_angles"], atol=1e-4)


def test_joint_head_refuses_missing_names_or_limits(limits):
    with pytest.raises(ValueError, match="part_names"):
        PartHead(16, 2, 5, "joints", part_names=None, joint_limits=limits)
    with pytest.raises(ValueError, match="joint_limits"):
        PartHead(16, 2, 5, "joints", part_names=BIRD_PARTS_5, joint_limits=(limits[1], limits[0]))


def test_a_zero_camera_multiplier_freezes_the_camera_head():
    cfg = get_config("smoke", "joints", camera_lr_mult=0.0, part_lr_mult=5.0)
    model = build_model(cfg, get_category("birds"))
    groups = parameter_groups(model, cfg)
    assert sorted(g["lr"] for g in groups) == sorted([0.0, 5 * cfg["lr"], cfg["lr"]])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(groups)
    out = model(torch.rand(2, 3, 32, 32))
    (out["scale"].sum() + out["joint_angles"].sum() + out["points"].sum()).backward()
    opt.step()
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before if n.startswith("camera."))
    assert not torch.equal(before["parts.joint_out.bias"], after["parts.joint_out.bias"])
    with pytest.raises(ValueError, match="camera_lr_mult"):
        parameter_groups(model, {**cfg, "camera_lr_mult": -1.0})


def test_joint_head_can_start_at_the_folded_pose(limits):
    from csmlab.data.synthetic.birds_priors import folded_articulation

    birds = get_category("birds")
    model = build_model(get_config("smoke", "joints", joint_start="folded"), birds)
    out = model(torch.rand(2, 3, 32, 32))
    folded = folded_articulation(birds)
    assert torch.allclose(out["joint_angles"], folded.expand(2, model.n_hypotheses, 7), atol=1e-5)
    assert folded[:4].min() > 1.0 and folded[4:].abs().max() == 0      # wings folded, head and tail straight
    # the start is not a state-dict entry: checkpoints of either start load into the other
    rest = build_model(get_config("smoke", "joints"), birds)
    assert set(rest.state_dict()) == set(model.state_dict())
    with pytest.raises(ValueError, match="joint_start"):
        build_model(get_config("smoke", "joints", joint_start="flying"), birds)
    with pytest.raises(ValueError, match="joint_start"):
        PartHead(16, 2, 5, "joints", part_names=BIRD_PARTS_5, joint_limits=limits, joint_start=limits[1])


def test_the_true_camera_diagnostic_uses_one_hypothesis():
    from csmlab.data.synthetic import make_dataset
    from csmlab.methods.acsm.fit import ACSMObjective, stack_dataset

    birds = get_category("birds")
    cfg = get_config("smoke", "joints", gt_cameras=True)
    model = build_model(cfg, birds)
    data = stack_dataset(make_dataset("birds", 2, 32, seed=5, progress=False), cfg)
    terms, _ = ACSMObjective(cfg)(model, data, cfg["articulation_warmup_iters"])
    assert "entropy" not in terms and all(torch.isfinite(v) for v in terms.values())


def test_the_true_joints_diagnostic_ignores_the_part_head_and_the_map_term_trains_the_unet():
    from csmlab.data.synthetic import make_dataset
    from csmlab.methods.acsm.fit import ACSMObjective, stack_dataset

    birds = get_category("birds")
    cfg = get_config("smoke", "joints", gt_cameras=True, gt_articulation=True, w_surface_gt=1.0)
    model = build_model(cfg, birds)
    data = stack_dataset(make_dataset("birds", 2, 32, seed=5, progress=False), cfg)
    it = cfg["articulation_warmup_iters"]
    with torch.no_grad():
        before = ACSMObjective(cfg)(model, data, it)[0]
        model.parts.joint_out.bias.add_(1.0)          # another predicted pose: the true joints are used instead
        after = ACSMObjective(cfg)(model, data, it)[0]
    assert "translation" not in before and float(before["surface_gt"]) > 0
    for name in ("cycle", "visibility", "mask", "coverage"):
        assert torch.allclose(before[name], after[name]), name
    model.zero_grad()
    ACSMObjective(cfg)(model, data, it)[0]["surface_gt"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.unet.parameters())


def test_metric_angle_convention_matches_the_synthetic_birds():
    """The articulation metric reads angles back in the data's own convention (joint order, signs, Euler order):
    the synthetic skinning's part rotations decode to the true angles, joint by joint."""
    from csmlab.data.synthetic.birds_template import PART_NAMES, part_rotations
    from csmlab.methods.acsm.joints import joint_angles_to_rotations

    cat = get_category("birds")
    g = torch.Generator().manual_seed(3)
    lo, hi = cat.articulation_low.double(), cat.articulation_high.double()
    angles = lo + (hi - lo) * torch.rand(32, 7, generator=g, dtype=torch.float64)
    true_R = part_rotations(angles)
    assert torch.allclose(joint_angles_to_rotations(angles, PART_NAMES), true_R, atol=1e-9)
    assert torch.allclose(rotations_to_joint_angles(true_R, PART_NAMES), angles, atol=1e-6)


def test_training_data_mixes_rungs_in_equal_parts_and_keeps_a_single_rung_unchanged(tmp_path):
    from csmlab.data.synthetic import make_dataset, rung_priors
    from csmlab.methods.acsm.__main__ import training_data

    cfg = get_config("smoke", "joints", n_train=5, rung="B+C")
    mixed = training_data(cfg, root=tmp_path, progress=False)
    single = training_data(get_config("smoke", "joints", n_train=3, rung="B"), root=tmp_path, progress=False)
    c_part = make_dataset("birds", 2, 32, seed=11000, root=tmp_path, progress=False, **rung_priors("C"))
    c_part = c_part.batch(slice(None))
    assert mixed["image"].shape[0] == 5 and mixed["contour"].shape[0] == 5
    assert torch.equal(mixed["image"][:3], single["image"])          # part 0: the same birds as rung B alone
    assert torch.equal(mixed["articulation"][3:], c_part["articulation"].float())   # part 1: seed + 1000
    with pytest.raises(ValueError, match=r"rung must be .*got 'B\+Z'"):   # the whole value, not only 'Z'
        training_data(get_config("smoke", "joints", n_train=4, rung="B+Z"), root=tmp_path, progress=False)
