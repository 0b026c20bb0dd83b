"""Small mesh queries the synthetic data needs: closest surface points, exact
visibility of surface points under an orthographic camera, and area-uniform
surface sampling. All are batched and vectorised (no Python loop over faces).
"""

from __future__ import annotations

import torch


def closest_points_on_mesh(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor):
    """For each point [N,3], the nearest point of the mesh surface.

    Returns ``(face_index [N] long, bary [N,3], closest [N,3])`` with ``closest =
    sum_k bary[:, k] * verts[faces[face_index, k]]``. The per-face closest point
    is the region test of Ericson, "Real-Time Collision Detection", section 5.1.5.
    """
    a, b, c = (verts[faces[:, k]][None] for k in range(3))  # [1,F,3]
    p = points[:, None, :]                                   # [N,1,3]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    tiny = torch.finfo(points.dtype).tiny

    def safe(x):
        return torch.where(x.abs() < tiny, torch.full_like(x, tiny), x)

    # Interior first, then overwrite by the edge and vertex regions that apply.
    denom = safe(va + vb + vc)
    v, w = vb / denom, vc / denom
    bary = torch.stack([1 - v - w, v, w], -1)
    regions = [
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), "ab", d1 / safe(d1 - d3)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), "ac", d2 / safe(d2 - d6)),
        ((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), "bc", (d4 - d3) / safe((d4 - d3) + (d5 - d6))),
    ]
    for cond, edge, t in regions:
        zero = torch.zeros_like(t)
        lerp = {"ab": (1 - t, t, zero), "ac": (1 - t, zero, t), "bc": (zero, 1 - t, t)}[edge]
        bary = torch.where(cond[..., None], torch.stack(lerp, -1), bary)
    one, zero = torch.ones_like(d1), torch.zeros_like(d1)
    for cond, weights in (((d1 <= 0) & (d2 <= 0), (one, zero, zero)),
                          ((d3 >= 0) & (d4 <= d3), (zero, one, zero)),
                          ((d6 >= 0) & (d5 <= d6), (zero, zero, one))):
        bary = torch.where(cond[..., None], torch.stack(weights, -1), bary)
    closest = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c   # [N,F,3]
    best = (closest - p).norm(dim=-1).argmin(dim=1)
    idx = torch.arange(points.shape[0])
    return best, bary[idx, best], closest[idx, best]


def closest_point_on_midline(target: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor):
    """The point of the mesh's section by the plane x = 0 nearest to ``target`` [3].

    Returns ``(face_index, bary [3])``. On a mesh symmetric about x = 0 this
    point is its own mirror image *as a surface point*: it lies on an edge in
    the plane or inside a face that is its own mirror image, with equal weights
    on mirrored vertices. So it stays on the surface of asymmetric instances too,
    which an average of two mirrored surface points would not.
    """
    best = (float("inf"), None, None)
    x = verts[:, 0]
    for f, tri in enumerate(faces.tolist()):
        ends = []  # barycentric weights of the section's end points in this face
        for a, b in ((0, 1), (1, 2), (2, 0)):
            xa, xb = float(x[tri[a]]), float(x[tri[b]])
            if xa == 0.0 and xb == 0.0 or xa * xb > 0:
                if xa == 0.0 and xb == 0.0:
                    for k in (a, b):
                        w = torch.zeros(3, dtype=verts.dtype)
                        w[k] = 1.0
                        ends.append(w)
                continue
            t = xa / (xa - xb) if xa != xb else 0.0
            w = torch.zeros(3, dtype=verts.dtype)
            w[a], w[b] = 1 - t, t
            ends.append(w)
        if not ends:
            continue
        P = torch.stack([w @ verts[tri] for w in ends])
        i0, i1 = 0, int((P - P[0]).norm(dim=1).argmax())  # the two most distant section points
        seg = P[i1] - P[i0]
        t = float(((target - P[i0]) @ seg) / (seg @ seg)) if float(seg @ seg) > 0 else 0.0
        t = min(1.0, max(0.0, t))
        dist = float((P[i0] + t * seg - target).norm())
        if dist < best[0]:
            best = (dist, f, (1 - t) * ends[i0] + t * ends[i1])
    return best[1], best[2]


def surface_visibility(points_2d: torch.Tensor, points_depth: torch.Tensor, verts_2d: torch.Tensor,
                       verts_depth: torch.Tensor, faces: torch.Tensor, eps: float, chunk: int = 32) -> torch.Tensor:
    """Exact depth test of surface points against a mesh, for an orthographic view.

    points_2d [B,K,2] and points_depth [B,K] are the points' screen positions and
    depths; verts_2d [B,V,2] and verts_depth [B,V] those of the mesh (depth:
    nearer is smaller, affine in screen space as in an orthographic view). A point
    is visible when no face covering its screen position is nearer than
    ``points_depth - eps``. Returns [B,K] bool.

    Each face's barycentric coordinates and depth are affine functions of the
    screen position, so one batched matrix product evaluates all of them at all
    points; faces that are edge-on (zero screen area) cover nothing.
    """
    out = []
    for start in range(0, points_2d.shape[0], chunk):
        sl = slice(start, start + chunk)
        out.append(_visibility_chunk(points_2d[sl].double(), points_depth[sl].double(), verts_2d[sl].double(),
                                     verts_depth[sl].double(), faces, eps))
    return torch.cat(out)


def _visibility_chunk(points_2d, points_depth, verts_2d, verts_depth, faces, eps):
    B, F = verts_2d.shape[0], faces.shape[0]
    x, y = verts_2d[:, faces, 0], verts_2d[:, faces, 1]          # [B,F,3]
    d = verts_depth[:, faces]
    det = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])
    degenerate = det.abs() < 1e-12
    inv = 1.0 / torch.where(degenerate, torch.ones_like(det), det)
    # Rows: barycentric weights of vertices 1 and 2 as (a, b, c) with lambda = a x + b y + c.
    l1 = torch.stack([(y[..., 2] - y[..., 0]), -(x[..., 2] - x[..., 0]),
                      -x[..., 0] * (y[..., 2] - y[..., 0]) + y[..., 0] * (x[..., 2] - x[..., 0])], -1) * inv[..., None]
    l2 = torch.stack([-(y[..., 1] - y[..., 0]), (x[..., 1] - x[..., 0]),
                      x[..., 0] * (y[..., 1] - y[..., 0]) - y[..., 0] * (x[..., 1] - x[..., 0])], -1) * inv[..., None]
    one = torch.tensor([0.0, 0.0, 1.0], dtype=l1.dtype)
    l0 = one - l1 - l2
    depth = d[..., 0:1] * l0 + d[..., 1:2] * l1 + d[..., 2:3] * l2
    coef = torch.stack([l0, l1, l2, depth], dim=2).reshape(B, F * 4, 3)
    pts = torch.cat([points_2d, torch.ones_like(points_2d[..., :1])], -1)      # [B,K,3]
    val = (coef @ pts.transpose(1, 2)).reshape(B, F, 4, -1)                    # [B,F,4,K]
    # A little slack so that points on shared edges and vertices are covered by every face there.
    inside = (val[:, :, :3] >= -1e-9).all(dim=2) & ~degenerate[..., None]
    face_depth = torch.where(inside, val[:, :, 3], torch.full_like(val[:, :, 3], float("inf")))
    return points_depth <= face_depth.min(dim=1).values + eps


def sample_surface(verts: torch.Tensor, faces: torch.Tensor, num: int, generator: torch.Generator):
    """Area-uniform random surface points of a batch of meshes with shared faces.

    verts [B,V,3]. Returns ``(face_index [B,num] long, bary [B,num,3])``; the
    points are ``sum_k bary[..., k] * verts[faces[face_index, k]]``.
    """
    tri = verts[:, faces]                                             # [B,F,3,3]
    area = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1).norm(dim=-1)
    face_index = torch.multinomial(area, num, replacement=True, generator=generator)
    r1 = torch.rand(verts.shape[0], num, generator=generator, dtype=verts.dtype).sqrt()
    r2 = torch.rand(verts.shape[0], num, generator=generator, dtype=verts.dtype)
    bary = torch.stack([1 - r1, r1 * (1 - r2), r1 * r2], dim=-1)      # uniform on the triangle
    return face_index, bary
