"""Unsup3D's objective: confidence-weighted photometric and perceptual terms, and their flipped twins.

Per pixel, with the reconstruction error ``e`` and the predicted scale ``sigma`` (the
negative log-likelihood of a Laplacian, up to a constant)::

    l1(e, sigma) = |e| * sqrt(2) / sigma + ln(sigma)

It is smallest at ``sigma = sqrt(2) |e|``: where the flipped reconstruction cannot match
(an asymmetric patch), the network buys a larger sigma instead of bending the shape. The
perceptual term uses VGG16 relu3_3 features with a Gaussian likelihood,
``(f1 - f2)^2 / (2 sigma^2) + ln(sigma)``, on a 1/4-resolution sigma map. The total is
``l1 + lam_flip l1_flip + lam_perc (perc + lam_flip perc_flip)``; images are compared in
[-1, 1], as in the paper. The weighted terms come back as a dict, logged one by one.
"""

from __future__ import annotations

import importlib
import math

import torch
from torch import nn

EPS = 1e-7


def confidence_l1(error: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel ``|e| sqrt(2) / sigma + ln sigma`` (plain ``|e|`` when sigma is None)."""
    if sigma is None:
        return error.abs()
    return error.abs() * math.sqrt(2) / (sigma + EPS) + (sigma + EPS).log()


def masked_mean(loss: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return loss.mean()
    mask = mask.expand_as(loss)
    return (loss * mask).sum() / mask.sum().clamp_min(EPS)


def photometric_loss(im1: torch.Tensor, im2: torch.Tensor, mask: torch.Tensor | None = None,
                     sigma: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's ``photometric_loss``: mean of :func:`confidence_l1` of ``im1 - im2`` over the mask."""
    if im1.shape != im2.shape:
        raise ValueError(f"im1 and im2 must have the same shape, got {list(im1.shape)} and {list(im2.shape)}")
    return masked_mean(confidence_l1(im1 - im2, sigma), mask)


def feature_loss(f1: torch.Tensor, f2: torch.Tensor, mask: torch.Tensor | None, sigma: torch.Tensor | None):
    """The paper's perceptual likelihood on feature maps [B,C,h,w]; the mask is average-pooled down to h x w."""
    loss = (f1 - f2) ** 2
    if sigma is not None:
        loss = loss / (2 * sigma ** 2 + EPS) + (sigma + EPS).log()
    if mask is not None:
        k = mask.shape[-1] // loss.shape[-1]
        mask = nn.functional.avg_pool2d(mask, kernel_size=k, stride=k)
    return masked_mean(loss, mask)


def load_perceptual(name: str | None):
    """The frozen feature extractor of the perceptual term, or None when the term is off.

    ``"vgg16"``: relu3_3 of an ImageNet VGG16 from ``csmlab.nets`` (imported only here, so
    the smoke and medium presets, which switch the term off, never need it).
    """
    if name is None:
        return None
    if name != "vgg16":
        raise ValueError(f"perceptual must be None or 'vgg16', got {name!r}")
    try:
        nets = importlib.import_module("csmlab.nets")
    except ImportError as err:
        raise ImportError("perceptual='vgg16' needs csmlab.nets (the VGG16 relu3_3 backbone with its pretrained "
                          "weights); it is not installed in this checkout. Set perceptual=None to train without "
                          "the perceptual term, as the smoke and medium presets do.") from err
    for attr in ("vgg16_relu3_3", "VGG16Relu33", "vgg16_features"):
        if hasattr(nets, attr):
            net = getattr(nets, attr)(pretrained=True)
            net.requires_grad_(False)
            return net.eval()
    raise ImportError("csmlab.nets has no VGG16 relu3_3 loader (looked for vgg16_relu3_3, VGG16Relu33, "
                      "vgg16_features)")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _features(net, image01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=image01.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image01.device).view(1, 3, 1, 1)
    return net((image01 - mean) / std)


def depth_smoothness(depth: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """The paper's optional ``loss_depth_sm`` (synthetic cars only): mean |neighbour difference| / depth range."""
    d = depth / (high - low)
    return (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., :, 1:] - d[..., :, :-1]).abs().mean()


def unsup3d_losses(out: dict, image: torch.Tensor, cfg: dict, perceptual=None) -> dict:
    """Weighted terms of the objective for the model output ``out`` of images [B,3,S,S] in [0, 1]."""
    B = image.shape[0]
    target = image * 2 - 1                              # the paper compares images in [-1, 1]
    recon = out["recon"]["image"] * 2 - 1
    mask = out["mask_both"]
    recon = recon * mask                                 # background of the rendered image is -1 after the map
    sig = lambda k: out.get(k) if cfg["use_conf"] else None  # noqa: E731
    lam_flip = cfg["lam_flip"]
    terms = {"photometric": photometric_loss(recon[:B], target, mask[:B], sig("sigma")),
             "photometric_flip": lam_flip * photometric_loss(recon[B:], target, mask[B:], sig("sigma_flip"))}
    if perceptual is not None:
        feats = _features(perceptual, torch.cat([recon / 2 + 0.5, image], 0))
        f_rec, f_rec_flip, f_in = feats[:B], feats[B:2 * B], feats[2 * B:]
        lam = cfg["lam_perc"]
        terms["perceptual"] = lam * feature_loss(f_rec, f_in, mask[:B], sig("sigma_perc"))
        terms["perceptual_flip"] = lam * lam_flip * feature_loss(f_rec_flip, f_in, mask[B:], sig("sigma_perc_flip"))
    if cfg.get("lam_depth_sm", 0):
        # On the depth before the border clamp, as the paper's model.py: the step to the border depth is not smoothed.
        depth = out.get("canon_depth_free", out["canon_depth"])
        terms["depth_smoothness"] = cfg["lam_depth_sm"] * depth_smoothness(depth, cfg["min_depth"], cfg["max_depth"])
    return terms
