"""Training end-to-end To The Point: the objective (named weighted terms), batching and ``fit(cfg, data)``.

Per batch (TTP's ``main.py``, ``forward``): regress (u, v) -> solve (R, s, t, c) with
gradients by the implicit function theorem -> V = T + B c -> render the silhouette and
the image-textured mesh under the solved camera -> the terms of :mod:`.losses`; a second
pass on an affinely warped copy of the images gives the equivariance term. With
``cfg["flip_train"]`` (TTP's ``--flip_train``, in the README's CUB recipe) the batch is doubled
with its left-right mirror images (:func:`flip_batch`), every term sees both halves, and the
``flip_camera`` term ties the two halves' solved cameras together.
"""

from __future__ import annotations

import math
import time

import torch

from csmlab.config import get_device
from csmlab.geometry import laplacian_weights
from csmlab.train import History, seed_everything, train

from . import losses as L
from .model import TTPNet
from .solver import SolverConfig


class TimeUp(Exception):
    """Raised by the wall-clock guard of :func:`fit` (``cfg['max_minutes']``)."""


def stack_samples(data) -> dict[str, torch.Tensor]:
    """A synthetic dataset (``.batch``) or a list of sample dicts -> batched image, mask, keypoints, camera, shape."""
    if hasattr(data, "batch") and hasattr(data, "__len__"):
        batch = data.batch(slice(None))
    elif isinstance(data, (list, tuple)) and data and all(isinstance(s, dict) for s in data):
        batch = {k: torch.stack([torch.as_tensor(s[k]) for s in data]) for k in ("image", "mask", "keypoints")
                 if all(k in s for s in data)}
        if all("camera" in s for s in data):
            batch["camera"] = {k: torch.stack([torch.as_tensor(s["camera"][k]) for s in data])
                               for k in ("scale", "quat", "trans")}
        for k in ("deform", "articulation"):
            if all(k in s for s in data):
                batch[k] = torch.stack([torch.as_tensor(s[k]) for s in data])
    else:
        raise ValueError(f"data must be a synthetic dataset or a non-empty list of sample dicts, got "
                         f"{type(data).__name__}")
    if "image" not in batch or "mask" not in batch:
        raise ValueError("every sample needs 'image' and 'mask' to train TTP")
    out = {k: batch[k].float() for k in ("image", "mask", "keypoints", "deform", "articulation") if k in batch}
    if "camera" in batch:
        out.update({f"cam_{k}": batch["camera"][k].float() for k in ("scale", "quat", "trans")})
    return out


def solver_config(cfg: dict) -> SolverConfig:
    """The in-loop solver: ``def_steps`` alternations of L-BFGS (camera) and ridge (c), then Newton polishing."""
    return SolverConfig(init="procrustes", loss=cfg["solver_loss"], alternations=cfg["def_steps"],
                        lbfgs_iters=cfg["lbfgs_iters"], polish_steps=cfg["polish_steps"], seed=cfg["seed"])


def keypoint_vertices(category) -> torch.Tensor:
    """[K] the template vertex nearest to each keypoint of the category's template (TTP's ``kp_dict``)."""
    return torch.cdist(category.keypoints_template.float(), category.template.verts.float()).argmin(1)


def flip_batch(batch: dict, keypoint_flip: torch.Tensor) -> dict:
    """The batch followed by its left-right mirror images (TTP's ``mirror_image`` in ``data/base.py``).

    Images and masks are flipped along x; keypoints go to x -> W - x (pixel centres at +0.5) and
    swap left and right (``keypoint_flip``); the true camera becomes :func:`.losses.mirror_camera`'s
    (quaternion (w, x, -y, -z), translation (-tx, ty)). Other entries are not mirrored and are dropped.
    """
    img, mask = batch["image"], batch["mask"]
    out = {"image": torch.cat([img, img.flip(-1)]), "mask": torch.cat([mask, mask.flip(-1)])}
    if "keypoints" in batch:
        kp = batch["keypoints"][:, keypoint_flip.to(img.device)].clone()
        kp[..., 0] = img.shape[-1] - kp[..., 0]
        out["keypoints"] = torch.cat([batch["keypoints"], kp])
    if "cam_quat" in batch:
        q_sign = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=batch["cam_quat"].dtype, device=img.device)
        t_sign = torch.tensor([-1.0, 1.0], dtype=batch["cam_trans"].dtype, device=img.device)
        out["cam_quat"] = torch.cat([batch["cam_quat"], batch["cam_quat"] * q_sign])
        out["cam_trans"] = torch.cat([batch["cam_trans"], batch["cam_trans"] * t_sign])
        out["cam_scale"] = torch.cat([batch["cam_scale"], batch["cam_scale"]])
    return out


class TTPObjective:
    """``(model, batch, iteration) -> (terms, monitors)``: the weighted terms of :mod:`.losses`."""

    def __init__(self, cfg: dict, category):
        self.cfg = cfg
        self.solver = solver_config(cfg)
        self.kp_vertex = keypoint_vertices(category)
        self.kp_flip = category.keypoint_flip
        self.vertex_flip = category.vertex_flip.long()
        self.gen = torch.Generator().manual_seed(int(cfg["seed"]) + 7)
        self.oracle = category.basis.float() if cfg["oracle_basis"] else None
        self.cot = laplacian_weights(category.template.verts.float()[None], category.template.faces)

    def visibility_raster(self, verts, faces, out: dict, r):
        # .get: checkpoints saved before the key existed scored visibility at the render resolution
        return _visibility_raster(verts, faces, out, r, int(self.cfg.get("vis_resolution",
                                                                         self.cfg["render_resolution"])))

    def __call__(self, model: TTPNet, batch: dict, iteration: int):
        cfg, w = self.cfg, self.cfg
        flip = bool(cfg.get("flip_train", False))   # .get: checkpoints saved before the option existed
        if flip:
            batch = flip_batch(batch, self.kp_flip)
        img, mask = batch["image"], batch["mask"]
        basis = self.oracle.to(img.device) if self.oracle is not None else model.basis
        out = model(img, self.solver, cfg["gradient"], basis=basis)
        verts, faces = out["verts"], model.faces
        r = L.render_solution(verts, faces, out, cfg["render_resolution"])
        vis_r = self.visibility_raster(verts, faces, out, r)
        # .get: checkpoints saved before the key existed trained with the squared error
        raw = {"mask": L.mask_loss(r, mask, cfg.get("mask_loss", "mse")),
               "visibility": L.visibility_loss(out["visibility"], vis_r),
               "cycle": L.cycle_loss(out["points"], verts, out, mask),
               "deformation": L.deformation_loss(verts, model.template)}
        if w["w_texture"] > 0:
            raw["texture"] = L.texture_loss(r, out["points"], img, mask)
            if cfg.get("texture_flip"):   # .get: checkpoints saved before the option existed
                half = L.texture_flip_loss(verts, faces, out, out["points"], img, mask, cfg["render_resolution"])
                raw["texture"] = 0.5 * raw["texture"] + 0.5 * half
        # dt_resolution: the grid of the two distance terms (their cdist grows as its 4th power); None: render's
        dt_res = int(cfg.get("dt_resolution") or cfg["render_resolution"])
        if w["w_mask_dt"] > 0:
            raw["mask_dt"] = L.mask_dt_loss(out["points"], mask, dt_res)
        if w["w_boundary"] > 0:
            raw["boundary"] = L.boundary_loss(out["points"], mask, dt_res)
        if w["w_arap"] > 0:
            raw["arap"] = L.shape_regulariser(verts, model.template, faces, cfg["regulariser"], self.cot).mean()
        if w["w_arap_basis"] > 0 and self.oracle is None:
            modes = model.template[None] + model.basis
            raw["arap_basis"] = L.shape_regulariser(modes, model.template, faces, cfg["regulariser"], self.cot).mean()
        if w["w_equivariance"] > 0:
            aff = L.random_affine(img.shape[0], self.gen, cfg["equiv_angle_deg"], cfg["equiv_shift"]).to(img)
            warped = model.correspondences(L.warp_images(img, aff))["points"]
            raw["equivariance"] = L.equivariance_loss(warped, out["points"], aff)
        if w["w_keypoints"] > 0 and "keypoints" in batch:
            raw["keypoints"] = L.keypoint_loss(verts, out, self.kp_vertex.to(img.device), batch["keypoints"],
                                               img.shape[-1])
        if w.get("w_flip_points", 0) > 0:
            raw["flip_points"] = L.flip_points_loss(model.correspondences(img.flip(-1))["points"], out["points"],
                                                    self.vertex_flip.to(img.device))
        if flip and w["w_flip_camera"] > 0:
            half = img.shape[0] // 2
            cams = [{k: out[k][sl] for k in ("rotation", "scale", "trans")} for sl in (slice(None, half),
                                                                                     slice(half, None))]
            raw["flip_camera"] = L.flip_camera_loss(*cams)
        terms = {k: w[f"w_{k}"] * v for k, v in raw.items() if w[f"w_{k}"] > 0}
        monitors = {"mask_iou": float(_iou(r.mask, mask)), "log_reg": float(model.log_reg.detach())}
        if "cam_quat" in batch:
            from csmlab.geometry import quaternion_to_matrix, rotation_angle_deg

            err = rotation_angle_deg(out["rotation"].detach(), quaternion_to_matrix(batch["cam_quat"]))
            monitors["camera_error_deg"] = float(err.median())
        return terms, monitors


def _visibility_raster(verts, faces, out: dict, r, resolution: int):
    """The raster whose covered faces give the visibility target: ``r`` itself at the render resolution, else
    the detached solution rasterised at ``resolution`` (no gradient: the target is detached anyway)."""
    if resolution == r.face_ids.shape[-1]:
        return r
    with torch.no_grad():
        sol = {k: out[k].detach() for k in ("rotation", "scale", "trans")}
        return L.render_solution(verts.detach(), faces, sol, resolution)


def _iou(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = torch.nn.functional.interpolate(mask, size=pred.shape[-2:], mode="area") > 0.5
    p = pred > 0.5
    return ((p & m).flatten(1).sum(1) / (p | m).flatten(1).sum(1).clamp_min(1)).mean()


def training_data(cfg: dict, n: int | None = None, root=None, progress: bool = True, cache: bool = True):
    """The synthetic training set of ``cfg``: ``n`` (default ``cfg["n_train"]``) birds drawn with the priors of
    ``cfg["rung"]`` (one rung, or an equal mix such as "B+C": ``mixed_rung_dataset``; None: the generator's
    full priors), seed ``cfg["seed"]``."""
    from csmlab.data.synthetic import make_dataset, mixed_rung_dataset

    n = cfg["n_train"] if n is None else n
    if not cfg.get("rung"):
        return make_dataset(cfg["category"], n, cfg["resolution"], seed=cfg["seed"], root=root, progress=progress,
                            cache=cache)
    return mixed_rung_dataset(cfg["category"], n, cfg["resolution"], cfg["rung"], int(cfg["seed"]), root=root,
                              progress=progress, cache=cache)


def build_model(cfg: dict, category, load_encoder_weights: bool = False) -> TTPNet:
    """A fresh TTPNet for ``cfg``. With ``load_encoder_weights`` and ``cfg['encoder_weights'] == "imagenet"``
    the ResNet-18 encoder gets the official ImageNet weights (``csmlab.nets``; rebuilding a trained model
    leaves them out, its state dict holds them)."""
    encoder, weights = cfg.get("encoder", "convs"), cfg.get("encoder_weights")   # .get: older checkpoints
    if weights not in (None, "imagenet") or (weights == "imagenet" and encoder != "resnet18"):
        raise ValueError(f"cfg['encoder_weights'] must be None, or 'imagenet' with encoder='resnet18'; got "
                         f"encoder_weights={weights!r}, encoder={encoder!r}")
    model = TTPNet(category.template.verts, category.template.faces, cfg["n_basis"], cfg["resolution"],
                   cfg["width"], cfg["feat_dim"], tuple(cfg["init_view"]), seed=int(cfg["seed"]), encoder=encoder)
    if load_encoder_weights and weights == "imagenet":
        from csmlab.nets import NETS, fetch_weights, load_official

        load_official(model.encoder.trunk.resnet, fetch_weights("resnet18"), dropped=NETS["resnet18"].dropped)
    return model


def training_iterations(cfg: dict, n_train: int) -> int:
    """``cfg['iters']``, or ``cfg['epochs']`` passes over ``n_train`` images in batches of ``cfg['batch_size']``."""
    if cfg.get("iters"):
        return int(cfg["iters"])
    if not cfg.get("epochs"):
        raise ValueError("cfg needs 'iters' or 'epochs' (both are unset)")
    return int(cfg["epochs"]) * max(n_train // int(cfg["batch_size"]), 1)


def batch_sampler(data: dict, batch_size: int, seed: int, device: torch.device):
    """``iteration -> batch``: a random subset drawn from a generator seeded by (seed, iteration)."""
    n = data["image"].shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) is larger than the training set ({n})")

    def batch_fn(iteration: int) -> dict:
        g = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
        idx = torch.randperm(n, generator=g)[:batch_size]
        return {k: v[idx].to(device) for k, v in data.items()}

    return batch_fn


def param_groups(model: TTPNet, cfg: dict) -> list[dict]:
    """Adam's groups: the basis B and the ridge log-weight at ``cfg["basis_lr"]`` (None: ``cfg["lr"]``), the rest
    at ``cfg["lr"]``. Our change (presets): at the medium budget the basis moves too little at the network's lr."""
    basis_lr = cfg.get("basis_lr") or cfg["lr"]
    shape = [model.basis, model.log_reg]
    rest = [p for p in model.parameters() if all(p is not q for q in shape)]
    return [{"params": rest, "lr": cfg["lr"]}, {"params": shape, "lr": basis_lr}]


def fit(cfg: dict, data, category=None, *, model: TTPNet | None = None, checkpoint_path=None,
        progress: bool = True, callback=None) -> tuple[TTPNet, History]:
    """Train end-to-end TTP on ``data``: a synthetic dataset, a list of samples, :func:`stack_samples` output,
    or a lazy dataset of sample dicts (CUB, :func:`.full_scale.cub_splits`; read a batch at a time).

    Returns (model, history). ``cfg['max_minutes']`` (None: no limit) stops training at the
    first iteration past that wall-clock budget; ``history["stopped_at"]`` then records where.
    """
    from .full_scale import category_for, is_lazy, lazy_batch_sampler

    lazy = is_lazy(data)
    data = data if lazy or isinstance(data, dict) else stack_samples(data)
    side = int(data.img_size) if lazy else data["image"].shape[-1]
    if side != cfg["resolution"]:
        raise ValueError(f"data must be {cfg['resolution']} px (cfg['resolution']), got {side}")
    if lazy and cfg.get("teacher"):
        raise ValueError("cfg['teacher'] (the CSM-taught start) needs a stacked training set, not a lazy dataset")
    category = category if category is not None else category_for(cfg)
    device = get_device(cfg.get("device"))
    seed_everything(int(cfg["seed"]))
    model = (model if model is not None else build_model(cfg, category, load_encoder_weights=True)).to(device)
    iters = training_iterations(cfg, len(data) if lazy else data["image"].shape[0])
    optimizer = torch.optim.Adam(param_groups(model, cfg), lr=cfg["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(   # cosine decay to 5 %: steadier final numbers
        optimizer, lambda it: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(it, iters) / max(iters, 1))))
    history = History()
    start = time.monotonic()
    if cfg.get("teacher"):   # our change (presets, .teacher): a CSM-taught start for the regressor
        from .teacher import pretrain_regressor, teacher_correspondences

        uv, vis = teacher_correspondences(cfg["teacher"], data["image"], data["mask"], category)
        losses = pretrain_regressor(model, data["image"], uv, vis, int(cfg["teacher_iters"]),
                                    int(cfg["teacher_batch"]), float(cfg["teacher_lr"]), int(cfg["seed"]),
                                    category.vertex_flip if cfg.get("teacher_flip") else None)
        for i in range(0, len(losses), 25):
            history.log(i, {"teacher": sum(losses[i:i + 25]) / len(losses[i:i + 25])})
        history.log(0, {"teacher_seconds": time.monotonic() - start})

    def guard(iteration, model, history):
        if callback is not None:
            callback(iteration, model, history)
        if cfg.get("max_minutes") and time.monotonic() - start > 60 * cfg["max_minutes"]:
            raise TimeUp(iteration)

    try:
        draw = (lazy_batch_sampler if lazy else batch_sampler)(data, cfg["batch_size"], int(cfg["seed"]), device)
        train(model, optimizer, TTPObjective(cfg, category), draw, iters, history=history, scheduler=scheduler,
              checkpoint_path=checkpoint_path, checkpoint_every=max(iters // 10, 1) if checkpoint_path else 0,
              grad_clip=cfg["grad_clip"], progress=progress, desc=f"TTP {cfg.get('variant', '')}".strip(),
              extra_state={"cfg": cfg}, callback=guard, callback_every=10)
    except TimeUp as stop:
        history.log(int(stop.args[0]), {"stopped_at": int(stop.args[0])})
    model.eval()
    return model, history
