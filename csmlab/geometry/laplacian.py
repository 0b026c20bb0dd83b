"""Mesh Laplacians: uniform and cotangent weights, as per-vertex neighbour tables, and the Laplacian regulariser.

The weights live in padded neighbour tables (``neighbors [V,D]``, ``weights [V,D]``,
D the largest vertex degree, padding weight 0), the form the ARAP energy needs:
vertex i's one-ring is ``neighbors[i, :]`` and its weights ``weights[i, :]``.

Cotangent weights follow To The Point's ``laplacian_cot`` (Kokkinos & Kokkinos 2021,
``nnutils/loss_utils.py``): for an edge (i, j) with opposite angles alpha and beta in its
two faces, ``w_ij = cot(alpha) + cot(beta)``, where each cotangent is
``(b^2 + c^2 - a^2) / (4 area)`` and is clamped at 0 *before* the sum (an obtuse angle
contributes nothing), computed once on the rest mesh. The uniform weights are 1 per
neighbour.
"""

from __future__ import annotations

import torch

from .mesh import check_verts_faces, edges

KINDS = ("cot", "uniform")


def check_mesh_batch(name: str, verts, faces: torch.Tensor) -> None:
    """Raise ValueError unless ``verts`` is a float [V,3] or [B,V,3] tensor indexed by ``faces``."""
    if not isinstance(verts, torch.Tensor) or verts.dim() not in (2, 3) or verts.shape[-1] != 3:
        got = list(verts.shape) if isinstance(verts, torch.Tensor) else type(verts).__name__
        raise ValueError(f"{name} must be a [V,3] or [B,V,3] tensor, got {got}")
    if isinstance(faces, torch.Tensor) and faces.device != verts.device:
        raise ValueError(f"faces must be on {name}'s device {verts.device}, got {faces.device}")
    try:
        check_verts_faces(verts, faces)
    except ValueError as err:
        raise ValueError(f"{name}/faces: {err}") from None


def cotangents(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[...,F,3] cotangent of each face's angle at its k-th corner (opposite the edge not touching it)."""
    f = faces.long()
    v = [verts[..., f[:, k], :] for k in range(3)]
    # the squared length of the edge opposite corner k
    sq = [((v[(k + 1) % 3] - v[(k + 2) % 3]) ** 2).sum(-1) for k in range(3)]
    area = 0.5 * torch.linalg.cross(v[1] - v[0], v[2] - v[0], dim=-1).norm(dim=-1)
    area = area.clamp_min(torch.finfo(verts.dtype).tiny)   # degenerate faces: huge cotangents, clamped below
    return torch.stack([(sq[(k + 1) % 3] + sq[(k + 2) % 3] - sq[k]) / (4 * area) for k in range(3)], -1)


def neighbor_table(faces: torch.Tensor, num_verts: int) -> torch.Tensor:
    """[V,D] one-ring neighbours of each vertex (sorted), padded with the vertex itself."""
    e = edges(faces)
    directed = torch.cat([e, e[:, [1, 0]]])
    directed = directed[torch.argsort(directed[:, 0] * num_verts + directed[:, 1])]
    degree = torch.bincount(directed[:, 0], minlength=num_verts)
    D = int(degree.max()) if degree.numel() else 0
    start = torch.cumsum(degree, 0) - degree
    slot = torch.arange(directed.shape[0]) - start[directed[:, 0]]
    table = torch.arange(num_verts)[:, None].repeat(1, D)
    table[directed[:, 0], slot] = directed[:, 1]
    return table.to(faces.device)


def laplacian_weights(rest_verts: torch.Tensor, faces: torch.Tensor, kind: str = "cot"):
    """(neighbors [V,D], weights [...,V,D]) of the rest mesh ``rest_verts`` [V,3] or [B,V,3].

    ``kind="cot"``: TTP's clamped cotangent weights (module docstring); ``"uniform"``: 1 per neighbour.
    Padding entries (vertices of lower degree) have weight 0.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    check_mesh_batch("rest_verts", rest_verts, faces)
    V = rest_verts.shape[-2]
    nbrs = neighbor_table(faces.cpu(), V).to(rest_verts.device)
    real = (nbrs != torch.arange(V, device=nbrs.device)[:, None]).to(rest_verts.dtype)
    if kind == "uniform":
        return nbrs, real.expand(*rest_verts.shape[:-2], V, nbrs.shape[1])
    cot = cotangents(rest_verts, faces).clamp_min(0)                       # [...,F,3]
    f = faces.long()
    # corner k of a face is opposite the edge (k+1, k+2): that edge gets the cotangent, both directions
    i = torch.cat([f[:, 1], f[:, 2], f[:, 0], f[:, 2], f[:, 0], f[:, 1]])
    j = torch.cat([f[:, 2], f[:, 0], f[:, 1], f[:, 1], f[:, 2], f[:, 0]])
    vals = torch.cat([cot[..., 0], cot[..., 1], cot[..., 2]] * 2, -1)          # [...,6F]
    dense = vals.new_zeros(*rest_verts.shape[:-2], V * V).index_add(-1, (i * V + j).to(vals.device), vals)
    w = torch.gather(dense.reshape(*rest_verts.shape[:-2], V, V), -1,
                     nbrs.expand(*rest_verts.shape[:-2], V, nbrs.shape[1]))
    return nbrs, w * real


def edge_vectors(verts: torch.Tensor, nbrs: torch.Tensor) -> torch.Tensor:
    """[...,V,D,3] the one-ring edge vectors v_j - v_i."""
    return verts[..., nbrs, :] - verts[..., :, None, :]


def laplacian_energy(verts: torch.Tensor, rest_verts: torch.Tensor, faces: torch.Tensor,
                     kind: str = "cot") -> torch.Tensor:
    """[B] mean_i || sum_j w~_ij ((v'_j - v'_i) - (v_j - v_i)) ||^2, w~ the row-normalised weights.

    The change of the Laplacian (differential) coordinates: zero for translations, but a
    rotation -- of the whole mesh or of one wing -- rotates them and is penalised, which
    is what ARAP (:func:`csmlab.geometry.arap_energy`) is built to avoid.
    """
    check_mesh_batch("verts", verts, faces)
    check_mesh_batch("rest_verts", rest_verts, faces)
    if rest_verts.shape[-2] != verts.shape[-2]:
        raise ValueError(f"rest_verts must have verts' {verts.shape[-2]} vertices, got {rest_verts.shape[-2]}")
    nbrs, w = laplacian_weights(rest_verts.detach(), faces, kind)
    w = w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    diff = edge_vectors(verts, nbrs) - edge_vectors(rest_verts, nbrs)
    delta = (w[..., None] * diff).sum(-2)
    out = (delta ** 2).sum(-1).mean(-1)
    return out if verts.dim() == 3 else out[None]
