"""Brute-force reference rasterizer for the tests of ``csmlab.dr`` (numpy, float64).

Deliberately independent of the twin's method: every (pixel, triangle) pair is
tested by solving the 3x3 system of the triangle's (x, y, w) rows with
``numpy.linalg.inv``, in NDC, with no bounding boxes, tiles or integer keys.

For the pixel centre p = (X, Y, 1) (NDC, row 0 at Y = -1) and the matrix M whose
rows are the vertices' (x, y, w), the point of the triangle's plane seen through
p has barycentrics lambda with lambda^T M = w (X, Y, 1); so b = p M^-1,
lambda = b / sum(b) and w = 1 / sum(b). The pixel is covered when w > 0, all
lambda >= 0 and -1 <= z/w <= 1. The smallest z/w wins; exact ties go to the
lower triangle index. ``rast_db`` is by central differences of lambda in pixels.
"""

from __future__ import annotations

import numpy as np


def _pixel_centres(H: int, W: int):
    X = (2 * np.arange(W) + 1) / W - 1
    Y = (2 * np.arange(H) + 1) / H - 1
    return np.meshgrid(X, Y)  # [H, W] each; row 0 is Y = -1


def _barycentrics(minv: np.ndarray, X: np.ndarray, Y: np.ndarray):
    """lambda [T, P, 3] and w [T, P] for T inverse matrices and P pixel centres."""
    p = np.stack([X, Y, np.ones_like(X)], -1)                  # [P, 3]
    b = np.einsum("pi,tij->tpj", p, minv)                      # [T, P, 3]
    s = b.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = b / s[..., None]
        w = 1.0 / s
    return lam, w


def _paired_barycentrics(minv: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """lambda [P, 3] for P (inverse matrix, pixel centre) pairs."""
    b = np.einsum("pi,pij->pj", np.stack([X, Y, np.ones_like(X)], -1), minv)
    return b / b.sum(-1, keepdims=True)


def reference_rasterize(pos, tri, resolution, ranges=None, degenerate_rtol=1e-9):
    """Returns (rast [B,H,W,4], rast_db [B,H,W,4]) as float64 numpy arrays."""
    pos = np.asarray(pos, dtype=np.float64)
    tri = np.asarray(tri, dtype=np.int64)
    H, W = resolution
    if pos.ndim == 3:
        jobs = [(pos[b], np.arange(tri.shape[0])) for b in range(pos.shape[0])]
    else:
        ranges = np.asarray(ranges)
        jobs = [(pos, np.arange(s, s + c)) for s, c in ranges]
    X, Y = _pixel_centres(H, W)
    X, Y = X.reshape(-1), Y.reshape(-1)
    rast = np.zeros((len(jobs), H * W, 4))
    rast_db = np.zeros((len(jobs), H * W, 4))
    for bi, (p, faces) in enumerate(jobs):
        if faces.size == 0:
            continue
        v = p[tri[faces]]                                       # [T, 3, 4]
        m = v[..., [0, 1, 3]]                                   # rows (x, y, w)
        det = np.linalg.det(m)
        scale = np.prod(np.linalg.norm(m, axis=-1), axis=-1)
        ok = np.abs(det) > degenerate_rtol * scale
        minv = np.zeros_like(m)
        minv[ok] = np.linalg.inv(m[ok])
        lam, w = _barycentrics(minv, X, Y)
        z = np.einsum("tpi,ti->tp", lam, v[..., 2])
        with np.errstate(invalid="ignore"):
            zw = z / w
            covered = ok[:, None] & (w > 0) & (lam >= 0).all(-1) & (zw >= -1) & (zw <= 1)
        depth = np.where(covered, zw, np.inf)
        best = np.argmin(depth, axis=0)                         # lowest index on ties
        hit = np.isfinite(depth[best, np.arange(H * W)])
        pidx = np.nonzero(hit)[0]
        t = best[pidx]
        rast[bi, pidx, 0] = lam[t, pidx, 0]
        rast[bi, pidx, 1] = lam[t, pidx, 1]
        rast[bi, pidx, 2] = zw[t, pidx]
        rast[bi, pidx, 3] = faces[t] + 1
        # Central differences of the winner's barycentric functions, one pixel = 2/W, 2/H.
        h = 1e-4
        for axis, (dxp, dyp) in enumerate([(2 * h / W, 0.0), (0.0, 2 * h / H)]):
            lp = _paired_barycentrics(minv[t], X[pidx] + dxp, Y[pidx] + dyp)
            lm = _paired_barycentrics(minv[t], X[pidx] - dxp, Y[pidx] - dyp)
            d = (lp - lm) / (2 * h)
            rast_db[bi, pidx, axis] = d[:, 0]          # du/dX, du/dY
            rast_db[bi, pidx, 2 + axis] = d[:, 1]      # dv/dX, dv/dY
    return rast.reshape(len(jobs), H, W, 4), rast_db.reshape(len(jobs), H, W, 4)


def random_clip_mesh(seed: int, n_images: int = 2, n_verts: int = 40, n_faces: int = 60,
                     spread: float = 1.3, w_range=(0.3, 2.0), z_range=(-1.1, 1.1), dtype=None):
    """A random triangle soup in clip space (torch tensors pos [B, V, 4], tri [F, 3] int32).

    ``spread`` > 1 puts vertices off-screen, ``w_range`` reaching below 0 puts vertices
    behind the eye, and ``z_range`` beyond [-1, 1] makes parts clip at near/far.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n_images, n_verts, generator=g) * (w_range[1] - w_range[0]) + w_range[0]
    xy = (torch.rand(n_images, n_verts, 2, generator=g) * 2 - 1) * spread
    z = torch.rand(n_images, n_verts, generator=g) * (z_range[1] - z_range[0]) + z_range[0]
    # Clip space is NDC times w (for w <= 0 the sign flips, which is what a camera does).
    pos = torch.cat([xy * w[..., None], (z * w)[..., None], w[..., None]], -1)
    tri = torch.randint(0, n_verts, (n_faces, 3), generator=g, dtype=torch.int32)
    if dtype is not None:
        pos = pos.to(dtype)
    return pos, tri


def compare_to_reference(rast, ref):
    """(fraction of pixels whose ids match, max |u,v| error and max |z/w| error where they match)."""
    rast = np.asarray(rast, dtype=np.float64)
    ids, rid = rast[..., 3], ref[..., 3]
    match = ids == rid
    both = match & (rid > 0)
    uv_err = np.abs(rast[..., :2] - ref[..., :2])[both].max() if both.any() else 0.0
    z_err = np.abs(rast[..., 2] - ref[..., 2])[both].max() if both.any() else 0.0
    return match.mean(), uv_err, z_err
