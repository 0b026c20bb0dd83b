"""The generic training loop shared by the papers (docs/design.md, section 1).

What every method needs and none should rewrite:

- :func:`seed_everything` makes a smoke run repeatable.
- :class:`History` keeps one series per named loss term, so notebooks can plot
  each term separately (docs/design.md, section 4: losses are dicts of weighted terms).
- :func:`save_checkpoint` / :func:`load_checkpoint` write through
  :func:`csmlab.io.atomic_write`, so a run killed mid-write never leaves a
  half-written checkpoint under the final name (docs/design.md, section 5).
- a checkpoint records the run's ``provenance`` (config and :func:`data_fingerprint`);
  resuming another run's checkpoint raises :class:`ResumeMismatch` unless ``restart``.
- :func:`train` runs the loop with a ``tqdm.auto`` progress bar, logs every term,
  checkpoints every ``checkpoint_every`` iterations and resumes from the last one.

A method provides ``loss_fn(model, batch, iteration)`` returning a dict of
*already weighted* scalar terms (their sum is minimised), or a pair
``(terms, monitors)`` where ``monitors`` are extra scalars that are logged but
not optimised. Batches come from ``batch_fn(iteration)``; making the batch a
function of the iteration keeps a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .io import atomic_write, sweep_stale_temps

LossOutput = dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, float]]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` seeded with ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class History:
    """Per-term scalar logs: ``history["cycle"]`` is the list of logged values of that term.

    Every term has its own list of iterations (``steps(name)``), so terms that
    are logged only some of the time (an evaluation metric) stay aligned.
    """

    def __init__(self):
        self._values: dict[str, list[float]] = {}
        self._steps: dict[str, list[int]] = {}

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            self._values.setdefault(name, []).append(v)
            self._steps.setdefault(name, []).append(int(step))

    @property
    def names(self) -> list[str]:
        return list(self._values)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __getitem__(self, name: str) -> list[float]:
        if name not in self._values:
            raise KeyError(f"no term {name!r} in the history; logged terms: {self.names}")
        return self._values[name]

    def steps(self, name: str) -> list[int]:
        self[name]  # raises a KeyError that lists the known names
        return self._steps[name]

    def __len__(self) -> int:
        return max((len(v) for v in self._values.values()), default=0)

    def mean_last(self, name: str, n: int = 20) -> float:
        """Mean of the last ``n`` logged values of ``name`` (a smoothed 'current' value)."""
        values = self[name][-n:]
        return sum(values) / len(values) if values else math.nan

    def smoothed(self, name: str, window: int = 20) -> tuple[list[int], list[float]]:
        """(steps, running mean over ``window`` logged values) for plotting noisy curves."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        values = np.asarray(self[name], dtype=float)
        cums = np.concatenate([[0.0], np.cumsum(values)])
        idx = np.arange(1, len(values) + 1)
        lo = np.maximum(idx - window, 0)
        return list(self.steps(name)), list((cums[idx] - cums[lo]) / (idx - lo))

    def state_dict(self) -> dict:
        return {"values": {k: list(v) for k, v in self._values.items()},
                "steps": {k: list(v) for k, v in self._steps.items()}}

    def load_state_dict(self, state: dict) -> "History":
        if not isinstance(state, dict) or set(state) != {"values", "steps"}:
            raise ValueError(f"state must be a dict with keys 'values' and 'steps', got "
                             f"{sorted(state) if isinstance(state, dict) else type(state).__name__}")
        self._values = {k: list(v) for k, v in state["values"].items()}
        self._steps = {k: list(v) for k, v in state["steps"].items()}
        return self

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        return cls().load_state_dict(state)

    def __repr__(self) -> str:
        return f"History({len(self)} entries; terms: {', '.join(self.names)})"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` with ``torch.save`` atomically: temp file in the same folder, then ``os.replace``."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict, got {type(state).__name__}")
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (or any ``torch.save`` dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} must hold a dict, got {type(state).__name__}")
    return state


class ResumeMismatch(ValueError):
    """The checkpoint belongs to another run (another config or other data); the message names the keys."""


def _canonical(value):
    """A JSON-able form of config values and fingerprints (tuples become lists, tensors their repr)."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def provenance_hash(provenance: dict) -> str:
    """sha256 of a provenance dict in canonical JSON: equal dicts give equal hashes on every machine."""
    return hashlib.sha256(json.dumps(_canonical(provenance), sort_keys=True).encode()).hexdigest()


def data_fingerprint(data) -> dict:
    """What identifies a training set: for a dict of tensors, their names, shapes, dtypes and a sha256 of
    their bytes; for another dataset, its type, length and ``root`` (its files are not read)."""
    if isinstance(data, dict):
        h = hashlib.sha256()
        for key in sorted(data):
            value = data[key]
            if isinstance(value, torch.Tensor):
                t = value.detach().cpu().contiguous()
                h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            else:
                h.update(f"{key}:{_canonical(value)!r};".encode())
        return {"kind": "tensors", "keys": sorted(data), "sha256": h.hexdigest()}
    return {"kind": type(data).__name__, "len": len(data) if hasattr(data, "__len__") else None,
            "root": str(getattr(data, "root", ""))}


def _differences(old, new, prefix: str = "") -> list[str]:
    """The keys (dotted paths) where two provenance dicts differ, each with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            name = f"{prefix}{key}"
            if key not in old or key not in new:
                out.append(f"{name} (only in the {'checkpoint' if key in old else 'new run'})")
            else:
                out += _differences(old[key], new[key], name + ".")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} in the checkpoint, {new!r} now"]


def check_resume(state: dict, provenance: dict, path) -> None:
    """Raise :class:`ResumeMismatch` unless the checkpoint ``state`` was written by a run of ``provenance``."""
    stored = state.get("provenance")
    if stored is None:
        raise ResumeMismatch(f"checkpoint {path} records no config/data provenance (an older run), so it may "
                             f"belong to another run; start over (restart=True, --restart) or move it away")
    new = _canonical(provenance)
    if state.get("provenance_hash") == provenance_hash(new):
        return
    diff = _differences(stored, new) or ["(the hashes differ)"]
    raise ResumeMismatch(f"checkpoint {path} belongs to another run; it differs in {len(diff)} key(s): "
                         + "; ".join(diff) + ". Start over with restart=True (--restart), or use another "
                         "checkpoint path")


def run_name(base: str, seed: int, overrides: dict | None = None) -> str:
    """A folder name for one run: ``base``, the seed and every override, e.g. ``csm_smoke_seed1_w_cycle=0``."""
    parts = [base, f"seed{seed}"]
    for key, value in sorted((overrides or {}).items()):
        if key != "seed":
            text = json.dumps(_canonical(value)) if not isinstance(value, str) else value
            parts.append(f"{key}={text}")
    name = "_".join(parts)
    name = re.sub(r"[^A-Za-z0-9._=+-]+", "-", name)   # a name every file system accepts
    if len(name) > 120:   # too many overrides for one name: keep it readable and unique
        name = name[:100] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return name


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _split_loss_output(out: LossOutput) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    terms, monitors = out if isinstance(out, tuple) else (out, {})
    if not isinstance(terms, dict) or not terms:
        raise ValueError(f"loss_fn must return a non-empty dict of scalar loss terms (or (terms, monitors)), "
                         f"got {type(terms).__name__}")
    for name, value in terms.items():
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError(f"loss term {name!r} must be a scalar tensor, got "
                             f"{list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
    return terms, monitors


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
          loss_fn: Callable[[torch.nn.Module, object, int], LossOutput],
          batch_fn: Callable[[int], object], n_iters: int, *,
          history: History | None = None, checkpoint_path: str | os.PathLike | None = None,
          checkpoint_every: int = 0, resume: bool = True, scheduler=None, grad_clip: float | None = None,
          progress: bool = True, desc: str = "train", extra_state: dict | None = None,
          callback: Callable[[int, torch.nn.Module, History], None] | None = None,
          callback_every: int = 0, provenance: dict | None = None, restart: bool = False) -> History:
    """Minimise the sum of ``loss_fn``'s terms for ``n_iters`` iterations (in total, across resumes).

    Args:
        loss_fn: ``(model, batch, iteration) -> terms`` or ``(terms, monitors)``; every term is a
            weighted scalar and their sum is the loss. Each term, the ``total`` and every monitor
            are logged in the history under their names at every iteration.
        batch_fn: ``iteration -> batch``.
        checkpoint_path: where to save (model, optimizer, scheduler, history, RNG states,
            ``extra_state``) every ``checkpoint_every`` iterations and at the end. With
            ``resume`` and an existing file there, training continues from it.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        callback: called as ``callback(iteration, model, history)`` every ``callback_every``
            iterations (an evaluation, a plot), and after the last iteration.
        provenance: what makes this run this run (the config, :func:`data_fingerprint` of the
            data); stored in the checkpoint with its hash. Resuming from a checkpoint of another
            provenance raises :class:`ResumeMismatch` naming the differing keys.
        restart: ignore an existing checkpoint and start from iteration 0 (it is overwritten).

    Raises FloatingPointError, naming the terms, if the loss stops being finite.
    """
    from tqdm.auto import tqdm

    if not isinstance(n_iters, int) or n_iters < 0:
        raise ValueError(f"n_iters must be a non-negative int, got {n_iters!r}")
    if checkpoint_every < 0 or callback_every < 0:
        raise ValueError(f"checkpoint_every and callback_every must be >= 0, got {checkpoint_every}, {callback_every}")
    history = history if history is not None else History()
    start = 0
    if checkpoint_path is not None:
        sweep_stale_temps(Path(checkpoint_path).parent)   # what a killed checkpoint write left behind
    if checkpoint_path is not None and resume and not restart and Path(checkpoint_path).is_file():
        state = load_checkpoint(checkpoint_path)
        if provenance is not None:
            check_resume(state, provenance, checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        history.load_state_dict(state["history"])
        _set_rng_state(state["rng"])
        start = int(state["iteration"])

    def checkpoint(iteration: int) -> None:
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": history.state_dict(), "rng": _rng_state(), "iteration": iteration,
            "extra": extra_state or {},
            **({"provenance": _canonical(provenance), "provenance_hash": provenance_hash(provenance)}
               if provenance is not None else {})})

    model.train()
    bar = tqdm(range(start, n_iters), desc=desc, initial=start, total=n_iters, disable=not progress,
               mininterval=0.5, dynamic_ncols=True)
    for it in bar:
        terms, monitors = _split_loss_output(loss_fn(model, batch_fn(it), it))
        total = sum(terms.values())
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss is not finite at iteration {it}: "
                                     + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items()))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history.log(it, {"total": total, **terms, **monitors})
        if progress and (it % 10 == 0 or it == n_iters - 1):
            bar.set_postfix(loss=f"{history.mean_last('total', 10):.4g}", refresh=False)
        done = it + 1
        if callback is not None and callback_every and done % callback_every == 0 and done != n_iters:
            callback(done, model, history)
            model.train()
        if checkpoint_path is not None and checkpoint_every and done % checkpoint_every == 0:
            checkpoint(done)
    bar.close()
    if checkpoint_path is not None and start < n_iters:
        checkpoint(n_iters)
    if callback is not None:
        callback(n_iters, model, history)
    return history


# Moved here from csmlab.methods.csm.pretrained (CSM and ACSM store their loss curves the same way).
def downsample_history(history: History, max_points: int = 300) -> dict:
    """History state with at most ``max_points`` (block-averaged) entries per term."""
    out = History()
    for name in history.names:
        values, steps = history[name], history.steps(name)
        block = max(1, -(-len(values) // max_points))
        for start in range(0, len(values), block):
            chunk = values[start:start + block]
            out.log(steps[min(start + block, len(values)) - 1], {name: sum(chunk) / len(chunk)})
    return out.state_dict()


# Moved here from csmlab.methods.csm.evaluate.predict (CSM and ACSM run their networks over a split alike).
@torch.no_grad()
def predict_in_batches(model, images: torch.Tensor, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Run the model in eval mode over [N,3,H,W] images, in batches, on the model's device; CPU outputs."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a [N,3,H,W] tensor, got "
                         f"{list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = [{k: v.cpu() for k, v in model(images[i:i + batch_size].to(device)).items()}
              for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def restore_pretrained(model: torch.nn.Module, state: dict, path, rebuilt: tuple[str, ...] = (),
                       device=None) -> tuple[torch.nn.Module, dict]:
    """Load a pretrained file's (float16) ``state["weights"]`` into a freshly built ``model``.

    Keys starting with one of ``rebuilt`` are rebuilt by the model itself (a template, say) and may be absent;
    any other missing key is an error naming ``path``. Returns (model in eval mode, the file's info dict: cfg,
    metrics, command, history, extra) -- the layout CSM's and ACSM's pretrained files share.
    """
    own = model.state_dict()
    weights = {k: v.to(own[k].dtype) for k, v in state["weights"].items()}
    missing = [k for k in own if k not in weights and not k.startswith(rebuilt)]
    if missing:
        raise ValueError(f"{path} lacks weights for {missing[:5]}{'...' if len(missing) > 5 else ''}")
    model.load_state_dict({**own, **weights})
    if device is not None:
        model = model.to(device)
    model.eval()
    history = History.from_state_dict(state["history"]) if state.get("history") else None
    return model, {"cfg": state["cfg"], "metrics": state["metrics"], "command": state.get("command"),
                   "history": history, "extra": state.get("extra", {})}
