"""A minimal Wavefront OBJ reader (vertices and faces) for the template meshes of ACSM and Pix3D's models."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def read_obj(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """([V,3] float32 vertices, [F,3] long 0-based faces); polygons are split into fans, 'v/vt/vn' reads v."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"OBJ file is missing: expected {path}")
    verts, faces = [], []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        f = line.split()
        if not f:
            continue
        if f[0] == "v":
            verts.append([float(v) for v in f[1:4]])
        elif f[0] == "f":
            idx = [int(t.split("/")[0]) for t in f[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]  # OBJ is 1-based; negatives count back
            if len(idx) < 3:
                raise ValueError(f"{path}:{n}: a face needs at least 3 vertices, got {line!r}")
            faces += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
    v = torch.tensor(verts, dtype=torch.float32).reshape(-1, 3)
    fa = torch.tensor(faces, dtype=torch.long).reshape(-1, 3)
    if fa.numel() and (fa.min() < 0 or fa.max() >= len(v)):
        raise ValueError(f"{path}: faces index vertices outside 0..{len(v) - 1}")
    return v, fa
