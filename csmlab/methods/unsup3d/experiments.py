"""The experiments of the notebook and the command line: baselines, ablations, the asymmetric perturbation.

- :func:`baselines`: the paper's Table 2 rows that need no Unsup3D training (constant null
  depth, the average ground-truth depth) and the supervised depth net.
- :func:`evaluate_split`: a trained model on the whole test set and on its symmetric and
  asymmetric faces separately (the asymmetric-perturbation table), with the sigma statistics.
- :func:`ablation_table`: every variant trained with the same budget on the same data.
"""

from __future__ import annotations

import time

from .evaluate import average_depth_baseline, constant_depth_baseline, evaluate
from .fit import evaluate_supervised, fit, fit_supervised, select
from .presets import VARIANTS, get_config


def baselines(cfg: dict, train: dict, test: dict, progress: bool = False, supervised: bool = True) -> dict:
    """Table 2's baselines on ``test``: constant null depth, average GT depth and (optionally) supervised."""
    rows = {"const_null_depth": constant_depth_baseline(test), "avg_gt_depth": average_depth_baseline(test)}
    if supervised:
        model, _ = fit_supervised({**cfg, "iters": cfg.get("supervised_iters") or cfg.get("iters")}, train,
                                  progress=progress)
        rows["supervised"] = evaluate_supervised(model, test)
    return rows


def evaluate_split(model, test: dict) -> dict:
    """Metrics on all test faces, then on the symmetric and on the asymmetric ones (patch or fringe)."""
    out = {"all": evaluate(model, test)}
    for name, which in (("symmetric", ~test["asymmetric"]), ("asymmetric", test["asymmetric"])):
        if which.any():
            out[name] = evaluate(model, select(test, which))
    return out


def ablation_table(scale: str, variants: list[str], train: dict, test: dict, progress: bool = False,
                   deadline: float | None = None, **overrides) -> dict:
    """{variant: metrics} for variants trained with the same overrides (budget) of ``scale``.

    ``no_perceptual`` is not retrained where the preset has the perceptual term off already: its
    row is the full model's, and says so. With a ``deadline`` (``time.time()``), a variant cut
    short records its ``iterations_done`` and variants not started in time are marked not run.
    """
    table = {}
    for name in variants:
        if deadline is not None and time.time() > deadline:
            table[name] = {"not_run": "out of time"}
            continue
        if name not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {name!r}")
        cfg = get_config(scale, name, **overrides)
        if name == "no_perceptual" and get_config(scale, "full", **overrides)["perceptual"] is None:
            table[name] = {"same_as": "full", "why": f"the {scale} preset has the perceptual term off"}
            continue
        start = time.perf_counter()
        model, history = fit(cfg, train, progress=progress, deadline=deadline)
        table[name] = {**evaluate_split(model, test), "seconds": round(time.perf_counter() - start, 1),
                       "iterations_done": int(history["iterations_done"][-1]),
                       "final_losses": {k: history.mean_last(k, 50) for k in history.names}}
    return table
