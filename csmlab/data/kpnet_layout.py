"""KeypointNet's annotation layout, shared by the synthetic clouds and the real-data reader.

KeypointNet (You et al., CVPR 2020; ``annotations/<category>.json``) stores one
record per model::

    {"class_id": "03001627", "model_id": "...",
     "keypoints": [{"xyz": [x, y, z], "rgb": [r, g, b], "semantic_id": 0,
                    "pcd_info": {"point_index": 17},
                    "mesh_info": {"face_index": 3, "face_uv": [u, v, w]}}, ...],
     "symmetries": {"reflection": [{"kp_indexes": [0, 1]}, ...], "rotation": [...]}}

and the cloud of each model (``pcds/<class_id>/<model_id>.pcd``, 2048 points).
``kp_indexes`` index the record's ``keypoints`` list (not the cloud). Here a
cloud is a [N,3] float tensor. :func:`check_annotations` validates records
against their clouds, and :func:`keypoint_table` turns them into the dense
[n, num_semantics] table of point indices (-1 where a model lacks a semantic
keypoint) that KeypointNet's ``KeypointCorrespondenceDataset`` builds.
"""

from __future__ import annotations

import math

import torch


def make_record(class_id: str, model_id: str, xyz, semantic_ids, point_index, reflection_pairs=(),
                face_index=None, face_uv=None) -> dict:
    """One annotation record in KeypointNet's layout (``rgb`` is white: the synthetic clouds are uncoloured)."""
    keypoints = []
    for i, (p, s, idx) in enumerate(zip(xyz, semantic_ids, point_index)):
        kp = {"xyz": [float(c) for c in p], "rgb": [255, 255, 255], "semantic_id": int(s),
              "pcd_info": {"point_index": int(idx)}}
        if face_index is not None:
            kp["mesh_info"] = {"face_index": int(face_index[i]), "face_uv": [float(c) for c in face_uv[i]]}
        keypoints.append(kp)
    return {"class_id": str(class_id), "model_id": str(model_id), "keypoints": keypoints,
            "symmetries": {"reflection": [{"kp_indexes": [int(a), int(b)]} for a, b in reflection_pairs],
                           "rotation": []}}


def check_cloud(points, name: str = "points") -> torch.Tensor:
    """Raise ValueError unless ``points`` is a finite float tensor [N,3] (or [B,N,3]); return it."""
    if not isinstance(points, torch.Tensor) or not points.is_floating_point() or points.dim() not in (2, 3) \
            or points.shape[-1] != 3 or points.shape[-2] < 1:
        got = f"shape {list(points.shape)}, dtype {points.dtype}" if isinstance(points, torch.Tensor) \
            else type(points).__name__
        raise ValueError(f"{name} must be a float tensor [N,3] or [B,N,3] with N >= 1, got {got}")
    if not torch.isfinite(points).all():
        bad = int((~torch.isfinite(points)).any(-1).sum())
        raise ValueError(f"{name} holds {bad} point(s) with NaN or infinite coordinates")
    return points


def check_annotations(records: list, clouds, num_semantics: int | None = None) -> int:
    """Validate records against their clouds (a list of [N,3] or a [n,N,3] tensor); return num_semantics.

    Checks: one record per cloud, a non-empty keypoint list, integer semantic ids in
    [0, num_semantics) (default: the largest id + 1), point indices inside the cloud,
    ``xyz`` equal to the indexed point (within 1e-4 of the cloud's extent), no semantic id
    twice in a model, reflection pairs naming existing keypoints.
    """
    if not isinstance(records, (list, tuple)) or len(records) == 0:
        raise ValueError(f"records must be a non-empty list of annotation dicts, got {type(records).__name__}"
                         f"{'' if not isinstance(records, (list, tuple)) else ' of length 0'}")
    if len(clouds) != len(records):
        raise ValueError(f"need one cloud per record: {len(records)} records, {len(clouds)} clouds")
    ids = []
    for r, (rec, cloud) in enumerate(zip(records, clouds)):
        check_cloud(cloud, f"clouds[{r}]")
        kps = rec.get("keypoints") if isinstance(rec, dict) else None
        if not kps:
            raise ValueError(f"records[{r}] ({rec.get('model_id') if isinstance(rec, dict) else rec!r}) has an "
                             f"empty or missing 'keypoints' list; every annotated model needs at least one keypoint")
        seen = set()
        for k, kp in enumerate(kps):
            sid, idx = kp.get("semantic_id"), kp.get("pcd_info", {}).get("point_index")
            if not isinstance(sid, int) or isinstance(sid, bool) or sid < 0:
                raise ValueError(f"records[{r}].keypoints[{k}].semantic_id must be a non-negative int, got {sid!r}")
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(cloud):
                raise ValueError(f"records[{r}].keypoints[{k}].pcd_info.point_index must be an int in "
                                 f"[0, {len(cloud)}), got {idx!r}")
            if sid in seen:
                raise ValueError(f"records[{r}] has semantic_id {sid} twice")
            seen.add(sid)
            xyz = torch.as_tensor(kp.get("xyz", [math.nan] * 3), dtype=cloud.dtype)
            tol = 1e-4 * float((cloud.max(0).values - cloud.min(0).values).norm()) + 1e-6
            if xyz.shape != (3,) or not (xyz - cloud[idx]).abs().max() <= tol:
                raise ValueError(f"records[{r}].keypoints[{k}].xyz {kp.get('xyz')} is not the cloud's point "
                                 f"{idx} {cloud[idx].tolist()}")
            ids.append(sid)
        for pair in rec.get("symmetries", {}).get("reflection", []):
            if any(not 0 <= int(i) < len(kps) for i in pair["kp_indexes"]):
                raise ValueError(f"records[{r}] reflection group {pair['kp_indexes']} names a keypoint outside "
                                 f"its {len(kps)} keypoints")
    largest = max(ids)
    if num_semantics is None:
        return largest + 1
    if largest >= num_semantics:
        raise ValueError(f"semantic ids must be in [0, {num_semantics}), got {largest}")
    return num_semantics


def keypoint_table(records: list, num_semantics: int) -> torch.Tensor:
    """[n, num_semantics] long: the cloud row of each semantic keypoint of each model, -1 where absent."""
    table = torch.full((len(records), num_semantics), -1, dtype=torch.long)
    for r, rec in enumerate(records):
        for kp in rec["keypoints"]:
            if not 0 <= kp["semantic_id"] < num_semantics:
                raise ValueError(f"semantic ids must be in [0, {num_semantics}), got {kp['semantic_id']} "
                                 f"in records[{r}]")
            table[r, kp["semantic_id"]] = kp["pcd_info"]["point_index"]
    return table


def reflection_pairs(record: dict) -> list[tuple[int, int]]:
    """The record's reflection groups as pairs of semantic ids."""
    sem = [kp["semantic_id"] for kp in record["keypoints"]]
    return [tuple(sem[i] for i in g["kp_indexes"]) for g in record["symmetries"]["reflection"]]
