"""Triangle meshes: the `Mesh` container, icospheres, normals and edges."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from csmlab.checks import FLOAT_DTYPES, check_number, check_tensor


@dataclass
class Mesh:
    """A triangle mesh.

    verts: [V,3] float positions in the canonical object frame
    (x right, y up, z towards the viewer at identity pose).
    faces: [F,3] int64 vertex indices, counter-clockwise seen from outside.
    """

    verts: torch.Tensor
    faces: torch.Tensor

    def __post_init__(self):
        check_verts_faces(self.verts, self.faces)

    @property
    def num_verts(self) -> int:
        return self.verts.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    def to(self, device) -> "Mesh":
        return Mesh(self.verts.to(device), self.faces.to(device))

    def tri_int32(self) -> torch.Tensor:
        """Faces as contiguous int32, the form nvdiffrast requires."""
        return self.faces.to(torch.int32).contiguous()


def check_verts_faces(verts: torch.Tensor, faces: torch.Tensor) -> None:
    """Raise ValueError unless verts is [...,V,3] float and finite, and faces is [F,3] integer in [0, V),
    on the same device."""
    dims: dict = {}
    check_tensor("verts", verts, shape="...,V,3", dims=dims, dtypes=FLOAT_DTYPES, finite=True)
    check_faces(faces, verts.shape[-2], dims)


def check_faces(faces: torch.Tensor, n_verts: int | None = None, dims: dict | None = None) -> None:
    """``faces`` must be an [F,3] int32/int64 tensor (floats are refused, not truncated) indexing [0, n_verts)."""
    check_tensor("faces", faces, shape="F,3", dims=dims, dtypes=(torch.int32, torch.int64))
    if n_verts is not None and faces.numel() and (faces.min() < 0 or faces.max() >= n_verts):
        raise ValueError(f"faces index vertices in [{int(faces.min())}, {int(faces.max())}] "
                         f"but there are only {n_verts} vertices")


def icosphere(subdiv: int = 3, radius: float = 1.0) -> Mesh:
    """A unit icosphere: subdiv 0 -> 12 verts/20 faces, 2 -> 162/320, 3 -> 642/1280, 4 -> 2562/5120."""
    if not isinstance(subdiv, int) or subdiv < 0 or subdiv > 7:
        raise ValueError(f"subdiv must be an int in [0, 7], got {subdiv!r}")
    check_number("radius", radius, low=0, low_open=True)   # a negative radius would turn the sphere inside out
    t = (1.0 + math.sqrt(5.0)) / 2.0
    verts = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0],
             [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
             [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    faces = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
             [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
             [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
             [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    for _ in range(subdiv):
        midpoint: dict[tuple[int, int], int] = {}
        new_faces = []
        for a, b, c in faces:
            ab, bc, ca = (_midpoint(verts, midpoint, i, j) for i, j in ((a, b), (b, c), (c, a)))
            new_faces += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        faces = new_faces
    v = torch.tensor(verts, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True) * radius
    return Mesh(v.float(), torch.tensor(faces, dtype=torch.int64))


def _midpoint(verts: list, cache: dict, a: int, b: int) -> int:
    """Index of the midpoint of edge (a, b), appended to ``verts`` once per edge."""
    key = (min(a, b), max(a, b))
    if key not in cache:
        verts.append([(verts[a][k] + verts[b][k]) / 2 for k in range(3)])
        cache[key] = len(verts) - 1
    return cache[key]


def face_normals(verts: torch.Tensor, faces: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """[...,F,3] face normals (counter-clockwise winding -> outward). Batched over leading dims."""
    check_verts_faces(verts, faces)
    f = faces.long()
    v0, v1, v2 = verts[..., f[:, 0], :], verts[..., f[:, 1], :], verts[..., f[:, 2], :]
    n = torch.cross(v1 - v0, v2 - v0, dim=-1)
    return torch.nn.functional.normalize(n, dim=-1) if normalize else n


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[...,V,3] unit vertex normals: area-weighted sum of incident face normals."""
    fn = face_normals(verts, faces, normalize=False)  # length = 2 * area: area weighting for free
    f = faces.long()
    out = torch.zeros_like(verts)
    for k in range(3):
        out = out.index_add(-2, f[:, k], fn)
    return torch.nn.functional.normalize(out, dim=-1)


def edges(faces: torch.Tensor) -> torch.Tensor:
    """[E,2] unique undirected edges (smaller index first), sorted."""
    check_faces(faces)
    f = faces.long()
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)
