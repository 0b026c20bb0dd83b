"""``make_dataset``: synthetic samples generated once, cached as ``npz``, served as sample dicts.

The cache file is ``<data root>/synthetic/<category>-n<n>-r<resolution>-s<seed>-v<CACHE_VERSION[category]>.npz``
(data root: ``csmlab.config.data_root(root)``); birds drawn under other priors than
``views="full", articulation="full"`` add ``-<views>-<articulation>`` before the version. It is written to a temporary
file and renamed, so an interrupted run never leaves a half-written cache. A
file that cannot be read is regenerated. Bump ``CACHE_VERSION`` whenever the
generator changes what a seed produces.

Storage: images (and the faces' albedo) as uint8, so ``image`` comes back
quantised to multiples of 1/255; the birds' ``depth``, ``surface_xyz`` and
``surface_uv`` as float16 (about 5e-4 of precision, under 0.03 px at 128 px);
everything else as float32.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from csmlab.config import data_root
from csmlab.io import atomic_write

# Per category, so that a change to one generator leaves the other's caches valid.
# birds 5: views/articulation priors, on-object keypoint visibility, thicker and blunt thin parts.
# faces 6: the face's outline at depth 1 (faces.DEPTH_RIM), so the depth map is centred on the rotation centre.
# faces 7: the background lit by the scene's light (faces.background_colour), so the model can reconstruct it.
CACHE_VERSION = {"birds": 5, "faces": 7}
CATEGORIES = ("birds", "faces")
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024
CHUNK = {"birds": 128, "faces": 64}  # images rendered together at 64 px; fewer at higher resolutions


def chunk_size(category: str, resolution: int) -> int:
    """Images per rendering batch: memory grows with the pixel count, so keep pixels per batch bounded."""
    return max(4, min(CHUNK[category], CHUNK[category] * 64 * 64 // (resolution * resolution)))

_STORAGE = {  # key -> (numpy dtype, scale): stored = value * scale
    "birds": {"image": (np.uint8, 255), "mask": (np.uint8, 1), "depth": (np.float16, 1),
              "surface_xyz": (np.float16, 1), "surface_uv": (np.float16, 1), "keypoints": (np.float32, 1)},
    "faces": {"image": (np.uint8, 255), "mask": (np.uint8, 1), "depth": (np.float32, 1),
              "canonical_depth": (np.float32, 1), "canonical_mask": (np.uint8, 1), "albedo": (np.uint8, 255)},
}
_SCENE_KEYS = {  # scene parameters kept with the images
    "birds": ("deform", "articulation", "viewpoint", "scale", "quat", "trans", "light_dir", "ambient", "diffuse"),
    "faces": ("rotation", "trans", "light_dir", "ambient", "diffuse", "asym_kind"),
}


def check_dataset_args(category, n, resolution, seed) -> None:
    """Raise ValueError, naming the allowed values, unless the arguments are valid."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int (the number of samples), got {n!r}")
    if not isinstance(resolution, (int, np.integer)) or isinstance(resolution, bool) \
            or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must be an int in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] (square images), "
                         f"got {resolution!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def check_prior_args(category, views, articulation) -> None:
    """Raise ValueError unless the priors are known (birds) or the defaults (faces have no such priors)."""
    from .birds_priors import check_prior
    check_prior(views, articulation)
    if category != "birds" and (views, articulation) != ("full", "full"):
        raise ValueError(f"views and articulation are priors of the birds only; category {category!r} "
                         f"takes the defaults ('full', 'full'), got ({views!r}, {articulation!r})")


def cache_path(category: str, n: int, resolution: int, seed: int, root=None, views: str = "full",
               articulation: str = "full") -> Path:
    prior = "" if (views, articulation) == ("full", "full") else f"-{views}-{articulation}"
    name = f"{category}-n{n}-r{resolution}-s{seed}{prior}-v{CACHE_VERSION[category]}.npz"
    return data_root(root) / "synthetic" / name


def generate_arrays(category: str, n: int, resolution: int, seed: int, progress: bool = True,
                    views: str = "full", articulation: str = "full") -> dict:
    """Render n samples and return the storage arrays (what the cache holds)."""
    from tqdm.auto import tqdm

    from . import birds_render, birds_scenes, faces, get_category

    if category == "birds":
        index = get_category("birds")
        scenes = birds_scenes.sample_scenes(index, n, seed, views, articulation)
        render_chunk = lambda sc: birds_render.render_scenes(index, sc, resolution)  # noqa: E731
    else:
        scenes = faces.sample_scenes(n, seed)
        render_chunk = lambda sc: faces.render_scenes(sc, resolution)  # noqa: E731
    arrays: dict[str, np.ndarray] = {}
    with tqdm(total=n, desc=f"synthetic {category} {resolution}px", unit="img", disable=not progress) as bar:
        chunk = chunk_size(category, resolution)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            out = render_chunk({k: v[start:stop] for k, v in scenes.items()})
            for key, (dtype, scale) in _STORAGE[category].items():
                value = out[key].detach().numpy()
                if dtype == np.uint8:
                    value = np.rint(value * scale)  # values are in [0, 1] by construction
                if key not in arrays:
                    arrays[key] = np.empty((n,) + value.shape[1:], dtype=dtype)
                arrays[key][start:stop] = value.astype(dtype)
            bar.update(stop - start)
    for key in _SCENE_KEYS[category]:
        arrays[key] = scenes[key].numpy()
    return arrays


def _save_atomic(path: Path, arrays: dict) -> None:
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def _load(path: Path, category: str, n: int) -> dict | None:
    """The cached arrays, or None when the file is missing or unreadable."""
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    expected = set(_STORAGE[category]) | set(_SCENE_KEYS[category])
    if set(arrays) != expected or any(len(a) != n for a in arrays.values()):
        return None
    return arrays


class SyntheticDataset(torch.utils.data.Dataset):
    """Samples of one synthetic category, held in memory (float conversion per item).

    ``dataset[i]`` is a sample dict (see :mod:`csmlab.data.synthetic`);
    ``dataset.batch(indices)`` returns the same fields batched, without a DataLoader.
    Attributes: ``category`` (the category index of :func:`get_category`),
    ``name``, ``resolution``, ``seed``, ``path`` (the cache file), ``arrays``, the
    priors ``views`` and ``articulation``, and ``rung`` (the benchmark rung, or None).
    """

    def __init__(self, name: str, arrays: dict, resolution: int, seed: int, path: Path | None,
                 views: str = "full", articulation: str = "full", rung: str | None = None):
        from . import get_category
        self.name, self.arrays, self.resolution, self.seed, self.path = name, arrays, resolution, seed, path
        self.views, self.articulation, self.rung = views, articulation, rung
        self.category = get_category(name)

    def __len__(self) -> int:
        return len(self.arrays["image"])

    def __getitem__(self, i: int) -> dict:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise ValueError(f"index must be an int, got {type(i).__name__}")
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range for a dataset of {len(self)} samples")
        i = int(i) % len(self)
        sample = self.batch([i])
        return _unbatch(sample)

    def batch(self, indices) -> dict:
        """Batched sample fields for a list/array/slice of indices (first dimension = batch)."""
        idx = np.arange(len(self))[indices] if isinstance(indices, slice) else np.asarray(indices, dtype=np.int64)
        a = {k: v[idx] for k, v in self.arrays.items()}
        out = {}
        for key, (_, scale) in _STORAGE[self.name].items():
            t = torch.from_numpy(np.ascontiguousarray(a[key])).float()
            out[key] = t / scale if scale != 1 else t
        t = lambda k: torch.from_numpy(np.ascontiguousarray(a[k])).float()  # noqa: E731
        out["light"] = {"ambient": t("ambient"), "diffuse": t("diffuse"), "direction": t("light_dir")}
        if self.name == "birds":
            out["camera"] = {"scale": t("scale"), "quat": t("quat"), "trans": t("trans")}
            out.update(deform=t("deform"), articulation=t("articulation"), viewpoint=t("viewpoint"))
        else:
            from .faces_geometry import depth_to_normals, shade
            out["view"] = {"rotation": t("rotation"), "trans": t("trans")}
            out["asymmetric"] = torch.from_numpy(a["asym_kind"] > 0)
            out["canonical_image"] = shade(out["albedo"], depth_to_normals(out["canonical_depth"]),
                                           out["light"]["ambient"], out["light"]["diffuse"], out["light"]["direction"])
        out["category"] = [self.name] * len(idx)
        out["index"] = torch.from_numpy(idx)
        return out


def _unbatch(batch: dict) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = _unbatch(v)
        elif isinstance(v, list):
            out[k] = v[0]
        elif k == "index":
            out[k] = int(v[0])
        else:
            out[k] = v[0]
    return out


def make_dataset(category: str, n: int, resolution: int, seed: int = 0, root=None, progress: bool = True,
                 cache: bool = True, views: str = "full", articulation: str = "full") -> SyntheticDataset:
    """A synthetic dataset of n samples at resolution x resolution, deterministic in ``seed``.

    category: "birds" or "faces". The samples are generated on the first call
    (with a tqdm progress bar) and cached as npz under ``<data root>/synthetic``;
    later calls load the cache. ``cache=False`` generates in memory only.
    Birds only: ``views`` ("full" | "cub") and ``articulation`` ("rest" | "cub" |
    "full") choose the priors of :mod:`.birds_priors` (defaults: the full circle
    and the full joint ranges).
    """
    check_dataset_args(category, n, resolution, seed)
    check_prior_args(category, views, articulation)
    n, resolution, seed = int(n), int(resolution), int(seed)
    path = cache_path(category, n, resolution, seed, root, views, articulation) if cache else None
    arrays = _load(path, category, n) if cache else None
    if arrays is None:
        arrays = generate_arrays(category, n, resolution, seed, progress, views, articulation)
        if cache:
            _save_atomic(path, arrays)
    return SyntheticDataset(category, arrays, resolution, seed, path, views, articulation)
