"""Training ACSM: batches with contours and distance transforms, the objective (a dict of named terms), ``fit``.

The schedule is ACSM's: until ``pose_warmup_iters`` only the silhouettes train the camera
hypotheses (the U-Net is not run); until ``articulation_warmup_iters`` every term runs
on the *rigid* template; from then on each hypothesis poses the template with its
predicted part transforms. Masks only, unless ``w_keypoints`` > 0. ``gt_cameras=True`` is a
diagnostic, not ACSM: the true camera replaces the hypotheses (the parts of hypothesis 0
pose the template), to ask whether the articulation is learnable when the camera is right;
``gt_articulation=True`` (diagnostic) poses it at the true joint angles, so that with both the
cycle trains the U-Net's map through the true articulated template: what ACSM's signal could give
the map if camera and joints were solved; ``w_surface_gt`` > 0 (diagnostic, not ACSM) supervises
the map with the true template points: what the U-Net can learn at all.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from csmlab.config import get_device
from csmlab.geometry.uvmap import TemplateUV
from csmlab.surface_losses import expected, mask_bce, mask_render_loss, rotation_diversity, usage_entropy
from csmlab.train import History, data_fingerprint, train

from . import losses as L
from .joints import joint_angles_to_rotations
from .network import ACSMNet, load_csm_weights
from .rig import bird_rig, identity_transforms

BATCH_KEYS = ("image", "mask", "surface_xyz", "surface_uv", "keypoints", "articulation")


def stack_dataset(dataset, cfg: dict | None = None) -> dict[str, torch.Tensor]:
    """A synthetic dataset -> batched tensors, plus ``contour`` [N,C,2] and ``mask_distance`` [N,1,h,w].

    The camera is split into ``cam_scale`` [N], ``cam_quat`` [N,4], ``cam_trans`` [N,2]. Contours
    and distance transforms are computed once here (ACSM precomputes them per image too);
    the distance transform is taken at the render resolution.
    """
    cfg = cfg or {}
    if not (hasattr(dataset, "batch") and hasattr(dataset, "__len__")):
        raise ValueError(f"dataset must be a synthetic dataset (with .batch), got {type(dataset).__name__}")
    b = dataset.batch(slice(None))
    out = {k: b[k].float() for k in BATCH_KEYS if k in b}
    if "camera" in b:
        out.update({f"cam_{k}": b["camera"][k].float() for k in ("scale", "quat", "trans")})
    out["contour"] = L.contour_points(out["mask"], int(cfg.get("n_contour", 100)), int(cfg.get("seed", 0)))
    res = cfg.get("render_resolution") or out["mask"].shape[-1]
    small = out["mask"] if res == out["mask"].shape[-1] else F.interpolate(out["mask"], size=(res, res), mode="area")
    out["mask_distance"] = L.mask_distance_transform(small > 0.5)
    return out


def batch_sampler(data: dict, batch_size: int, seed: int, device):
    n = data["image"].shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) is larger than the training set ({n})")

    def batch_fn(iteration: int) -> dict:
        g = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
        idx = torch.randperm(n, generator=g)[:batch_size]
        return {k: v[idx].to(device) for k, v in data.items()}

    return batch_fn


class ACSMObjective:
    """``(model, batch, iteration) -> (terms, monitors)`` for :func:`csmlab.train.train`.

    Terms, each already weighted: ``cycle``, ``visibility``, ``mask``, ``mask_pred``,
    ``coverage``, ``consistency``, ``translation`` (part translations; only with parts on),
    ``entropy``, ``diversity`` (the hypotheses' rotation regulariser), ``keypoints`` (optional).
    """

    def __init__(self, cfg: dict, keypoint_weights: torch.Tensor | None = None):
        self.cfg = cfg
        self.keypoint_weights = keypoint_weights

    def parts_on(self, iteration: int) -> bool:
        return bool(self.cfg["use_parts"]) and iteration >= self.cfg["articulation_warmup_iters"]

    def __call__(self, model: ACSMNet, batch: dict, iteration: int):
        cfg = self.cfg
        img, mask = batch["image"], batch["mask"]
        H = img.shape[-1]
        res = cfg["render_resolution"] or H
        mask_small = mask if res == H else F.interpolate(mask, size=(res, res), mode="area")
        if iteration < cfg["pose_warmup_iters"]:
            return self.warmup_terms(model, img, mask_small, res)
        out = model(img)
        cams = {k: out[k] for k in ("scale", "quat", "trans", "prob")}
        if cfg.get("gt_cameras"):   # diagnostic: the true camera, one hypothesis (the parts of hypothesis 0)
            cams = {k: batch[f"cam_{k}"][:, None] for k in ("scale", "quat", "trans")}
            cams["prob"] = torch.ones_like(cams["scale"])
            out = {**out, "rotations": out["rotations"][:, :1], "translations": out["translations"][:, :1]}
        B, K = cams["scale"].shape
        if cfg.get("gt_articulation"):   # diagnostic: the true joint angles, no part translation
            R = joint_angles_to_rotations(batch["articulation"], model.rig.names)[:, None].expand(B, K, -1, -1, -1)
            t = torch.zeros(R.shape[:-1], dtype=R.dtype, device=R.device)
        elif self.parts_on(iteration):
            R, t = out["rotations"], out["translations"]
        else:
            R, t = identity_transforms(model.rig, (B, K), img.dtype)
            R, t = R.to(img.device), t.to(img.device)
        verts = model.pose(R, t)                                                   # [B,K,V,3]
        points = model.articulated_points(out["uv"], verts)                       # [B,K,H,W,3]
        rendered = L.render_posed(verts, model.template.faces, cams, res)
        prob = cams["prob"]
        terms = {
            "cycle": cfg["w_cycle"] * expected(L.articulated_cycle_loss(points, cams, mask), prob),
            "visibility": cfg["w_visibility"] * expected(L.articulated_visibility_loss(points, cams, rendered, mask),
                                                         prob),
            "mask_pred": cfg["w_mask_pred"] * mask_bce(out["mask_logit"], mask),
        }
        if cfg["w_mask"]:
            terms["mask"] = cfg["w_mask"] * expected(mask_render_loss(rendered["silhouette"], mask_small), prob)
        if cfg["w_coverage"]:   # ACSM averages coverage and consistency over the hypotheses, unweighted
            cov = L.coverage_loss(L.project_vertices(verts, cams), batch["contour"], cfg["coverage_k"])
            terms["coverage"] = cfg["w_coverage"] * cov.mean()
        if cfg["w_consistency"]:
            terms["consistency"] = cfg["w_consistency"] * L.consistency_loss(rendered["silhouette"],
                                                                             batch["mask_distance"]).mean()
        if cfg.get("w_surface_gt"):   # diagnostic: the true template point of every foreground pixel
            err = (out["points"] - batch["surface_xyz"]).norm(dim=1)
            terms["surface_gt"] = cfg["w_surface_gt"] * (err * mask[:, 0]).sum() / mask.sum().clamp_min(1)
        if self.parts_on(iteration) and cfg["w_translation"] and not cfg.get("gt_articulation"):
            terms["translation"] = cfg["w_translation"] * L.translation_regulariser(t)
        if cfg["w_keypoints"]:
            kp = L.keypoint_loss(verts, cams, self.keypoint_weights, batch["keypoints"], H)
            terms["keypoints"] = cfg["w_keypoints"] * expected(kp, prob)
        if K > 1:
            terms["entropy"] = -cfg["w_entropy"] * usage_entropy(prob)
            terms["diversity"] = cfg["w_diversity"] * rotation_diversity(cams["quat"])
        with torch.no_grad():
            monitors = {"max_prob": float(prob.max(-1).values.mean())}
            if "angle" in out:
                monitors["mean_abs_angle_deg"] = float(torch.rad2deg(out["angle"].abs()).mean())
        return terms, monitors

    def warmup_terms(self, model: ACSMNet, img, mask_small, res):
        """Pose warm-up: the rigid template's silhouettes only (weights: softmin of the detached mask losses)."""
        cams = model.camera(img)
        B, K = cams["scale"].shape
        verts = model.template.verts[None, None].expand(B, K, -1, -1)
        rendered = L.render_posed(verts, model.template.faces, cams, res)
        mask_k = mask_render_loss(rendered["silhouette"], mask_small)
        tau = self.cfg["warmup_temperature"]
        weights = torch.softmax(-mask_k.detach() / tau, -1) if tau > 0 else torch.full_like(mask_k, 1.0 / K)
        terms = {"mask": max(self.cfg["w_mask"], 1.0) * expected(mask_k, weights)}
        if K > 1:
            terms["diversity"] = self.cfg["w_diversity"] * rotation_diversity(cams["quat"])
        return terms, {"max_prob": float(cams["prob"].detach().max(-1).values.mean())}


def build_model(cfg: dict, category, init_scale: float = 0.7) -> ACSMNet:
    """A fresh ACSMNet for ``cfg`` on the category's rig, drawn on a forked random stream seeded by ``cfg['seed']``."""
    tuv = TemplateUV(category.template, category.template_uv, tuple(cfg["uv_grid"]))
    rig = bird_rig(category, cfg["parts"])
    with torch.random.fork_rng():
        torch.manual_seed(int(cfg["seed"]))
        return ACSMNet(tuv, rig, n_hypotheses=cfg["n_hypotheses"], unet_base=cfg["unet_base"],
                       unet_depth=cfg["unet_depth"], cam_base=cfg["cam_base"], cam_down=cfg["cam_down"],
                       init_scale=init_scale, max_elevation_deg=cfg["max_elevation_deg"],
                       max_roll_deg=cfg["max_roll_deg"], stem_stride=cfg["stem_stride"], rotation=cfg["rotation"],
                       part_hidden=cfg["part_hidden"], joint_start=joint_start_angles(cfg, category),
                       joint_limits=(category.articulation_low, category.articulation_high))


JOINT_STARTS = ("rest", "folded")


def joint_start_angles(cfg: dict, category) -> torch.Tensor | None:
    """The joint head's start pose: ``cfg['joint_start']`` "rest" (None: all angles 0) or "folded".

    "folded" is the rung-B prior's typical perched bird (``birds_priors.folded_articulation``:
    wings folded back, head and tail straight), the pose of ACSM's CUB template (the
    category's mean shape). Only the joint head uses it.
    """
    start = cfg.get("joint_start", "rest")
    if start not in JOINT_STARTS:
        raise ValueError(f"cfg['joint_start'] must be one of {JOINT_STARTS}, got {start!r}")
    if start == "rest":
        return None
    from csmlab.data.synthetic.birds_priors import folded_articulation

    return folded_articulation(category)


def parameter_groups(model: ACSMNet, cfg: dict) -> list[dict]:
    """Adam groups: the camera head at ``cfg['camera_lr_mult']`` x lr, the part head at ``cfg['part_lr_mult']`` x lr.

    A multiplier of 0 freezes that head (its parameters still get gradients, Adam takes no step), e.g. to keep
    a warm start's cameras while the parts learn, so that the parts cannot trade places with the camera.
    """
    mults = {"camera.": float(cfg.get("camera_lr_mult", 1.0)), "parts.": float(cfg.get("part_lr_mult", 1.0))}
    for key, m in mults.items():
        if not (m >= 0 and m == m):
            raise ValueError(f"cfg['{key[:-1]}_lr_mult'] must be a number >= 0, got {m!r}")
    groups = {key: [] for key in (*mults, "")}
    for name, param in model.named_parameters():
        groups[next((k for k in mults if name.startswith(k)), "")].append(param)
    return [{"params": ps, "lr": cfg["lr"] * mults.get(k, 1.0)} for k, ps in groups.items() if ps]


def mask_init_scale(category, masks: torch.Tensor) -> float:
    """Camera scale whose template silhouettes cover, on average, the masks' area (masks only)."""
    from csmlab.nets.camera_head import base_quaternions

    H = masks.shape[-1]
    cams = {"scale": torch.ones(1, 8), "quat": base_quaternions(8)[None], "trans": torch.zeros(1, 8, 2)}
    verts = category.template.verts.float()[None, None].expand(1, 8, -1, -1)
    with torch.no_grad():
        area = L.render_posed(verts, category.template.faces, cams, H)["coverage"].mean()
    return float((masks.float().mean() / area.clamp_min(1e-6)).sqrt())


class _TimeUp(Exception):
    pass


def fit(cfg: dict, data: dict, category, *, model: ACSMNet | None = None, checkpoint_path=None,
        progress: bool = True, callback=None, max_seconds: float | None = None) -> tuple[ACSMNet, History]:
    """Train ACSM on ``data`` (:func:`stack_dataset` output). Returns (model in eval mode, history).

    With ``cfg['init_from']`` (a CSM pretrained file) the U-Net and camera head start from it.
    ``max_seconds`` caps the wall time: training stops at the first check (every 20
    iterations) past it, and ``history['stopped_at']`` records the iteration.
    """
    if not isinstance(data, dict) or "contour" not in data:
        raise ValueError("data must be a dict from stack_dataset (with 'contour' and 'mask_distance')")
    if cfg["data"] != "synthetic":
        raise ValueError(f"fit trains on the synthetic birds here; cfg['data']={cfg['data']!r} needs the full-scale "
                         f"recipe (see csmlab.methods.acsm.full_scale.requirements)")
    device = get_device(cfg.get("device"))
    if model is None:
        model = build_model(cfg, category, cfg["init_scale"] or mask_init_scale(category, data["mask"][:256]))
        if cfg["init_from"]:
            load_csm_weights(model, cfg["init_from"])
    model = model.to(device)
    objective = ACSMObjective(cfg, category.keypoint_weights.to(device))
    optimizer = torch.optim.Adam(parameter_groups(model, cfg), lr=cfg["lr"])
    history, start = History(), time.monotonic()
    every = cfg["eval_every"] or 0

    def check(iteration, model, history):
        if callback is not None and every and (iteration % every == 0 or iteration == cfg["iters"]):
            callback(iteration, model, history)
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            history.log(iteration, {"stopped_at": float(iteration)})
            raise _TimeUp

    with torch.random.fork_rng():
        torch.manual_seed(int(cfg["seed"]))
        try:
            train(model, optimizer, objective, batch_sampler(data, cfg["batch_size"], int(cfg["seed"]), device),
                  cfg["iters"], history=history, checkpoint_path=checkpoint_path,
                  checkpoint_every=max(cfg["iters"] // 10, 1) if checkpoint_path else 0,
                  grad_clip=cfg["grad_clip"], progress=progress, desc=f"ACSM {cfg['variant']}",
                  extra_state={"cfg": cfg}, callback=check, callback_every=20 if max_seconds else (every or 0),
                  provenance={"cfg": cfg, "data": data_fingerprint(data)} if checkpoint_path else None)
        except _TimeUp:
            pass
    model.eval()
    return model, history
