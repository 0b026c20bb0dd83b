"""The shared benchmark split: one held-out evaluation set per category and rung.

Every notebook from 01 on evaluates on :func:`benchmark_split`, so the numbers of
all methods stand in one scoreboard (``csmlab.course``). The rungs go from easy
to hard:

====  =================  ==============  =====================================================
rung  views              articulation    what it tests
====  =================  ==============  =====================================================
A     ``"cub"``          ``"rest"``      a rigid category (deformation only), CUB-like views
B     ``"cub"``          ``"cub"``       CUB-like: perched birds, mostly folded wings (default)
C     ``"full"``         ``"full"``      every joint over its range, the full circle of views
====  =================  ==============  =====================================================

(priors: :mod:`.birds_priors`). The split has ``BENCHMARK_SIZE`` = 300 birds
drawn with the fixed seed ``BENCHMARK_SEED``, the same seed on every rung, so
bird i has the same shape, framing, light and appearance on A, B and C and only
its pose and view change. The seed is far from the seeds the methods train on
(0, 1, ... and their validation offsets); train on ``make_dataset(...,
**rung_priors(rung))`` with your own seed to match a rung's distribution.
The split is cached like any ``make_dataset`` call.
"""

from __future__ import annotations

import numpy as np

from .dataset import SyntheticDataset, make_dataset

BENCHMARK_SEED = 919_019
BENCHMARK_SIZE = 300
RUNGS = {"A": ("cub", "rest"), "B": ("cub", "cub"), "C": ("full", "full")}   # rung -> (views, articulation)
RUNG_NAMES = {"A": "rigid, CUB-like views", "B": "CUB-like articulation and views",
              "C": "full articulation, full circle"}


def rung_priors(rung: str) -> dict:
    """The ``views`` and ``articulation`` keyword arguments of ``make_dataset`` for a rung."""
    if rung not in RUNGS:
        raise ValueError(f"rung must be one of {sorted(RUNGS)}, got {rung!r}")
    views, articulation = RUNGS[rung]
    return {"views": views, "articulation": articulation}


def rung_mix(rung: str) -> list[str]:
    """The rungs of a training mix: "C" -> ["C"], "B+C" -> ["B", "C"]."""
    parts = str(rung).split("+")
    if any(p not in RUNGS for p in parts):
        raise ValueError(f"rung must be one of {sorted(RUNGS)}, or several of them joined by '+' (such as 'B+C'), "
                         f"got {rung!r}")
    return parts


def mixed_rung_parts(category: str, n: int, resolution: int, rung: str, seed: int, root=None,
                     progress: bool = True, cache: bool = True) -> list[SyntheticDataset]:
    """``n`` training samples drawn from the priors of ``rung`` (one rung, or an equal mix such as "B+C"),
    one dataset per rung of the mix.

    Part ``i`` is drawn with seed ``seed + 1000 * i``, so a single rung's samples are
    ``make_dataset(..., seed=seed, **rung_priors(rung))`` unchanged, and no part repeats another's.
    """
    rungs = rung_mix(rung)
    sizes = [n // len(rungs) + (i < n % len(rungs)) for i in range(len(rungs))]
    return [make_dataset(category, k, resolution, seed=seed + 1000 * i, root=root, progress=progress, cache=cache,
                         **rung_priors(r)) for i, (r, k) in enumerate(zip(rungs, sizes))]


def mixed_rung_dataset(category: str, n: int, resolution: int, rung: str, seed: int, root=None,
                       progress: bool = True, cache: bool = True) -> SyntheticDataset:
    """:func:`mixed_rung_parts` as one :class:`SyntheticDataset`, its ``views`` and ``articulation`` the
    parts' joined by '+' (a single rung's dataset is returned as it is)."""
    parts = mixed_rung_parts(category, n, resolution, rung, seed, root, progress, cache)
    if len(parts) == 1:
        return parts[0]
    arrays = {k: np.concatenate([p.arrays[k] for p in parts]) for k in parts[0].arrays}
    return SyntheticDataset(category, arrays, resolution, seed, None, "+".join(p.views for p in parts),
                            "+".join(p.articulation for p in parts))


def benchmark_split(category: str = "birds", rung: str = "B", resolution: int = 64, root=None) -> SyntheticDataset:
    """The held-out benchmark split of ``category`` on ``rung`` ("A", "B" or "C") at ``resolution`` px.

    Returns the same :class:`SyntheticDataset` as ``make_dataset`` (``.batch``,
    ``.category``), with ``.rung`` set. Generated once (a few seconds per hundred
    birds at 64 px) and cached under the data root (``root``, else ``$CSMLAB_DATA``,
    else ``./data``).
    """
    if category != "birds":
        raise ValueError(f"category must be 'birds' (the only category with a benchmark split), got {category!r}")
    ds = make_dataset(category, BENCHMARK_SIZE, resolution, seed=BENCHMARK_SEED, root=root, progress=False,
                      **rung_priors(rung))
    ds.rung = rung
    return ds
