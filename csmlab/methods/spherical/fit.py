"""Training the sphere mapper and prototype on frozen features: ``fit(cfg, data) -> (model, history)``.

``data`` is a dict of precomputed tensors (see :func:`prepare`): the frozen feature maps
``feats`` [N,D,h,w], the token foreground ``token_mask`` [N,h,w], ``azimuth_bin`` [N] and
``category`` [N]. Features are computed once, as the backbone is frozen. With ``flip`` every batch
mirrors half of its images: a mirrored photo is a bird seen from the negated azimuth, so its mask
is flipped, its bin negated, and its features are those *of the mirrored image*
(``feats_mirror``, computed once beside ``feats``). Flipping the feature map instead is exact
only for flip-equivariant features: a CNN's are not (its kernels are not symmetric), and the
first flipped runs fed the mapper feature maps the network never produces.
"""

from __future__ import annotations

import torch

from csmlab.geometry import angle_to_bin, matrix_to_azel, quaternion_to_matrix
from csmlab.train import History

from .features import check_feature_map, token_mask
from .losses import check_azimuth_bins, spherical_losses
from .model import SphericalMapModel


def azimuth_bins(quat: torch.Tensor, n_bins: int = 8) -> torch.Tensor:
    """[N] azimuth bin of each camera quaternion (``geometry.matrix_to_azel``, bins over (-pi, pi])."""
    az, _, _ = matrix_to_azel(quaternion_to_matrix(quat))
    return angle_to_bin(az, n_bins)


def prepare(feats: torch.Tensor, images: torch.Tensor, masks: torch.Tensor, bins: torch.Tensor,
            stride: int, n_bins: int = 8, category: torch.Tensor | None = None,
            feats_mirror: torch.Tensor | None = None) -> dict:
    """Check and bundle one set of frozen features with its masks and azimuth bins for :func:`fit`.

    ``feats_mirror``: features of the left-right mirrored images (``images.flip(-1)``), needed by
    ``fit`` with ``flip``.
    """
    check_feature_map(feats, images, stride)
    tok = token_mask(masks, feats.shape[-2:], "masks")
    bins = check_azimuth_bins(bins, n_bins, feats.shape[0])
    cat = torch.zeros(feats.shape[0], dtype=torch.long) if category is None else category.long()
    out = {"feats": feats.detach().float(), "token_mask": tok, "azimuth_bin": bins, "category": cat}
    if feats_mirror is not None:
        if not isinstance(feats_mirror, torch.Tensor) or feats_mirror.shape != feats.shape:
            raise ValueError(f"feats_mirror must be the features of the mirrored images, shaped like feats "
                             f"{list(feats.shape)}, got {getattr(feats_mirror, 'shape', type(feats_mirror).__name__)}")
        out["feats_mirror"] = feats_mirror.detach().float()
    return out


def flip_batch(feats, mask, bins, n_bins: int, which: torch.Tensor, feats_mirror: torch.Tensor | None = None):
    """Mirror the images selected by ``which``: negate the azimuth (bin b -> n-1-b), flip the mask, and
    take ``feats_mirror`` (features of the mirrored images); without it the feature map is flipped,
    which is right only for flip-equivariant features (the stand-in; not a CNN)."""
    mirrored = feats.flip(-1) if feats_mirror is None else feats_mirror
    f = torch.where(which[:, None, None, None], mirrored, feats)
    m = torch.where(which[:, None, None], mask.flip(-1), mask)
    # bins cover (-pi, pi] from -pi: bin b spans [-pi + b w, -pi + (b+1) w); -angle lands in n-1-b
    b = torch.where(which, n_bins - 1 - bins, bins)
    return f, m, b


def build(cfg: dict) -> SphericalMapModel:
    return SphericalMapModel(cfg["feat_dim"], cfg["n_cats"], cfg["hidden"], cfg["heads"], cfg["position"],
                             cfg["proto_depth"], cfg["proto_head_dim"])


def fit(cfg: dict, data: dict, model: SphericalMapModel | None = None, progress: bool = True,
        iters: int | None = None) -> tuple[SphericalMapModel, History]:
    """Adam on the four weighted terms (``spherical_losses``); returns (model in eval mode, per-term History)."""
    from tqdm.auto import tqdm

    for key in ("feats", "token_mask", "azimuth_bin", "category"):
        if key not in data:
            raise ValueError(f"data must be a dict from prepare() with key {key!r}, got keys {sorted(data)}")
    if cfg["flip"] and "feats_mirror" not in data:
        raise ValueError("cfg['flip'] needs data['feats_mirror'], the features of the mirrored images "
                         "(prepare(..., feats_mirror=...)); flipping a CNN's feature map is not the same")
    g = torch.Generator().manual_seed(cfg["seed"])
    if model is None:
        with torch.random.fork_rng():
            torch.manual_seed(cfg["seed"])
            model = build(cfg)
    opt = torch.optim.Adam(list(model.mapper.parameters()) + list(model.prototype.parameters()), lr=cfg["lr"])
    history = History()
    n = data["feats"].shape[0]
    model.train()
    for it in tqdm(range(iters or cfg["iters"]), desc="sphere mapper", disable=not progress):
        idx = torch.randint(n, (min(cfg["batch_size"], n),), generator=g)
        feats, mask, bins = data["feats"][idx], data["token_mask"][idx], data["azimuth_bin"][idx]
        if cfg["flip"]:
            feats, mask, bins = flip_batch(feats, mask, bins, cfg["vp_bins"],
                                           torch.rand(len(idx), generator=g) < 0.5, data["feats_mirror"][idx])
        terms, _ = spherical_losses(model, feats, mask, data["category"][idx], bins, cfg, g)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.log(it, {**terms, "total": loss})
    return model.eval(), history


@torch.no_grad()
def sphere_tokens(model: SphericalMapModel, data: dict, batch_size: int = 64) -> torch.Tensor:
    """[N,h*w,3] sphere points of every image of a :func:`prepare` dict (0 off the mask)."""
    model.eval()
    return torch.cat([model(data["feats"][i:i + batch_size], data["token_mask"][i:i + batch_size])
                      for i in range(0, data["feats"].shape[0], batch_size)])
