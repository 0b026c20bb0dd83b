"""Evaluating ACSM on the shared split: keypoint transfer, surface and camera errors, and the articulation error.

- transfer PCK@0.1 / APK@0.1: notebook 02's protocol (``csmlab.metrics.keypoint_transfer`` on
  the predicted *rest-template* points: correspondence goes through the canonical surface);
- surface error: mean 3D distance to the true ``surface_xyz`` (and the better of the two
  global left/right labellings);
- camera error: median rotation error of the most probable hypothesis;
- articulation error, which only a synthetic benchmark can give: the most probable
  hypothesis's part rotations, read as the birds' seven joint angles
  (:func:`.joints.rotations_to_joint_angles`), against the true angles, median over the
  (image, joint) pairs the view makes *observable* (:func:`.joints.observable_joints`).
  ``rest_pose_error_deg`` is the same median for a model that always predicts the rest
  pose (a rigid template, e.g. CSM): the number to beat; ``articulation_error_all_deg`` is the
  median over every (image, joint) pair, observable or not; with a joint head started
  elsewhere (``joint_start``), ``start_pose_error_deg`` is that of always predicting the start.
"""

from __future__ import annotations

import math

import torch

from csmlab.geometry import quaternion_to_matrix, rotation_angle_deg
from csmlab.metrics import keypoint_transfer, mask_iou, sample_pairs, surface_error
from csmlab.train import predict_in_batches

from .joints import articulation_errors, observable_joints, rotations_to_joint_angles, true_part_fractions


def predict(model, images: torch.Tensor, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Model outputs over [N,3,H,W] images, in batches, in eval mode; CPU tensors."""
    return predict_in_batches(model, images, batch_size)


def best_hypothesis(pred: dict, key: str) -> torch.Tensor:
    """``pred[key]`` [N,K,...] at each image's most probable hypothesis -> [N,...]."""
    best = pred["prob"].argmax(-1)
    return pred[key][torch.arange(best.shape[0]), best]


def predicted_joint_angles(model, pred: dict, use_parts: bool = True, hypothesis: int | None = None) -> torch.Tensor:
    """[N,7] joint angles of the most probable hypothesis, or of ``hypothesis`` (0 for the rest pose, NaN for
    joints the rig lacks)."""
    R = best_hypothesis(pred, "rotations") if hypothesis is None else pred["rotations"][:, hypothesis]
    if not use_parts:
        R = torch.eye(3).expand_as(R)
    return rotations_to_joint_angles(R, model.rig.names)


def evaluate(model, data: dict, category, n_pairs: int = 1000, threshold: float = 0.1, seed: int = 0,
             pred: dict | None = None, use_parts: bool = True, observable_fraction: float = 0.03,
             joint_hypothesis: int | None = None) -> dict:
    """Metrics of a model on held-out ``data`` (``fit.stack_dataset`` output): plain floats and lists.

    ``use_parts=False`` scores the rigid predictions (the part transforms ignored), as a
    model trained with its parts off uses them.
    """
    if not isinstance(data, dict) or "image" not in data or "mask" not in data:
        raise ValueError("data must be a dict from stack_dataset with at least 'image' and 'mask'")
    pred = pred if pred is not None else predict(model, data["image"])
    out: dict = {}
    if "keypoints" in data:
        pairs = sample_pairs(data["image"].shape[0], n_pairs, seed)
        tr = keypoint_transfer(pred["points"], data["keypoints"], data["mask"], pairs, threshold)
        out.update(transfer_pck=tr["pck"], transfer_apk=tr["apk"], n_transfers=int(tr["errors"].numel()))
    if "surface_xyz" in data:
        out["surface_error"] = float(surface_error(pred["points"], data["surface_xyz"], data["mask"]).mean())
        mirrored = pred["points"] * torch.tensor([-1.0, 1.0, 1.0]).reshape(1, 3, 1, 1)
        out["surface_error_mirror"] = min(out["surface_error"], float(
            surface_error(mirrored, data["surface_xyz"], data["mask"]).mean()))
    out["mask_iou"] = float(mask_iou(torch.sigmoid(pred["mask_logit"]), data["mask"]).mean())
    if "cam_quat" in data:
        q = best_hypothesis(pred, "quat")
        out["camera_error_deg"] = float(rotation_angle_deg(quaternion_to_matrix(q),
                                                           quaternion_to_matrix(data["cam_quat"])).median())
    if "articulation" in data and "surface_xyz" in data:
        observable = observable_joints(true_part_fractions(data["surface_xyz"], data["mask"]), observable_fraction)
        angles = predicted_joint_angles(model, pred, use_parts, joint_hypothesis)
        flip = (category.articulation_flip_perm, category.articulation_flip_sign)
        art = articulation_errors(angles, data["articulation"], observable, *flip)
        rest = articulation_errors(torch.zeros_like(angles).where(torch.isfinite(angles), angles),
                                   data["articulation"], observable)
        out.update(art)
        everything = articulation_errors(angles, data["articulation"], torch.ones_like(observable))
        out["articulation_error_all_deg"] = everything["articulation_error_deg"]   # every (image, joint) pair
        out["rest_pose_error_deg"] = rest["articulation_error_deg"]
        out["rest_pose_per_joint_deg"] = rest["per_joint_deg"]
        start = getattr(model.parts, "joint_start", None)
        if start is not None and bool(start.abs().max() > 0):   # the joint head's start pose, held fixed
            fixed = articulation_errors(start.to(angles).expand_as(angles).where(torch.isfinite(angles), angles),
                                        data["articulation"], observable)
            out["start_pose_error_deg"] = fixed["articulation_error_deg"]
            out["start_pose_per_joint_deg"] = fixed["per_joint_deg"]
        out["n_observable_possible"] = int(observable.sum())
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}
