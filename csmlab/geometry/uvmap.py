"""The template's UV parametrisation: UV -> 3D template point, and back (CSM's ``uv_map``).

Shared by CSM and ACSM (moved here from ``csmlab.methods.csm.uvmap``, which re-exports it).

The template is a mesh with the topology of a sphere: every vertex has a point
on the unit sphere (``sphere_verts``, from its sphere UV). A UV coordinate is a
point on the sphere (``csmlab.geometry.uv_to_sphere``); the ray from the centre
through it crosses exactly one face of the *sphere* mesh, at some barycentric
coordinates; the same face and barycentrics on the *template* mesh give the 3D
template point. CSM tabulates that map once on a regular UV grid (``uv_map``,
[3, Hu, Wu]) and looks it up with bilinear sampling, which is differentiable
in UV. Row ``i`` of the grid holds v = (i + 0.5) / Hu (v grows with the row,
this is a table, not an image) and column ``j`` holds u = (j + 0.5) / Wu; u
wraps around (the seam at the back of the template), v is clamped at the poles.

The inverse goes from a 3D point on (or near) the template to its closest face
and barycentrics, then through the sphere mesh back to UV.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .mesh import Mesh
from .sphere import sphere_to_uv, uv_to_sphere


def _check_last(name: str, x, n: int) -> None:
    if not isinstance(x, torch.Tensor) or x.shape[-1:] != (n,) or not x.is_floating_point():
        got = f"{list(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor [...,{n}], got {got}")


def ray_face_barycentrics(directions: torch.Tensor, sphere_verts: torch.Tensor, faces: torch.Tensor,
                          chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """For rays from the origin along [N,3] directions: the face of the sphere mesh they cross.

    Returns (face [N] long, barycentrics [N,3]). Solving ``[a b c] w = d`` gives weights
    ``w`` proportional to the barycentrics of the crossing (``t d = sum w_i v_i / sum w_i``);
    the ray crosses the face where all three are >= 0. Rounding on shared edges is
    resolved by taking the face whose smallest weight is largest.
    """
    _check_last("directions", directions, 3)
    tri = sphere_verts[faces.long()]                            # [F,3 corners,3 xyz]
    inv = torch.linalg.inv(tri.transpose(1, 2).double())        # columns are corners: M w = d
    face_out, bary_out = [], []
    for start in range(0, directions.shape[0], chunk):
        d = directions[start:start + chunk].double()
        w = torch.einsum("fij,nj->nfi", inv, d)                   # [n,F,3]
        face = w.min(dim=-1).values.argmax(dim=-1)
        wf = w[torch.arange(d.shape[0]), face]
        face_out.append(face)
        bary_out.append((wf / wf.sum(-1, keepdim=True)).to(directions.dtype))
    return torch.cat(face_out), torch.cat(bary_out)


def closest_point_on_mesh(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                          chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Brute-force closest point on a triangle mesh for [N,3] points.

    Returns (face [N], barycentrics [N,3], distance [N]). For each face the candidate
    is the projection onto its plane when it falls inside, else the closest point of
    the three edges; the nearest candidate over all faces wins.
    """
    _check_last("points", points, 3)
    a, b, c = (verts[faces[:, k].long()] for k in range(3))     # [F,3] each
    n = torch.linalg.cross(b - a, c - a)
    n_sq = (n * n).sum(-1).clamp_min(1e-20)
    faces_out, bary_out, dist_out = [], [], []
    for start in range(0, points.shape[0], chunk):
        p = points[start:start + chunk, None, :]                # [n,1,3]
        # Inside-the-triangle test with signed sub-areas (barycentrics of the plane projection).
        bw0 = (torch.linalg.cross(b - p, c - p) * n).sum(-1) / n_sq
        bw1 = (torch.linalg.cross(c - p, a - p) * n).sum(-1) / n_sq
        bary = torch.stack([bw0, bw1, 1 - bw0 - bw1], -1)        # [n,F,3]
        inside = (bary >= 0).all(-1)
        plane_d = ((p - a) * n).sum(-1).abs() / n_sq.sqrt()
        best_d = torch.where(inside, plane_d, torch.full_like(plane_d, float("inf")))
        best_b = bary
        # Edges (a,b), (b,c), (c,a): closest point at parameter t in [0,1].
        for i0, i1, e0, e1 in ((0, 1, a, b), (1, 2, b, c), (2, 0, c, a)):
            e = e1 - e0
            t = (((p - e0) * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-20)).clamp(0, 1)
            d = (p - (e0 + t[..., None] * e)).norm(dim=-1)
            better = d < best_d
            eb = torch.zeros_like(bary)
            eb[..., i0] = 1 - t
            eb[..., i1] = t
            best_b = torch.where(better[..., None], eb, best_b)
            best_d = torch.where(better, d, best_d)
        dist, face = best_d.min(dim=-1)
        faces_out.append(face)
        bary_out.append(best_b[torch.arange(p.shape[0]), face])
        dist_out.append(dist)
    return torch.cat(faces_out), torch.cat(bary_out), torch.cat(dist_out)


class TemplateUV(torch.nn.Module):
    """A template mesh with a sphere-UV parametrisation and its tabulated ``uv_map``.

    Args:
        template: the category template (canonical frame, sphere topology).
        vertex_uv: [V,2] sphere UV of each template vertex (``category.template_uv``).
        grid: (Hu, Wu) size of the UV table; CSM uses a few hundred texels a side.
        canonical_verts: optional [V,3] rest-pose vertices when ``template`` is a *posed* copy
            of the category template (same topology; e.g. CSM's folded-wing template). The
            posed mesh is what gets rendered and projected (the cycle); the same UV on the
            rest mesh (``uv_to_canonical``) is the point in the category's canonical frame,
            the frame of the data's ``surface_xyz``, in which surface error and keypoint
            transfer are measured. Without it the two coincide.
    """

    def __init__(self, template: Mesh, vertex_uv: torch.Tensor, grid: tuple[int, int] = (64, 128),
                 canonical_verts: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(template, Mesh):
            raise ValueError(f"template must be a csmlab.geometry.Mesh, got {type(template).__name__}")
        _check_last("vertex_uv", vertex_uv, 2)
        if vertex_uv.shape[0] != template.num_verts:
            raise ValueError(f"vertex_uv must be [V,2] with V={template.num_verts} (the template's vertices), "
                             f"got {list(vertex_uv.shape)}")
        if len(grid) != 2 or min(grid) < 2:
            raise ValueError(f"grid must be (Hu, Wu) with both >= 2, got {grid!r}")
        verts = template.verts.float()
        self.register_buffer("verts", verts)
        self.register_buffer("faces", template.faces.long())
        self.register_buffer("vertex_uv", vertex_uv.float())
        self.register_buffer("sphere_verts", uv_to_sphere(vertex_uv.double()).float())
        hu, wu = int(grid[0]), int(grid[1])
        v = (torch.arange(hu, dtype=torch.float64) + 0.5) / hu
        u = (torch.arange(wu, dtype=torch.float64) + 0.5) / wu
        uv = torch.stack(torch.meshgrid(u, v, indexing="xy"), -1).reshape(-1, 2)   # row-major over (v, u)
        face, bary = ray_face_barycentrics(uv_to_sphere(uv), self.sphere_verts.double(), self.faces)
        pts = (bary[..., None] * verts.double()[self.faces[face]]).sum(1)
        self.register_buffer("uv_map", pts.float().T.reshape(3, hu, wu).contiguous())
        self.posed = canonical_verts is not None
        if self.posed:   # the rest-pose twin of the table: same faces and barycentrics, rest vertices
            if (not isinstance(canonical_verts, torch.Tensor) or canonical_verts.shape != verts.shape
                    or not canonical_verts.is_floating_point()):
                got = (f"{list(canonical_verts.shape)} {canonical_verts.dtype}"
                       if isinstance(canonical_verts, torch.Tensor) else type(canonical_verts).__name__)
                raise ValueError(f"canonical_verts must be a float tensor {list(verts.shape)} (the template's "
                                 f"vertices at rest), got {got}")
            rest = (bary[..., None] * canonical_verts.double()[self.faces[face]]).sum(1)
            self.register_buffer("canonical_map", rest.float().T.reshape(3, hu, wu).contiguous())

    @property
    def mesh(self) -> Mesh:
        return Mesh(self.verts, self.faces)

    def uv_to_points(self, uv: torch.Tensor) -> torch.Tensor:
        """[...,2] UV -> [...,3] template points, bilinear in the ``uv_map`` table (differentiable)."""
        return self._lookup(self.uv_map, uv)

    def uv_to_canonical(self, uv: torch.Tensor) -> torch.Tensor:
        """[...,2] UV -> [...,3] points of the rest-pose template (``uv_to_points`` unless posed)."""
        return self._lookup(self.canonical_map, uv) if self.posed else self.uv_to_points(uv)

    def uv_image_to_canonical(self, uv: torch.Tensor) -> torch.Tensor:
        """[B,2,H,W] UV image -> [B,3,H,W] rest-pose template points (``uv_image_to_points`` unless posed)."""
        if not self.posed:
            return self.uv_image_to_points(uv)
        self._check_uv_image(uv)
        return self.uv_to_canonical(uv.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    @staticmethod
    def _lookup(uv_map: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        _check_last("uv", uv, 2)
        hu, wu = uv_map.shape[1:]
        # Wrap u by one column on each side, so the seam interpolates across u = 0 ~ 1.
        table = torch.cat([uv_map[:, :, -1:], uv_map, uv_map[:, :, :1]], dim=2)[None]
        flat = uv.reshape(-1, 2).to(table.dtype)
        x = torch.remainder(flat[:, 0], 1.0) * wu + 0.5            # padded column coordinate of the texel centre
        y = flat[:, 1] * hu - 0.5
        grid = torch.stack([x / (wu + 1) * 2 - 1, y / (hu - 1) * 2 - 1], -1)
        out = F.grid_sample(table, grid[None, None], mode="bilinear", padding_mode="border", align_corners=True)
        return out[0, :, 0].T.reshape(uv.shape[:-1] + (3,))

    def sphere_to_points(self, p: torch.Tensor) -> torch.Tensor:
        """[...,3] sphere directions -> [...,3] template points (through UV, as the network does)."""
        return self.uv_to_points(sphere_to_uv(p))

    def uv_to_face_bary(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N,2] UV -> exact (face [N], barycentrics [N,3]) by intersecting the sphere mesh (no table)."""
        _check_last("uv", uv, 2)
        return ray_face_barycentrics(uv_to_sphere(uv.reshape(-1, 2)), self.sphere_verts, self.faces)

    def face_bary_to_points(self, face: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
        """(face [N], barycentrics [N,3]) -> [N,3] template points."""
        return (bary[..., None] * self.verts[self.faces[face.long()]]).sum(-2)

    def face_bary_to_uv(self, face: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
        """(face [N], barycentrics [N,3]) -> [N,2] UV, through the sphere mesh."""
        return sphere_to_uv((bary[..., None] * self.sphere_verts[self.faces[face.long()]]).sum(-2))

    def points_to_face_bary(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[N,3] points -> (face, barycentrics, distance) of the closest template point."""
        _check_last("points", points, 3)
        return closest_point_on_mesh(points.reshape(-1, 3).to(self.verts.dtype), self.verts, self.faces)

    def points_to_uv(self, points: torch.Tensor) -> torch.Tensor:
        """[...,3] points on (or near) the template -> [...,2] UV (inverse of :meth:`uv_to_points`)."""
        face, bary, _ = self.points_to_face_bary(points)
        return self.face_bary_to_uv(face, bary).reshape(points.shape[:-1] + (2,))

    def uv_image_to_points(self, uv: torch.Tensor) -> torch.Tensor:
        """[B,2,H,W] UV image -> [B,3,H,W] template-point image."""
        self._check_uv_image(uv)
        return self.uv_to_points(uv.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    @staticmethod
    def _check_uv_image(uv) -> None:
        if not isinstance(uv, torch.Tensor) or uv.dim() != 4 or uv.shape[1] != 2:
            raise ValueError(f"uv must be a [B,2,H,W] tensor, got "
                             f"{list(uv.shape) if isinstance(uv, torch.Tensor) else type(uv).__name__}")
