"""Training the sphere mapper and prototype on frozen features: ``fit(cfg, data) -> (model, history)``.

``data`` is a dict of precomputed tensors (see :func:`prepare`): the frozen feature maps
``feats`` [N,D,h,w], the token foreground ``token_mask`` [N,h,w], ``azimuth_bin`` [N] and
``category`` [N]. Features are computed once, as the backbone is frozen. With ``flip`` every batch
mirrors half of its images: the feature map and mask are flipped and the azimuth is negated,
which is how a mirrored photo relates to the original for features that are (near) flip-equivariant.
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
            stride: int, n_bins: int = 8, category: torch.Tensor | None = None) -> dict:
    """Check and bundle one set of frozen features with its masks and azimuth bins for :func:`fit`."""
    check_feature_map(feats, images, stride)
    tok = token_mask(masks, feats.shape[-2:], "masks")
    bins = check_azimuth_bins(bins, n_bins, feats.shape[0])
    cat = torch.zeros(feats.shape[0], dtype=torch.long) if category is None else category.long()
    return {"feats": feats.detach().float(), "token_mask": tok, "azimuth_bin": bins, "category": cat}


def flip_batch(feats, mask, bins, n_bins: int, which: torch.Tensor):
    """Mirror the images selected by ``which``: flip columns and negate the azimuth (bin b -> n-1-b)."""
    f = torch.where(which[:, None, None, None], feats.flip(-1), feats)
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
                                           torch.rand(len(idx), generator=g) < 0.5)
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
