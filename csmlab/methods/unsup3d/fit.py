"""Training: ``fit(cfg, data)`` for Unsup3D, ``fit_supervised`` for the supervised baseline, and the data.

Adam (``lr``, betas 0.9 / 0.999, weight decay 5e-4) on every network, as the paper's
``make_optimizer``; batches are drawn by a generator seeded with (seed, iteration), so a
resumed run sees the same batches (``csmlab.train.train``). With ``cfg['random_flip']`` each
training image is mirrored left-right with probability 1/2, as the authors' data loaders do
(``hflip`` in ``unsup3d/dataloaders.py``, training only), drawn from the same seeded stream.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from csmlab.train import History, train

from .losses import load_perceptual, unsup3d_losses
from .model import Unsup3D
from .networks import EDDeconv


def load_faces(cfg: dict, split: str, root=None, progress: bool = False) -> dict:
    """The synthetic faces of a split ("train" or "test") as batched tensors, at ``cfg['resolution']``.

    The training set keeps the asymmetric faces (about half carry a patch or a fringe) unless
    ``cfg['train_asymmetric']`` is False; the test set is always the full mixture, seeded apart.
    """
    from csmlab.data.synthetic import make_dataset

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    n, seed = (cfg["n_train"], cfg["data_seed"]) if split == "train" else (cfg["n_test"], cfg["test_seed"])
    ds = make_dataset("faces", n, cfg["resolution"], seed=seed, root=root, progress=progress)
    data = ds.batch(range(len(ds)))
    if split == "train" and not cfg["train_asymmetric"]:
        data = select(data, ~data["asymmetric"])
    return data


def select(data: dict, which: torch.Tensor) -> dict:
    """The samples of a batched data dict at a bool mask or index tensor (nested dicts too; lists kept)."""
    idx = torch.nonzero(which)[:, 0] if which.dtype == torch.bool else which
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = {kk: vv[idx] for kk, vv in v.items()}
        elif isinstance(v, torch.Tensor):
            out[k] = v[idx]
        else:
            out[k] = [v[i] for i in idx.tolist()]
    return out


def random_flips(images: torch.Tensor, seed: int, it: int) -> torch.Tensor:
    """``images`` [B,C,H,W] with each one mirrored left-right with probability 1/2 (seeded by seed and iteration)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + it + 7)
    flip = (torch.rand(images.shape[0], generator=g) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class OutOfTime(Exception):
    """Raised by the batch function when the wall-clock budget of a run is spent."""


def _batch_fn(n: int, batch_size: int, seed: int, deadline: float | None = None):
    def batch(it: int) -> torch.Tensor:
        if deadline is not None and time.time() > deadline:
            raise OutOfTime(it)
        g = torch.Generator().manual_seed(seed * 1_000_003 + it)
        return torch.randint(n, (batch_size,), generator=g)   # CPU indices; they index a tensor on any device
    return batch


def _iterations(cfg: dict, n: int) -> int:
    if cfg.get("iters"):
        return int(cfg["iters"])
    return int(cfg["epochs"]) * max(1, n // cfg["batch_size"])


def make_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"], betas=(0.9, 0.999),
                            weight_decay=cfg["weight_decay"])


def fit(cfg: dict, data: dict, *, progress: bool = True, checkpoint_path=None, eval_data: dict | None = None,
        history: History | None = None, deadline: float | None = None) -> tuple[Unsup3D, History]:
    """Train Unsup3D on ``data`` {image [N,3,S,S], ...}; returns (model, history).

    With ``eval_data`` and ``cfg['eval_every']``, SIDE / MAD on it are logged as ``val_side`` /
    ``val_mad`` every ``eval_every`` iterations (and at the end). ``deadline`` (a ``time.time()``
    value) stops training early at the first iteration past it; ``history["iterations_done"]``
    holds the number of iterations actually run.
    """
    from .evaluate import evaluate

    torch.manual_seed(cfg["seed"])        # the networks' initialisation, as the paper's seeded runs
    images = data["image"]
    device = torch.device(cfg["device"]) if cfg.get("device") else images.device
    model = Unsup3D(cfg).to(device)
    perceptual = load_perceptual(cfg["perceptual"])
    perceptual = perceptual.to(device) if perceptual is not None else None
    images = images.to(device)
    draw = _batch_fn(images.shape[0], cfg["batch_size"], cfg["seed"], deadline)

    def loss_fn(m, idx, it):
        image = random_flips(images[idx], cfg["seed"], it) if cfg.get("random_flip") else images[idx]
        out = m(image)
        terms = unsup3d_losses(out, image, cfg, perceptual)
        monitors = {"mask_fraction": float(out["mask_both"].detach().mean())}
        if "sigma" in out:
            monitors["sigma_mean"] = float(out["sigma"].detach().mean())
        return terms, monitors

    def callback(it, m, hist):
        if eval_data is not None and cfg["eval_every"]:
            r = evaluate(m, eval_data)
            hist.log(it, {"val_side": r["side"], "val_mad": r["mad"]})
            if not progress:   # a log line for background runs
                print(f"iteration {it}: val SIDE {r['side_e2']:.3f}e-2, MAD {r['mad']:.2f} deg, loss "
                      f"{hist.mean_last('total', 50):.4f} ({time.strftime('%H:%M:%S')})", flush=True)

    n_iters = _iterations(cfg, images.shape[0])
    history = history if history is not None else History()
    try:
        train(model, make_optimizer(model, cfg), loss_fn, draw, n_iters, history=history,
              checkpoint_path=checkpoint_path, checkpoint_every=250 if checkpoint_path else 0,
              grad_clip=cfg["grad_clip"], progress=progress, desc=f"unsup3d {cfg.get('variant', '')}".strip(),
              callback=callback, callback_every=cfg["eval_every"] or 0)
        done = n_iters
    except OutOfTime as stop:
        done = int(stop.args[0])
        callback(done, model, history)
    history.log(done, {"iterations_done": done})
    model.eval()
    return model, history


class SupervisedDepth(nn.Module):
    """The baseline: Unsup3D's depth net fitted to the ground-truth input-view depth (same output map)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        self.netD = EDDeconv(3, 1, zdim=cfg["zdim"], nf=cfg["nf"], resolution=cfg["resolution"], activation=None)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        raw = self.netD(image * 2 - 1)
        d = (raw - raw.mean(dim=(1, 2, 3), keepdim=True)).tanh()
        lo, hi = self.cfg["min_depth"], self.cfg["max_depth"]
        return (1 + d) / 2 * hi + (1 - d) / 2 * lo


def offset_free_log_l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked pixels of ``|r - mean(r)|``, ``r = log pred - log gt`` per image: SIDE's L1 twin.

    Why not a plain L1 on depth: the synthetic faces move +-0.05 in depth (synface does not), so the
    ground-truth view depth carries a per-image offset larger than the face's relief (~0.03), while
    the depth map's normalisation (a mean-subtracted tanh about 1) cannot follow it. A plain L1 is
    then dominated by that offset and its gradient carries almost no shape (the baseline stalled
    near the average-depth row). SIDE ignores a global scale, so the loss does too.
    """
    on = mask > 0
    k = mask.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1)      # an empty mask contributes 0, not NaN
    # Off the mask the depths are irrelevant; 1 keeps their logs finite (the ground truth may hold 0 there).
    r = (torch.where(on, pred, 1.0).log() - torch.where(on, gt, 1.0).log()) * mask
    r = (r - r.sum(dim=(1, 2, 3), keepdim=True) / k) * mask
    return (r.abs().sum(dim=(1, 2, 3)) / k[:, 0, 0, 0]).mean()


def fit_supervised(cfg: dict, data: dict, *, progress: bool = True) -> tuple[SupervisedDepth, History]:
    """The paper's supervised baseline (Table 2 row 1): the depth net fitted to the ground-truth view depth.

    The loss is :func:`offset_free_log_l1` over the face mask (see there for why not a plain L1).
    """
    torch.manual_seed(cfg["seed"])
    model = SupervisedDepth(cfg)
    images, depth, mask = data["image"], data["depth"], data["mask"]
    draw = _batch_fn(images.shape[0], cfg["batch_size"], cfg["seed"] + 1)

    def loss_fn(m, idx, it):
        im, d, k = images[idx], depth[idx], mask[idx]
        if cfg.get("random_flip"):    # the paired loader mirrors the image and its depth together
            both = random_flips(torch.cat([im, d, k], 1), cfg["seed"], it)
            im, d, k = both[:, :3], both[:, 3:4], both[:, 4:]
        return {"depth_log_l1": offset_free_log_l1(m(im), d, k)}

    history = train(model, make_optimizer(model, cfg), loss_fn, draw, _iterations(cfg, images.shape[0]),
                    progress=progress, desc="supervised depth")
    model.eval()
    return model, history


@torch.no_grad()
def evaluate_supervised(model: SupervisedDepth, data: dict, batch_size: int = 64) -> dict:
    """SIDE / MAD of the supervised baseline (every predicted pixel valid)."""
    from .evaluate import _summary, depth_metrics

    sides, mads = [], []
    for start in range(0, data["image"].shape[0], batch_size):
        sl = slice(start, start + batch_size)
        pred = model(data["image"][sl])
        m = depth_metrics(pred, data["depth"][sl], data["mask"][sl], torch.ones_like(pred))
        sides.append(m["side"])
        mads.append(m["mad"])
    return _summary({"side": torch.cat(sides), "mad": torch.cat(mads)})
