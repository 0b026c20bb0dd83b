"""KeypointNet (You et al., CVPR 2020): annotated 3D keypoints on ShapeNet point clouds.

Official layout (qq456cvb/KeypointNet, README "Download" and "Data Format"; see
:mod:`.layout_wave2`)::

    annotations/<category>.json        a list of records, one per model
    pcds/<class_id>/<model_id>.pcd     ascii PCD, FIELDS x y z rgb, 2048 points
    splits/{train,val,test}.txt        one "<class_id>-<model_id>" per line

A record is ``{"class_id", "model_id", "keypoints": [{"xyz", "rgb",
"semantic_id", "pcd_info": {"point_index"}, "mesh_info": {...}}, ...],
"symmetries": {"reflection": [{"kp_indexes": [i, j]}], "rotation": [...]}}``;
``point_index`` is the keypoint's row in the model's cloud, and ``kp_indexes``
index the record's ``keypoints`` list. ``rgb`` in the PCD is packed as
``r << 16 | g << 8 | b`` (an unsigned int; a float field holds the same bits).

:func:`load_keypointnet` returns the structure of the synthetic clouds of
notebook 07 (``csmlab.data.synthetic.pointclouds``): ``points`` [n,N,3],
``keypoint_index`` [n,S] (the cloud row of each semantic keypoint, -1 where a
model lacks it: KeypointNet's dense table), ``keypoints`` [n,S,3] (0 where
absent), ``keypoint_flip`` [S] (the reflection partner of each semantic id,
itself where it has none), ``category``; plus what only the real data has:
``colors`` [n,N,3] in [0, 1], ``records`` (the JSON records, untouched),
``model_ids`` and ``class_id``. KeypointNet has no images, cameras, normals,
surface UVs or part labels, and none are returned.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import torch

from .layout_wave2 import keypointnet_dir

KEYPOINTNET_CLASS_IDS = {"airplane": "02691156", "bathtub": "02808440", "bed": "02818832", "bottle": "02876657",
                         "cap": "02954340", "car": "02958343", "chair": "03001627", "guitar": "03467517",
                         "helmet": "03513137", "knife": "03624134", "laptop": "03642806", "motorcycle": "03790512",
                         "mug": "03797390", "skateboard": "04225987", "table": "04379243", "vessel": "04530566"}


def read_pcd(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An ascii PCD file -> ([N,3] float32 xyz, [N,3] float32 rgb in [0,1] or None without an rgb field)."""
    path = Path(path)
    lines = path.read_text().splitlines()
    header: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        if not line.strip() or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            body = lines[i + 1:]
            break
    else:
        raise ValueError(f"{path} is not a PCD file: no DATA line")
    if header["DATA"] != ["ascii"]:
        raise ValueError(f"{path}: only ascii PCD files are read, got DATA {' '.join(header['DATA'])}")
    fields = header.get("FIELDS", [])
    if fields[:3] != ["x", "y", "z"]:
        raise ValueError(f"{path}: FIELDS must start with x y z, got {fields}")
    rows = np.array([ln.split() for ln in body if ln.strip()], dtype=object)
    n = int(header.get("POINTS", [len(rows)])[0])
    if rows.shape != (n, len(fields)):
        raise ValueError(f"{path}: expected {n} rows of {len(fields)} values, got shape {list(rows.shape)}")
    xyz = torch.from_numpy(rows[:, :3].astype(np.float32))
    if "rgb" not in fields:
        return xyz, None
    col = fields.index("rgb")
    kind = header.get("TYPE", ["F"] * len(fields))[col]
    if kind == "F":  # the packed int's bits stored in a float
        packed = np.array([struct.unpack("<I", struct.pack("<f", float(v)))[0] for v in rows[:, col]], dtype=np.int64)
    else:
        packed = rows[:, col].astype(np.int64)
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
    return xyz, torch.from_numpy(rgb.astype(np.float32) / 255.0)


def read_split(path: str | os.PathLike) -> list[tuple[str, str]]:
    """A split file -> [(class_id, model_id)]."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            class_id, sep, model_id = line.strip().partition("-")
            if not sep:
                raise ValueError(f"{path}: line {line!r} is not '<class_id>-<model_id>'")
            out.append((class_id, model_id))
    return out


def flip_permutation(records: list[dict], num_semantics: int) -> torch.Tensor:
    """[S] long: the reflection partner of each semantic id (itself where none), the same in every record."""
    perm = list(range(num_semantics))
    for rec in records:
        sem = [kp["semantic_id"] for kp in rec["keypoints"]]
        for group in rec.get("symmetries", {}).get("reflection", []):
            idx = group["kp_indexes"]
            if len(idx) != 2:
                continue  # a reflection group of one keypoint lies on the mirror plane
            a, b = sem[idx[0]], sem[idx[1]]
            for s, t in ((a, b), (b, a)):
                if perm[s] not in (s, t):
                    raise ValueError(f"model {rec['model_id']} pairs semantic id {s} with {t}, another model "
                                     f"with {perm[s]}")
                perm[s] = t
    return torch.tensor(perm, dtype=torch.long)


def load_keypointnet(root: str | os.PathLike | None = None, category: str = "chair", split: str | None = None, *,
                     kpnet_dir: str | os.PathLike | None = None, limit: int | None = None) -> dict:
    """One category's annotated clouds (of ``split`` when given), in the structure of the module docstring."""
    if category not in KEYPOINTNET_CLASS_IDS:
        raise ValueError(f"category must be one of {sorted(KEYPOINTNET_CLASS_IDS)}, got {category!r}")
    if split not in (None, "train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val', 'test' or None, got {split!r}")
    d = Path(kpnet_dir) if kpnet_dir is not None else keypointnet_dir(root)
    anno = d / "annotations" / f"{category}.json"
    if not anno.is_file():
        raise ValueError(f"KeypointNet annotations are missing: expected {anno}; "
                         "run data_scripts/prepare_keypointnet.py")
    records = json.loads(anno.read_text())
    if split is not None:
        wanted = set(read_split(d / "splits" / f"{split}.txt"))
        records = [r for r in records if (r["class_id"], r["model_id"]) in wanted]
    records = records[:limit] if limit is not None else records
    if not records:
        raise ValueError(f"no {category} models in {anno}" + (f" are in the {split} split" if split else ""))
    clouds, colours = [], []
    for rec in records:
        xyz, rgb = read_pcd(d / "pcds" / rec["class_id"] / f"{rec['model_id']}.pcd")
        if clouds and xyz.shape != clouds[0].shape:
            raise ValueError(f"cloud of {rec['model_id']} has {len(xyz)} points, others {len(clouds[0])}")
        clouds.append(xyz)
        colours.append(rgb if rgb is not None else torch.ones_like(xyz))
    S = 1 + max(kp["semantic_id"] for rec in records for kp in rec["keypoints"])
    index = torch.full((len(records), S), -1, dtype=torch.long)
    keypoints = torch.zeros(len(records), S, 3)
    for r, rec in enumerate(records):
        for kp in rec["keypoints"]:
            row = kp["pcd_info"]["point_index"]
            if not 0 <= row < len(clouds[r]):
                raise ValueError(f"model {rec['model_id']}: point_index {row} is outside its {len(clouds[r])} points")
            index[r, kp["semantic_id"]] = row
            keypoints[r, kp["semantic_id"]] = torch.tensor(kp["xyz"], dtype=torch.float32)
    return {"points": torch.stack(clouds), "colors": torch.stack(colours), "keypoint_index": index,
            "keypoints": keypoints, "keypoint_flip": flip_permutation(records, S), "category": category,
            "class_id": KEYPOINTNET_CLASS_IDS[category], "model_ids": [r["model_id"] for r in records],
            "records": records}
