"""One experiment end to end on the synthetic birds: feature source, sphere mapper, metrics on the shared split.

``run(cfg)`` trains on ``make_dataset("birds", n_train, ..., seed, **rung_priors(rung))`` and
evaluates on the first ``n_eval`` birds of ``benchmark_split("birds", rung)`` (the shared split).
"""

from __future__ import annotations

import torch

from csmlab.data.synthetic import make_dataset
from csmlab.data.synthetic.benchmark import benchmark_split, rung_priors

from .evaluate import evaluate, evaluation_fields
from .features import FeatureNet, encode, standin_features, train_feature_net
from .fit import azimuth_bins, fit, prepare

SOURCE_NAMES = {"net": "(a) label-free feature net", "standin": "(b) STAND-IN: GT features with abs(x) folded"}


def _fields(batch: dict) -> dict:
    return {k: batch[k] for k in ("image", "mask", "keypoints", "surface_xyz", "camera", "viewpoint") if k in batch}


def training_batch(cfg: dict, root=None, progress: bool = False) -> dict:
    ds = make_dataset("birds", cfg["n_train"], cfg["resolution"], seed=cfg["seed"], root=root, progress=progress,
                      **rung_priors(cfg["rung"]))
    return _fields(ds.batch(slice(None)))


def evaluation_batch(cfg: dict, root=None) -> dict:
    ds = benchmark_split("birds", cfg["rung"], cfg["resolution"], root=root)
    return _fields(ds.batch(range(min(cfg["n_eval"], len(ds)))))


def features_of(cfg: dict, batch: dict, net: FeatureNet | None = None, seed_offset: int = 0) -> torch.Tensor:
    """Frozen features of a batch: the net's (source a) or the stand-in's (b: one feature function, noise per set)."""
    if cfg["source"] == "net":
        if net is None:
            raise ValueError("source 'net' needs the trained feature net (net=...)")
        return encode(net, batch["image"])
    if cfg["source"] == "standin":
        return standin_features(batch["surface_xyz"], batch["mask"], cfg["stride"], cfg["feat_dim"],
                                cfg["standin_noise"], seed=cfg["seed"], noise_seed=cfg["seed"] * 1000 + seed_offset)
    raise ValueError(f"cfg['source'] must be 'net' or 'standin' on the synthetic data, got {cfg['source']!r}")


def mirrored(batch: dict) -> dict:
    """The batch's images mirrored left-right (what the features read): image and mask flipped, and
    ``surface_xyz`` flipped with x negated, since a mirrored photo shows the mirrored bird."""
    out = {**batch, **{k: batch[k].flip(-1) for k in ("image", "mask") if k in batch}}
    if "surface_xyz" in batch:
        out["surface_xyz"] = batch["surface_xyz"].flip(-1) * torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    return out


def dataset_for(cfg: dict, batch: dict, feats: torch.Tensor, feats_mirror: torch.Tensor | None = None) -> dict:
    """prepare() + evaluation_fields() of a batch and its features (and those of its mirror images, for flip)."""
    data = prepare(feats, batch["image"], batch["mask"], azimuth_bins(batch["camera"]["quat"], cfg["vp_bins"]),
                   cfg["stride"], cfg["vp_bins"], feats_mirror=feats_mirror)
    return {**data, **evaluation_fields(batch, data["token_mask"])}


def run(cfg: dict, root=None, progress: bool = True, net: FeatureNet | None = None) -> dict:
    """Train (feature net if needed, then the sphere mapper) and evaluate. Returns a dict of everything made."""
    train = training_batch(cfg, root, progress)
    feat_losses = []
    if cfg["source"] == "net" and net is None:
        net, feat_losses = train_feature_net(train["image"], train["mask"], cfg["feat_iters"], dim=cfg["feat_dim"],
                                             width=cfg["feat_width"], seed=cfg["seed"], progress=progress)
    # flip: the features of the mirrored photos, encoded as such (a CNN is not flip-equivariant)
    mirror = features_of(cfg, mirrored(train), net, 2) if cfg["flip"] else None
    train_data = dataset_for(cfg, train, features_of(cfg, train, net, 0), mirror)
    model, history = fit(cfg, train_data, progress=progress)
    test = evaluation_batch(cfg, root)
    test_data = dataset_for(cfg, test, features_of(cfg, test, net, 1))
    metrics = evaluate(model, test_data, cfg["n_pairs"], cfg["seed"], cfg["alphas"], cfg["fuse"])
    return {"model": model, "net": net, "history": history, "feature_losses": feat_losses, "metrics": metrics,
            "train": train_data, "test": test_data, "test_batch": test}
