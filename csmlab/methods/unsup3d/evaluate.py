"""Unsup3D's depth metrics, as the authors' ``forward`` computes them, and the baselines.

For every test image (``load_gt_depth`` branch of ``unsup3d/model.py``):

- the prediction is the *reconstructed input-view depth* (the canonical depth rendered by the
  predicted view), and its normals come from :func:`.renderer.normals_from_depth`;
- ``mask_gt``: ground-truth pixels below the maximum depth (synface stores the background
  at the far value; the synthetic faces give their mask instead), eroded by one pixel
  (3x3 average pool > 0.99); ``mask_pred``: predicted depth below ``max + margin``, eroded the same way;
- **SIDE** = sqrt(mean((d - mean d)^2)) over ``mask_gt * mask_pred``, ``d = log pred - log gt``
  (``compute_sc_inv_err``; :func:`csmlab.metrics.scale_invariant_depth_error`), and
  **MAD** = the mean angle between the normal maps in degrees (``compute_angular_distance``;
  :func:`csmlab.metrics.mean_angle_deviation`); both averaged over the images. The paper
  reports SIDE x 10^-2 (``side_e2`` here).

Baselines (the paper's Table 2): a constant (null) depth map, the per-pixel average of the
test set's ground-truth depths, and the depth net supervised with ground truth.
"""

from __future__ import annotations

import torch
from torch import nn

from csmlab.data.synthetic.faces_geometry import warp_canonical
from csmlab.metrics import mean_angle_deviation, scale_invariant_depth_error

from .renderer import INVALID_DEPTH, check_image, normals_from_depth


def erode(mask: torch.Tensor) -> torch.Tensor:
    """The paper's one-pixel erosion: 3x3 average pool (zero padding) > 0.99."""
    return (nn.functional.avg_pool2d(mask.float(), 3, stride=1, padding=1) > 0.99).to(mask.dtype)


def gt_mask_below_max(depth_gt: torch.Tensor) -> torch.Tensor:
    """The paper's ground-truth mask: pixels below the batch's maximum depth (synface's background)."""
    return (depth_gt < depth_gt.max()).to(depth_gt.dtype)


def depth_metrics(pred_depth: torch.Tensor, depth_gt: torch.Tensor, gt_mask: torch.Tensor | None = None,
                  pred_valid: torch.Tensor | None = None) -> dict:
    """Per-image SIDE and MAD [B] of input-view depths [B,1,S,S] with the paper's masks.

    gt_mask: 1 where the ground truth is defined (None: the paper's below-the-maximum rule);
    pred_valid: 1 where the prediction is defined (None: ``pred < max_depth + margin``).
    Returns ``side``, ``mad`` (degrees) and the ``mask`` used.
    """
    check_image("pred_depth", pred_depth, channels=1)
    check_image("depth_gt", depth_gt, channels=1, resolution=pred_depth.shape[2])
    if pred_depth.shape != depth_gt.shape:
        raise ValueError(f"pred_depth and depth_gt must have the same shape, got {list(pred_depth.shape)} and "
                         f"{list(depth_gt.shape)}")
    gt_mask = gt_mask_below_max(depth_gt) if gt_mask is None else gt_mask.to(depth_gt.dtype)
    pred_valid = (pred_depth < INVALID_DEPTH).to(pred_depth.dtype) if pred_valid is None else pred_valid
    mask = erode(gt_mask) * erode(pred_valid.to(pred_depth.dtype))
    # Off the mask the logs are irrelevant (masked out); keep them finite where depths are 0.
    gt = torch.where(mask > 0, depth_gt, torch.ones_like(depth_gt))
    pred = torch.where(mask > 0, pred_depth, torch.ones_like(pred_depth))
    # float64: csmlab.metrics takes mean(d^2) - mean(d)^2, which cancels badly in float32 when d has a
    # large common offset (a scaled prediction); the paper subtracts the mean first.
    side = scale_invariant_depth_error(pred.double(), gt.double(), mask).to(pred_depth.dtype)
    mad = mean_angle_deviation(normals_from_depth(pred_depth), normals_from_depth(depth_gt), mask)
    return {"side": side, "mad": mad, "mask": mask}


def asymmetry_region(sample: dict, threshold: float = 0.1) -> torch.Tensor:
    """[B,1,S,S] view pixels whose canonical albedo differs from its mirror image (a patch and its mirror).

    The canonical map ``max_c |albedo - flip(albedo)| > threshold`` is warped into the view with the
    ground-truth depth and view, then kept on the face mask.
    """
    albedo = sample["albedo"]
    asym = ((albedo - albedo.flip(3)).abs().amax(1, keepdim=True) > threshold).float()
    warped = warp_canonical(asym, sample["depth"], sample["view"]["rotation"], sample["view"]["trans"])
    return (warped > 0.5).float() * sample["mask"]


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@torch.no_grad()
def evaluate(model, data: dict, batch_size: int = 64) -> dict:
    """SIDE / MAD of a trained model on test data {image, depth, mask?, ...}; means over the images.

    Returns ``side``, ``side_e2`` (x 10^-2, as the paper prints it), ``mad`` (degrees), ``n`` and,
    when the data carries the faces' albedo and view, the mean photometric sigma (flipped branch,
    the one the asymmetry breaks) on and off the asymmetric region of the asymmetric faces.
    """
    was_training = model.training
    model.eval()
    side, mad, on, off = [], [], [], []
    n = data["image"].shape[0]
    for sl in _batches(n, batch_size):
        image = data["image"][sl]
        out = model(image)
        B = image.shape[0]
        m = depth_metrics(out["recon"]["depth"][:B], data["depth"][sl],
                          data["mask"][sl] if "mask" in data else None)
        side.append(m["side"])
        mad.append(m["mad"])
        if "sigma_flip" in out and "albedo" in data and "asymmetric" in data:
            sub = {k: (v[sl] if not isinstance(v, dict) else {kk: vv[sl] for kk, vv in v.items()})
                   for k, v in data.items() if k in ("albedo", "depth", "mask", "view")}
            region = asymmetry_region(sub)
            keep = data["asymmetric"][sl].bool()
            face = data["mask"][sl] * (1 - region)
            sig = out["sigma_flip"]
            for i in torch.nonzero(keep)[:, 0].tolist():
                if region[i].sum() > 0:
                    on.append(float((sig[i] * region[i]).sum() / region[i].sum()))
                    off.append(float((sig[i] * face[i]).sum() / face[i].sum()))
    model.train(was_training)
    side, mad = torch.cat(side), torch.cat(mad)
    res = {"side": float(side.mean()), "side_e2": float(side.mean()) * 100, "mad": float(mad.mean()),
           "side_std": float(side.std()), "mad_std": float(mad.std()), "n": n}
    if on:
        res.update(sigma_on_asym=sum(on) / len(on), sigma_off_asym=sum(off) / len(off), n_asym=len(on))
    return res


def constant_depth_baseline(data: dict, value: float = 1.0) -> dict:
    """The paper's constant null depth: the same depth everywhere (SIDE = std of log gt, normals (0, 0, 1))."""
    pred = torch.full_like(data["depth"], value)
    m = depth_metrics(pred, data["depth"], data.get("mask"), torch.ones_like(pred))
    return _summary(m)


def average_depth_baseline(data: dict) -> dict:
    """The per-pixel average of the test set's ground-truth depths, used as every image's prediction."""
    gt, mask = data["depth"], data.get("mask", gt_mask_below_max(data["depth"]))
    count = mask.sum(0, keepdim=True)
    mean = (gt * mask).sum(0, keepdim=True) / count.clamp_min(1)
    fill = mean[count > 0].mean()
    mean = torch.where(count > 0, mean, fill).expand_as(gt)
    m = depth_metrics(mean, gt, data.get("mask"), torch.ones_like(gt))
    return _summary(m)


def _summary(m: dict) -> dict:
    return {"side": float(m["side"].mean()), "side_e2": float(m["side"].mean()) * 100, "mad": float(m["mad"].mean()),
            "n": int(m["side"].shape[0])}
