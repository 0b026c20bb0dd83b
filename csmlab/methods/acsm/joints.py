"""Part rotations: ACSM's single learned axis with an angle, the quaternion variant, and the birds' joint angles.

The synthetic birds pose their parts with seven joint angles (``category.joint_names``,
``csmlab.data.synthetic.birds_template.part_rotations``):

- head ``Ry(yaw) Rx(-pitch)``, tail ``Rx(tail_pitch)``;
- left wing ``Rz(flap) Ry(sweep)``, right wing its mirror ``Rz(-flap) Ry(-sweep)``.

:func:`rotations_to_joint_angles` reads those angles back from any rotation of each part
(an Euler decomposition in the same order), so a model's predicted part rotations, single
axis or quaternion, are scored against the true angles (:func:`articulation_errors`).
"""

from __future__ import annotations

import math

import torch

from csmlab.geometry import axis_angle_to_matrix, quaternion_to_matrix

# joint index -> (part name, which angle); the order of csmlab.data.synthetic JOINT_NAMES
JOINT_PARTS = ("right_wing", "left_wing", "right_wing", "left_wing", "head", "head", "tail")


def single_axis_rotation(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """[...,3,3] rotation by ``angle`` [...] about the (normalised) ``axis`` [...,3] (ACSM's ``single_axis_pred``)."""
    if axis.shape[-1:] != (3,) or axis.shape[:-1] != angle.shape:
        raise ValueError(f"axis must be [...,3] and angle [...] with the same leading shape, got "
                         f"{list(axis.shape)} and {list(angle.shape)}")
    return axis_angle_to_matrix(torch.nn.functional.normalize(axis, dim=-1) * angle[..., None])


def quaternion_rotation(quat: torch.Tensor) -> torch.Tensor:
    """[...,3,3] rotation of a (normalised) quaternion [...,4] (w, x, y, z): the full-rotation variant."""
    return quaternion_to_matrix(quat)


def _rot(axis: int, angle: torch.Tensor) -> torch.Tensor:
    aa = torch.zeros(angle.shape + (3,), dtype=angle.dtype, device=angle.device)
    aa[..., axis] = angle
    return axis_angle_to_matrix(aa)


def joint_angles_to_rotations(articulation: torch.Tensor, part_names) -> torch.Tensor:
    """[...,7] true joint angles -> [...,P,3,3] rotation of each named part (the body and unknown parts: identity)."""
    if articulation.shape[-1:] != (7,):
        raise ValueError(f"articulation must be [...,7] (the birds' joint angles), got {list(articulation.shape)}")
    rwf, lwf, rws, lws, yaw, pitch, tail = articulation.unbind(-1)
    eye = torch.eye(3, dtype=articulation.dtype).expand(articulation.shape[:-1] + (3, 3))
    table = {"head": _rot(1, yaw) @ _rot(0, -pitch), "tail": _rot(0, tail),
             "right_wing": _rot(2, -rwf) @ _rot(1, -rws), "left_wing": _rot(2, lwf) @ _rot(1, lws)}
    return torch.stack([table.get(name, eye) for name in part_names], -3)


def rotations_to_joint_angles(rotations: torch.Tensor, part_names) -> torch.Tensor:
    """[...,P,3,3] part rotations -> [...,7] joint angles (NaN for joints whose part the rig does not have).

    Exact for rotations of the birds' form; for others, the angles of the same Euler order.
    """
    names = list(part_names)
    if rotations.shape[-3:] != (len(names), 3, 3):
        raise ValueError(f"rotations must be [...,{len(names)},3,3] for parts {names}, got {list(rotations.shape)}")
    nan = torch.full(rotations.shape[:-3], math.nan, dtype=rotations.dtype)

    def part(name):
        return rotations[..., names.index(name), :, :] if name in names else None

    def zy(R):   # R = Rz(a) Ry(b) -> (a, b)
        return torch.atan2(-R[..., 0, 1], R[..., 1, 1]), torch.atan2(-R[..., 2, 0], R[..., 2, 2])

    out = [nan] * 7
    if (R := part("right_wing")) is not None:
        a, b = zy(R)
        out[0], out[2] = -a, -b
    if (R := part("left_wing")) is not None:
        out[1], out[3] = zy(R)
    if (R := part("head")) is not None:    # Ry(y) Rx(x), x = -pitch
        out[4] = torch.atan2(-R[..., 2, 0], R[..., 0, 0])
        out[5] = -torch.atan2(-R[..., 1, 2], R[..., 1, 1])
    if (R := part("tail")) is not None:
        out[6] = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    return torch.stack(out, -1)


def wrapped_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| wrapped into [0, pi] (radians)."""
    return torch.remainder(a - b + math.pi, 2 * math.pi).sub(math.pi).abs()


def observable_joints(part_fraction: torch.Tensor, min_fraction: float = 0.03) -> torch.Tensor:
    """[N,7] bool: a joint is *observable* in an image when its part covers >= ``min_fraction`` of the foreground.

    ``part_fraction`` [N,P5] is the fraction of foreground pixels whose true template point
    belongs to each of the five parts (:func:`true_part_fractions`). A part the view hides
    (behind the body, or edge-on and thinner than a pixel) leaves its angle undetermined by
    the image, and no method could be blamed for it.
    """
    index = {"head": 1, "tail": 2, "right_wing": 3, "left_wing": 4}
    return torch.stack([part_fraction[:, index[p]] >= min_fraction for p in JOINT_PARTS], -1)


def true_part_fractions(surface_xyz: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N,5] fraction of each image's foreground showing each part (the part of the pixel's true template point)."""
    from csmlab.data.synthetic.birds_template import skin_weights

    part = skin_weights(surface_xyz.permute(0, 2, 3, 1).double()).argmax(-1)          # [N,H,W]
    m = mask[:, 0] > 0.5
    counts = torch.stack([((part == p) & m).flatten(1).sum(1) for p in range(5)], -1).double()
    return (counts / m.flatten(1).sum(1, keepdim=True).clamp_min(1)).float()


def articulation_errors(pred_angles: torch.Tensor, true_angles: torch.Tensor, observable: torch.Tensor,
                        flip_perm=None, flip_sign=None) -> dict:
    """Median per-joint angle errors (degrees) over the observable (image, joint) pairs.

    Returns ``articulation_error_deg`` (median over all observable pairs of all joints the
    rig predicts), ``per_joint_deg`` [7] (NaN where none), ``n_observable`` and, with the
    category's ``flip_perm``/``flip_sign``, ``articulation_error_mirror_deg``: the same for the
    mirrored left/right labelling (a surface map may learn the mirror image of the template).
    """
    def score(pred):
        err = torch.rad2deg(wrapped_difference(pred, true_angles))
        use = observable & torch.isfinite(err)
        per = torch.tensor([float(err[use[:, j], j].median()) if use[:, j].any() else math.nan for j in range(7)])
        total = float(err[use].median()) if use.any() else math.nan
        return total, per, int(use.sum())

    total, per, n = score(pred_angles)
    out = {"articulation_error_deg": total, "per_joint_deg": per.tolist(), "n_observable": n}
    if flip_perm is not None:
        mirrored = pred_angles[:, torch.as_tensor(flip_perm)] * torch.as_tensor(flip_sign, dtype=pred_angles.dtype)
        out["articulation_error_mirror_deg"] = min(total, score(mirrored)[0])
    return out
