"""The four losses of Spherical Maps, as in the authors' ``dino_mapper.py`` and ``train_sph.py``.

Weights and settings are those of ``configs/SPair.yaml``: prototype 1, orientation 0.3
(``o_thresh`` 1, squared hinge), relative distance 0.3 (``rd_margin`` 0.5, distance 1 - cos),
viewpoint 0.1 (8 azimuth bins), 32 triplets per image. Training calls both triplet losses with
``correct_sine=False`` (plain cosines), as here.

Tokens are row-major over an (h, w) grid; ``sph`` is [B, h*w, 3], unit on the foreground and 0 off
it (the mapper multiplies by the mask), and the triplet losses sample foreground tokens only
(the authors' ``norm > .99``). Triplets are drawn with replacement, from a local generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from csmlab.checks import FLOAT_DTYPES, check_number, check_tensor

from .model import token_coords

PAPER_WEIGHTS = {"prototype": 1.0, "orientation": 0.3, "distance": 0.3, "viewpoint": 0.1}


def _check_sphere(sph: torch.Tensor, grid: tuple[int, int]) -> None:
    h, w = grid
    check_tensor("sph", sph, shape=f"B,{h * w},3", dtypes=FLOAT_DTYPES)


def sample_triplets(sph: torch.Tensor, n_triplets: int, generator: torch.Generator | None = None):
    """(image index [T], token indices [3,T]) of ``n_triplets`` random foreground triplets per image.

    Foreground = unit sphere points (the authors' ``norm > .99``); drawn with replacement. Images
    without foreground are skipped; ``None`` when no image has any.
    """
    imgs, idx = [], []
    for b, s in enumerate(sph):
        valid = torch.nonzero(s.norm(dim=-1) > 0.99)[:, 0]
        if valid.numel() == 0:
            continue
        idx.append(valid[torch.randint(valid.numel(), (3, n_triplets), generator=generator).to(valid.device)])
        imgs.append(torch.full((n_triplets,), b, dtype=torch.long, device=sph.device))
    if not idx:
        return None
    return torch.cat(imgs), torch.cat(idx, 1)


def _gather(sph, triplets):
    img, idx = triplets
    return sph[img[None].expand_as(idx), idx], idx


def orientation_loss(sph: torch.Tensor, grid: tuple[int, int], n_triplets: int = 32, thresh: float = 1.0,
                     p: int = 2, generator: torch.Generator | None = None, triplets=None) -> torch.Tensor:
    """Image-orientation triplets: the sphere's tangent frame must turn the way the image does.

    For a triplet (a, b, c) of foreground tokens with image directions ab, ac nearly orthogonal
    (|det| > 0.7, (row, col) coordinates), order (b, c) so that det(ab, ac) > 0; project b - a and
    c - a onto the tangent plane at the sphere point of a, normalise, and read the sign of
    (t_b x t_c) . a. The loss is ``relu(thresh - (t_b x t_c) . a) ** p`` averaged; a mirrored map
    makes that dot negative. With ``thresh=0`` a correctly oriented map costs exactly 0; the
    paper's ``thresh=1`` also asks the two tangents to be orthogonal. ``triplets``: given ones
    (from :func:`sample_triplets`) instead of drawing ``n_triplets`` per image.
    """
    _check_sphere(sph, grid)
    check_number("thresh", thresh)
    triplets = triplets if triplets is not None else sample_triplets(sph, n_triplets, generator)
    if triplets is None:
        return sph.sum() * 0.0
    s, i = _gather(sph, triplets)
    coords = token_coords(grid, sph.device, sph.dtype)[0]
    ab = F.normalize(coords[i[1]] - coords[i[0]], dim=-1)
    ac = F.normalize(coords[i[2]] - coords[i[0]], dim=-1)
    det = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    strong = det.abs() > 0.7
    if not strong.any():
        return sph.sum() * 0.0
    origin, sb, sc, det = s[0][strong], s[1][strong], s[2][strong], det[strong]
    first = torch.where((det > 0)[:, None], sb, sc)
    second = torch.where((det > 0)[:, None], sc, sb)

    def tangent(v):
        d = v - origin
        return F.normalize(d - origin * (origin * d).sum(-1, keepdim=True), dim=-1)
    dot = (torch.cross(tangent(first), tangent(second), dim=-1) * origin).sum(-1)
    return (thresh - dot).clamp_min(0).pow(p).mean()


def relative_distance_loss(sph: torch.Tensor, grid: tuple[int, int], n_triplets: int = 32, margin: float = 0.5,
                           generator: torch.Generator | None = None, triplets=None) -> torch.Tensor:
    """Triplet margin loss: of b and c, the one nearer to a in the image must be nearer on the sphere (1 - cos)."""
    _check_sphere(sph, grid)
    triplets = triplets if triplets is not None else sample_triplets(sph, n_triplets, generator)
    if triplets is None:
        return sph.sum() * 0.0
    s, i = _gather(sph, triplets)
    coords = token_coords(grid, sph.device, sph.dtype)[0]
    closer_b = ((coords[i[1]] - coords[i[0]]).pow(2).sum(-1) < (coords[i[2]] - coords[i[0]]).pow(2).sum(-1))
    pos = torch.where(closer_b[:, None], s[1], s[2])
    neg = torch.where(closer_b[:, None], s[2], s[1])
    d_pos = 1 - F.cosine_similarity(s[0], pos, dim=-1)
    d_neg = 1 - F.cosine_similarity(s[0], neg, dim=-1)
    return (d_pos - d_neg + margin).clamp_min(0).mean()


def check_azimuth_bins(bins: torch.Tensor, n_bins: int, batch: int | None = None) -> torch.Tensor:
    """[B] integer azimuth bins in [0, n_bins); raises ValueError naming ``azimuth_bins`` otherwise."""
    check_number("n_bins", n_bins, low=1, integer=True)
    if not isinstance(bins, torch.Tensor) or bins.dim() != 1 or (batch is not None and bins.shape[0] != batch):
        raise ValueError(f"azimuth_bins must be a [{batch if batch is not None else 'B'}] tensor of bin indices, got "
                         f"{list(bins.shape) if isinstance(bins, torch.Tensor) else type(bins).__name__}")
    if bins.is_floating_point() and not bool((bins == bins.round()).all()):
        raise ValueError("azimuth_bins must hold whole bin indices, got fractional values")
    if bins.numel() and (int(bins.min()) < 0 or int(bins.max()) >= n_bins):
        raise ValueError(f"azimuth_bins must lie in [0, {n_bins}), got values in "
                         f"[{int(bins.min())}, {int(bins.max())}]")
    return bins.long()


def viewpoint_loss(sph: torch.Tensor, azimuth_bins: torch.Tensor, n_bins: int = 8) -> torch.Tensor:
    """MSE between the cosine similarity of the images' mean sphere vectors and cos(delta azimuth).

    The mean runs over all tokens (background tokens are 0), as the authors' ``sph.mean(dim=1)``.
    """
    check_tensor("sph", sph, shape="B,N,3", dtypes=FLOAT_DTYPES)
    bins = check_azimuth_bins(azimuth_bins, n_bins, sph.shape[0])
    mean = F.normalize(sph.mean(1), dim=-1)
    corr = mean @ mean.T
    ang = bins.to(sph.dtype) * (2 * math.pi / n_bins)
    circ = torch.stack([ang.cos(), ang.sin()], -1)
    return F.mse_loss(corr, circ @ circ.T)


def prototype_loss(feats: torch.Tensor, recon: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - cos(phi, S_Z(sphere point)) averaged over foreground tokens. feats, recon [B,N,D]; mask [B,N]."""
    dims: dict = {}
    check_tensor("feats", feats, shape="B,N,D", dims=dims, dtypes=FLOAT_DTYPES)
    check_tensor("recon", recon, shape="B,N,D", dims=dims, dtypes=FLOAT_DTYPES)
    check_tensor("mask", mask, shape="B,N", dims=dims)
    m = mask.bool()
    if not m.any():
        raise ValueError("mask is empty for every image of the batch: the prototype loss has no foreground token")
    return (1 - F.cosine_similarity(feats[m], recon[m], dim=-1)).mean()


def spherical_losses(model, feats: torch.Tensor, mask: torch.Tensor, category: torch.Tensor,
                     azimuth_bins: torch.Tensor, cfg: dict, generator: torch.Generator | None = None
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The weighted terms {prototype, orientation, distance, viewpoint} for a batch, and the sphere map.

    feats [B,D,h,w] frozen features, mask [B,h,w] token foreground, category [B], azimuth_bins [B].
    """
    B, D, h, w = feats.shape
    sph = model(feats, mask)
    tokens = feats.flatten(2).transpose(1, 2)
    recon = model.prototype(sph, category)
    terms = {
        "prototype": cfg["w_prototype"] * prototype_loss(tokens, recon, mask.reshape(B, -1)),
        "orientation": cfg["w_orientation"] * orientation_loss(sph, (h, w), cfg["n_triplets"], cfg["o_thresh"],
                                                               generator=generator),
        "distance": cfg["w_distance"] * relative_distance_loss(sph, (h, w), cfg["n_triplets"], cfg["rd_margin"],
                                                               generator=generator),
        "viewpoint": cfg["w_viewpoint"] * viewpoint_loss(sph, azimuth_bins, cfg["vp_bins"]),
    }
    return terms, sph
