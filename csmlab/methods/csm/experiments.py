"""Experiments shared by the command line and the notebook: data splits, a run per variant, the ablation table."""

from __future__ import annotations

import time

import torch

from csmlab.train import History

from .evaluate import evaluate, predict
from .fit import build_model, fit, initial_scale, stack_samples
from .presets import VARIANTS, get_config
from .template import load_template

# Held-out images come from a different generator seed than the training ones.
VAL_SEED_OFFSET = 10_000


def make_splits(cfg: dict, root=None, progress: bool = True) -> tuple[dict, dict]:
    """(train, val) stacked datasets for ``cfg``: synthetic birds, or CUB for the full recipe.

    ``root`` is the data root (default ``$CSMLAB_DATA`` or ``./data``). With ``cfg["rung"]``
    set ("A", "B", "C"), the training birds follow that rung's priors and the held-out set is
    the shared benchmark split (``csmlab.data.synthetic.benchmark_split``, its own fixed seed);
    with ``rung=None``, the full priors and ``n_val`` birds of another generator seed. Either
    way no held-out bird was seen in training.
    """
    if cfg["data"] == "synthetic":
        from csmlab.data.synthetic import benchmark_split, make_dataset, rung_priors

        rung = cfg.get("rung")
        kw = dict(root=root, progress=progress, **(rung_priors(rung) if rung else {}))
        train = make_dataset(cfg["category"], cfg["n_train"], cfg["resolution"], cfg["seed"], **kw)
        if rung:
            val = benchmark_split(cfg["category"], rung, cfg["resolution"], root=root)
        else:
            val = make_dataset(cfg["category"], cfg["n_val"], cfg["resolution"], cfg["seed"] + VAL_SEED_OFFSET, **kw)
        return training_fields(stack_samples(train), cfg), stack_samples(val)
    if cfg["data"] == "cub":
        return _cub_splits(cfg, root)
    raise ValueError(f"cfg['data'] must be 'synthetic' or 'cub', got {cfg['data']!r}")


def training_fields(data: dict, cfg: dict | None = None) -> dict:
    """Only what training may use: images, masks, and the cameras (read by the 'w/ pose' variant only).

    The true sphere UV is kept only for the ``supervised_uv`` reference (``cfg['uv_supervision']``).
    """
    keep = ("image", "mask", "cam_scale", "cam_quat", "cam_trans")
    keep += ("surface_uv",) if cfg is not None and cfg.get("uv_supervision") else ()
    return {k: v for k, v in data.items() if k in keep}


def _cub_splits(cfg: dict, root=None):
    """CUB-200-2011 with CMR's annotations: the train split stays a lazy dataset (CMR's 5 % box jitter),
    the val split is stacked for evaluation. Needs ``data_scripts/prepare_cub.py`` to have run."""
    from csmlab.data.real.cub import CubDataset

    train = CubDataset(root, "train", img_size=cfg["resolution"], jitter_frac=0.05, seed=cfg["seed"])
    val = CubDataset(root, cfg.get("val_split", "val"), img_size=cfg["resolution"])
    n_val = len(val) if cfg.get("n_val") is None else min(int(cfg["n_val"]), len(val))
    return train, stack_samples([val[i] for i in range(n_val)])


def split_sizes(train, val: dict) -> tuple[int, int]:
    """(training images, held-out images): ``train`` is a stacked dict or a lazy dataset (CUB)."""
    n_train = train["image"].shape[0] if isinstance(train, dict) else len(train)
    return n_train, val["image"].shape[0]


def validation_callback(val: dict, n_pairs: int = 300, n_images: int = 64, threshold: float = 0.1):
    """A ``fit`` callback that logs ``val_pck`` and ``val_surface_error`` on a fixed validation subset."""
    subset = {k: v[:n_images] for k, v in val.items()}

    def callback(iteration: int, model, history: History) -> None:
        m = evaluate(model, subset, n_pairs=n_pairs, threshold=threshold)
        history.log(iteration, {"val_pck": m.get("transfer_pck", float("nan")),
                                "val_surface_error": m.get("surface_error", float("nan"))})

    return callback


def run_variant(cfg: dict, train: dict, val: dict, category=None, progress: bool = True, model=None,
                checkpoint_path=None, log_validation: bool = True,
                restart: bool = False) -> tuple[object, History, dict]:
    """Train one variant and evaluate it on ``val``. Returns (model, history, metrics with ``train_seconds``)."""
    category = category if category is not None else load_template(cfg)
    callback = validation_callback(val) if (log_validation and cfg["eval_every"]) else None
    start = time.perf_counter()
    model, history = fit(cfg, train, category, model=model, checkpoint_path=checkpoint_path, progress=progress,
                         callback=callback, restart=restart)
    seconds = time.perf_counter() - start
    metrics = evaluate(model, val, n_pairs=cfg["n_pairs"], threshold=cfg["threshold"])
    metrics["train_seconds"] = round(seconds, 1)
    metrics["iters"] = len(history["total"])
    return model, history, metrics


def untrained_metrics(cfg: dict, train: dict, val: dict, category=None) -> dict:
    """The baseline of a freshly initialised network (same seed and init scale as training would use)."""
    category = category if category is not None else load_template(cfg)
    model = build_model(cfg, category.template, category.template_uv,
                        init_scale=initial_scale(cfg, category.template, train),
                        canonical_verts=getattr(category, "canonical_verts", None))
    return evaluate(model, val, n_pairs=cfg["n_pairs"], threshold=cfg["threshold"])


def ablation_table(scale: str, variants=None, train: dict | None = None, val: dict | None = None, category=None,
                   progress: bool = True, **overrides) -> dict[str, dict]:
    """Metrics of the untrained network and of every variant, all at one scale (overrides apply to all)."""
    variants = list(variants or VARIANTS)
    base = get_config(scale, **overrides)
    if train is None or val is None:
        train, val = make_splits(base)
    category = category if category is not None else load_template(base)
    rows = {"untrained": untrained_metrics(base, train, val, category)}
    for name in variants:
        cfg = get_config(scale, name, **overrides)
        data = train
        if cfg["uv_supervision"]:
            if cfg["data"] != "synthetic":      # real images have no true UV: the reference does not exist
                continue
            if "surface_uv" not in train:
                data, _ = make_splits(cfg, progress=progress)     # the cached dataset, its true UV kept
        _, _, rows[name] = run_variant(cfg, data, val, category, progress, log_validation=False)
    return rows


def predictions(model, data: dict) -> dict:
    """Model outputs on a dataset (CPU tensors), for the pictures."""
    with torch.no_grad():
        return predict(model, data["image"])
