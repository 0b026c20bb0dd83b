"""Training CSM: the objective (a dict of named weighted terms), batching and ``fit(cfg, data)``.

Masks only: the images and their masks are all the default variant sees. The
``with_pose`` variant (the paper's "CSM w/ pose") replaces the predicted
hypotheses by the ground-truth camera during training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from csmlab.config import get_device
from csmlab.geometry import Mesh, uv_to_sphere
from csmlab.geometry.uvmap import TemplateUV
from csmlab.nets import NETS, fetch_weights, load_official
from csmlab.train import History, data_fingerprint, train

from . import losses as L
from .network import CSMNet, mirror_quaternion
from .template import load_template


def stack_samples(samples) -> dict[str, torch.Tensor]:
    """Sample dicts (a list, or a dataset with ``.batch``) -> one dict of batched tensors.

    Only fields that every sample has are kept; the camera is split into
    ``cam_scale`` [N], ``cam_quat`` [N,4] and ``cam_trans`` [N,2].
    """
    if hasattr(samples, "batch") and hasattr(samples, "__len__"):     # a synthetic dataset: batch it at once
        return _stack_batch(samples.batch(slice(None)))
    samples = list(samples)
    if not samples or not all(isinstance(s, dict) for s in samples):
        raise ValueError(f"samples must be a non-empty sequence of sample dicts, got {type(samples).__name__}")
    out = {}
    for key in ("image", "mask", "depth", "surface_xyz", "surface_uv", "keypoints"):
        if all(key in s for s in samples):
            out[key] = torch.stack([torch.as_tensor(s[key]).float() for s in samples])
    if "image" not in out or "mask" not in out:
        raise ValueError("every sample needs 'image' and 'mask' to train CSM")
    if all("camera" in s for s in samples):
        for key in ("scale", "quat", "trans"):
            out[f"cam_{key}"] = torch.stack([torch.as_tensor(s["camera"][key]).float().reshape(-1)
                                             for s in samples]).squeeze(-1)
    return out


def _stack_batch(batch: dict) -> dict[str, torch.Tensor]:
    out = {k: batch[k].float() for k in ("image", "mask", "depth", "surface_xyz", "surface_uv", "keypoints")
           if k in batch}
    if "image" not in out or "mask" not in out:
        raise ValueError("every sample needs 'image' and 'mask' to train CSM")
    if "camera" in batch:
        out.update({f"cam_{k}": batch["camera"][k].float() for k in ("scale", "quat", "trans")})
    return out


def mirror_cameras(cams: dict) -> dict:
    """Cameras of the horizontally flipped images (a symmetric category: mirror plane x = 0)."""
    flip_t = torch.tensor([-1.0, 1.0], dtype=cams["trans"].dtype, device=cams["trans"].device)
    out = dict(cams, quat=mirror_quaternion(cams["quat"]), trans=cams["trans"] * flip_t)
    return out


def cat_cameras(a: dict, b: dict) -> dict:
    return {k: torch.cat([a[k], b[k]]) for k in ("scale", "quat", "trans", "prob")}


def ground_truth_cameras(batch: dict) -> dict:
    """The batch's true cameras as a single hypothesis with probability 1 (the 'w/ pose' variant)."""
    if "cam_quat" not in batch:
        raise ValueError("pose supervision needs the samples' 'camera' field")
    B = batch["cam_quat"].shape[0]
    return {"scale": batch["cam_scale"].reshape(B, 1), "quat": batch["cam_quat"][:, None],
            "trans": batch["cam_trans"][:, None], "prob": batch["cam_quat"].new_ones(B, 1)}


def is_mirror_symmetric(verts: torch.Tensor, vertex_flip: torch.Tensor | None, tol: float = 1e-5) -> bool:
    """True when ``verts[vertex_flip]`` is ``verts`` mirrored across x = 0."""
    if vertex_flip is None:
        return False
    mirrored = verts * torch.tensor([-1.0, 1.0, 1.0], dtype=verts.dtype)
    return bool((verts[torch.as_tensor(vertex_flip).long()] - mirrored).abs().max() < tol)


class CSMObjective:
    """``(model, batch, iteration) -> (terms, monitors)`` for :func:`csmlab.train.train`.

    Terms (each already multiplied by its weight): ``cycle``, ``visibility``, ``mask``
    (rendered silhouettes), ``mask_pred`` (U-Net BCE), ``entropy`` (minus the usage
    entropy) and ``diversity``. During the pose warm-up (``pose_warmup_iters``) only
    ``mask`` and ``diversity`` are computed and the U-Net is not run: the hypotheses
    first learn to fit the silhouettes (see :meth:`warmup_terms`).

    With ``flip`` every batch is doubled with its mirror images, whose cameras are the
    mirrored predictions for the originals. When the template is mirror-symmetric
    the mirrored camera renders exactly the mirrored image, so the renders of the
    originals are flipped instead of rendered again (the mask loss of a flipped
    copy equals its original's, so it is counted once).
    """

    def __init__(self, cfg: dict, symmetric_template: bool):
        self.cfg = cfg
        self.symmetric = symmetric_template

    def hypotheses(self, model: CSMNet, batch: dict) -> dict:
        if self.cfg["pose_supervision"]:
            return ground_truth_cameras(batch)
        return model.camera(batch["image"])

    def __call__(self, model: CSMNet, batch: dict, iteration: int):
        cfg = self.cfg
        if cfg["uv_supervision"]:
            return self.supervised_terms(model, batch)
        img, mask = batch["image"], batch["mask"]
        H, W = img.shape[-2:]
        cams = self.hypotheses(model, batch)
        res = cfg["render_resolution"] or (H, W)
        res = (res, res) if isinstance(res, int) else tuple(res)
        mask_small = mask if res == (H, W) else F.interpolate(mask, size=res, mode="area")
        if iteration < cfg["pose_warmup_iters"]:
            return self.warmup_terms(model, cams, mask_small, res)
        if cfg["flip"]:
            img2, mask2 = torch.cat([img, img.flip(-1)]), torch.cat([mask, mask.flip(-1)])
            cams2 = cat_cameras(cams, mirror_cameras(cams))
        else:
            img2, mask2, cams2 = img, mask, cams
        surf = model.surface(img2)
        # Renders may be coarser than the image (``render_resolution``): the visibility lookup works
        # in NDC and the silhouettes are compared with area-downsampled masks. Rendering is the
        # costliest step on a CPU, hence also the reuse of the originals' renders for mirrored copies.
        reuse = cfg["flip"] and self.symmetric
        render_cams, mask_for_render = (cams, mask_small) if (reuse or not cfg["flip"]) else \
            (cams2, torch.cat([mask_small, mask_small.flip(-1)]))
        rendered = L.render_template(model.template.verts, model.template.faces, render_cams, res)
        depth, coverage = rendered["depth"], rendered["coverage"]
        if reuse:
            depth, coverage = torch.cat([depth, depth.flip(-1)]), torch.cat([coverage, coverage.flip(-1)])

        cycle_k = L.cycle_loss(surf["points"], cams2, mask2)
        vis_k = L.visibility_loss(surf["points"], cams2, depth, coverage, mask2)
        mask_k = L.mask_render_loss(rendered["silhouette"], mask_for_render, cfg["mask_scales"])
        terms = {
            "cycle": cfg["w_cycle"] * L.expected(cycle_k, cams2["prob"]),
            "visibility": cfg["w_visibility"] * L.expected(vis_k, cams2["prob"]),
            "mask": cfg["w_mask"] * L.expected(mask_k, render_cams["prob"]),
            "mask_pred": cfg["w_mask_pred"] * L.mask_bce(surf["mask_logit"], mask2),
        }
        terms.update(self.hypothesis_terms(cams))
        with torch.no_grad():
            monitors = {"max_prob": float(cams["prob"].max(-1).values.mean()),
                        "cycle_best": float(cycle_k.min(-1).values.mean())}
        return terms, monitors

    def supervised_terms(self, model: CSMNet, batch: dict) -> tuple[dict, dict]:
        """The ``supervised_uv`` reference (not CSM): ``1 - cos`` between predicted and true sphere points.

        Averaged over the foreground, plus the mask BCE; no camera, cycle or rendering.
        """
        if "surface_uv" not in batch:
            raise ValueError("the supervised_uv reference trains on the samples' 'surface_uv'; the batch has none")
        surf = model.surface(batch["image"])
        target = uv_to_sphere(batch["surface_uv"].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        mask = batch["mask"]
        misalignment = ((1 - (surf["sphere"] * target).sum(1, keepdim=True)) * mask).sum() / mask.sum().clamp_min(1)
        return {"uv_supervised": misalignment,
                "mask_pred": self.cfg["w_mask_pred"] * L.mask_bce(surf["mask_logit"], mask)}, {}

    def hypothesis_terms(self, cams: dict) -> dict:
        if self.cfg["pose_supervision"] or cams["prob"].shape[1] < 2:
            return {}
        return {"entropy": -self.cfg["w_entropy"] * L.usage_entropy(cams["prob"]),
                "diversity": self.cfg["w_diversity"] * L.rotation_diversity(cams["quat"])}

    def warmup_terms(self, model: CSMNet, cams: dict, mask_small: torch.Tensor, res) -> tuple[dict, dict]:
        """Pose warm-up (CSM's ``warmup_pose_iter``): only the silhouettes; the U-Net is not run at all.

        CSM weights every hypothesis 1/K here. With ``warmup_temperature`` > 0 the weights are
        instead a softmin of the (detached) mask losses: each hypothesis learns from the images
        it already explains best. With a network trained from scratch (CSM starts from an
        ImageNet ResNet) uniform weights teach every hypothesis the average over all views,
        mostly wrong ones, and the silhouettes shrink instead of fitting.
        """
        rendered = L.render_template(model.template.verts, model.template.faces, cams, res)
        mask_k = L.mask_render_loss(rendered["silhouette"], mask_small, self.cfg["mask_scales"])
        tau = self.cfg["warmup_temperature"]
        weights = (torch.softmax(-mask_k.detach() / tau, dim=-1) if tau > 0
                   else torch.full_like(cams["prob"], 1.0 / cams["prob"].shape[1]))
        terms = {"mask": self.cfg["w_mask"] * L.expected(mask_k, weights)}
        if not self.cfg["pose_supervision"] and cams["prob"].shape[1] > 1:
            terms["diversity"] = self.cfg["w_diversity"] * L.rotation_diversity(cams["quat"])
        return terms, {"cycle_best": float("nan"), "max_prob": float(cams["prob"].detach().max(-1).values.mean())}


def build_model(cfg: dict, template: Mesh, vertex_uv: torch.Tensor, init_scale: float | None = None,
                load_encoder_weights: bool = False, canonical_verts: torch.Tensor | None = None) -> CSMNet:
    """A fresh CSMNet for ``cfg`` on ``template``, its weights drawn from ``cfg['seed']``.

    The draw happens on a forked torch random stream: the caller's random state is left as it was.
    With ``load_encoder_weights`` and ``cfg['encoder_weights'] == "imagenet"`` the camera
    encoder gets the official ImageNet ResNet-18 weights (``csmlab.nets``; downloaded on
    first use). Rebuilding a trained model (``load_pretrained``) leaves them out.
    ``canonical_verts``: the rest-pose vertices of a posed ``template`` (``Template.canonical_verts``).
    """
    scale = init_scale if init_scale is not None else (cfg["init_scale"] or 0.7)
    encoder, weights = cfg.get("camera_encoder", "convs"), cfg.get("encoder_weights")
    if weights not in (None, "imagenet") or (weights == "imagenet" and encoder != "resnet18"):
        raise ValueError(f"cfg['encoder_weights'] must be None, or 'imagenet' with camera_encoder='resnet18'; got "
                         f"encoder_weights={weights!r}, camera_encoder={encoder!r}")
    tuv = TemplateUV(template, vertex_uv, tuple(cfg["uv_grid"]), canonical_verts=canonical_verts)
    with torch.random.fork_rng():
        torch.manual_seed(int(cfg["seed"]))
        model = CSMNet(tuv, n_hypotheses=cfg["n_hypotheses"], unet_base=cfg["unet_base"],
                       unet_depth=cfg["unet_depth"], cam_base=cfg["cam_base"], cam_down=cfg["cam_down"],
                       init_scale=scale, elevation_deg=cfg["elevation_deg"],
                       max_elevation_deg=cfg["max_elevation_deg"], max_roll_deg=cfg["max_roll_deg"],
                       squash=cfg["squash"], norm=cfg["norm"], coords=cfg["coords"],
                       stem_stride=cfg["stem_stride"], camera_encoder=encoder)
    if load_encoder_weights and weights == "imagenet":
        load_official(model.camera.encoder.resnet, fetch_weights("resnet18"),
                      dropped=NETS["resnet18"].dropped)
    return model


@torch.no_grad()
def estimate_init_scale(template: Mesh, masks: torch.Tensor, n_views: int = 8) -> float:
    """Camera scale whose template silhouettes cover, on average, as much area as the masks (uses masks only).

    Area grows with scale^2, so s0 = sqrt(mask area / template area at scale 1),
    the template area averaged over views spread in azimuth.
    """
    from .network import base_quaternions

    if masks.dim() != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks must be [N,1,H,W], got {list(masks.shape)}")
    H, W = masks.shape[-2:]
    cams = {"scale": torch.ones(1, n_views), "quat": base_quaternions(n_views, 0.0)[None],
            "trans": torch.zeros(1, n_views, 2)}
    rendered = L.render_template(template.verts.float(), template.faces, cams, (H, W))
    template_area = rendered["coverage"].mean()
    return float((masks.float().mean() / template_area.clamp_min(1e-6)).sqrt())


def initial_scale(cfg: dict, template: Mesh, data) -> float:
    """``cfg['init_scale']``, or the mask-area estimate on (up to 256 of) the training masks."""
    if cfg["init_scale"]:
        return float(cfg["init_scale"])
    if isinstance(data, dict):
        masks = data["mask"][:256]
    else:
        masks = stack_samples([data[i] for i in range(min(256, len(data)))])["mask"]
    return estimate_init_scale(template, masks)


def _batch_indices(n: int, batch_size: int, seed: int, iteration: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    return torch.randperm(n, generator=g)[:batch_size]


def batch_sampler(data, batch_size: int, seed: int, device: torch.device, workers: int = 0):
    """``iteration -> batch``: a random subset drawn from a generator seeded by (seed, iteration).

    ``data`` is a :func:`stack_samples` dict (in memory), or an indexable dataset of
    sample dicts (CUB at 256^2 does not fit in memory as one tensor), read and collated
    by a :class:`LoaderBatches` (``workers`` background processes).
    """
    stacked = isinstance(data, dict)
    n = data["image"].shape[0] if stacked else len(data)
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) is larger than the training set ({n})")
    if not stacked:
        return LoaderBatches(data, batch_size, seed, device, workers)

    def batch_fn(iteration: int) -> dict:
        idx = _batch_indices(n, batch_size, seed, iteration)
        return {k: v[idx].to(device) for k, v in data.items()}

    return batch_fn


class _EpochItems(torch.utils.data.Dataset):
    """``dataset[(index, epoch)]``: the sample as drawn in that epoch (CMR's box jitter varies per epoch)."""

    def __init__(self, data):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key):
        index, epoch = key
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)
        return self.data[index]


class _IterationBatches(torch.utils.data.Sampler):
    def __init__(self, n: int, batch_size: int, seed: int, start: int):
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start

    def __iter__(self):
        it = self.start
        while True:
            epoch = it * self.batch_size // self.n
            yield [(int(i), epoch) for i in _batch_indices(self.n, self.batch_size, self.seed, it)]
            it += 1


class LoaderBatches:
    """``iteration -> batch`` for a lazy dataset, read by a ``DataLoader`` with ``workers`` processes.

    The batch of an iteration is the same as :func:`batch_sampler`'s rule, whatever the
    number of workers, so a resumed run (which asks from its checkpoint's iteration on)
    sees the batches an uninterrupted one would. Asking out of order restarts the loader.
    """

    def __init__(self, data, batch_size: int, seed: int, device: torch.device, workers: int = 0):
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {workers!r}")
        self.data, self.batch_size, self.seed, self.device, self.workers = data, batch_size, seed, device, workers
        self._iter, self._next = None, None

    def __call__(self, iteration: int) -> dict:
        if self._iter is None or iteration != self._next:
            sampler = _IterationBatches(len(self.data), self.batch_size, self.seed, iteration)
            loader = torch.utils.data.DataLoader(_EpochItems(self.data), batch_sampler=sampler,
                                                 num_workers=self.workers, collate_fn=stack_samples,
                                                 pin_memory=self.device.type == "cuda")
            self._iter = iter(loader)
        self._next = iteration + 1
        return {k: v.to(self.device, non_blocking=True) for k, v in next(self._iter).items()}


def load_category(name: str):
    """The category index (template, ``template_uv``, ``vertex_flip``) of a synthetic category."""
    from csmlab.data.synthetic import get_category

    return get_category(name)


def fit(cfg: dict, data, category=None, *, model: CSMNet | None = None, checkpoint_path=None,
        progress: bool = True, callback=None, restart: bool = False) -> tuple[CSMNet, History]:
    """Train CSM on ``data`` (a list of samples or :func:`stack_samples` output). Returns (model, history).

    ``category`` provides ``template`` (Mesh), ``template_uv`` [V,2] and ``vertex_flip`` [V]
    (default: ``get_category(cfg['category'])``). Pass ``model`` to fine-tune an existing
    network. ``callback(iteration, model, history)`` runs every ``cfg['eval_every']``
    iterations (e.g. a validation metric logged into the history). A checkpoint records
    the config and the data's fingerprint; resuming one of another run raises
    ``csmlab.train.ResumeMismatch`` unless ``restart`` (then training starts over).
    """
    if not isinstance(data, dict):    # a synthetic dataset or a list: stack it; CUB-sized datasets stay lazy
        data = stack_samples(data) if (hasattr(data, "batch") or isinstance(data, (list, tuple))) else data
    category = category if category is not None else load_template(cfg)
    template = category.template
    device = get_device(cfg.get("device"))
    with torch.random.fork_rng():   # seeded here, and the caller's random state comes back afterwards
        torch.manual_seed(int(cfg["seed"]))
        return _fit(cfg, data, category, template, device, model, checkpoint_path, progress, callback, restart)


def _fit(cfg, data, category, template, device, model, checkpoint_path, progress, callback, restart):
    if model is None:
        model = build_model(cfg, template, category.template_uv, init_scale=initial_scale(cfg, template, data),
                            load_encoder_weights=True, canonical_verts=getattr(category, "canonical_verts", None))
    model = model.to(device)
    iters = cfg["iters"]
    if iters is None:
        n = data["image"].shape[0] if isinstance(data, dict) else len(data)
        iters = int(cfg["epochs"] * -(-n // cfg["batch_size"]))
    symmetric = is_mirror_symmetric(template.verts, getattr(category, "vertex_flip", None))
    objective = CSMObjective(cfg, symmetric)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    scheduler = None
    if cfg["lr_schedule"] == "cosine":   # decay to 5 % of the rate over the run: steadier final numbers
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda it: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(it, iters) / max(iters, 1))))
    elif cfg["lr_schedule"] != "constant":
        raise ValueError(f"cfg['lr_schedule'] must be 'constant' or 'cosine', got {cfg['lr_schedule']!r}")
    batches = batch_sampler(data, cfg["batch_size"], int(cfg["seed"]), device, int(cfg.get("loader_workers", 0)))
    history = train(model, optimizer, objective, batches,
                    iters, scheduler=scheduler, checkpoint_path=checkpoint_path,
                    checkpoint_every=max(iters // 10, 1) if checkpoint_path else 0, grad_clip=cfg["grad_clip"],
                    progress=progress, desc=f"CSM {cfg.get('variant', '')}".strip(), extra_state={"cfg": cfg},
                    callback=callback, callback_every=cfg["eval_every"] or 0, restart=restart,
                    provenance={"cfg": cfg, "data": data_fingerprint(data)} if checkpoint_path else None)
    model.eval()
    return model, history
