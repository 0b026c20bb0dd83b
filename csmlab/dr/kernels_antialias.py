"""Compiled (numba) kernels of ``antialias``: nvdiffrast's analytic silhouette blend, pair by pair.

The steps (discontinuity, front triangle, silhouette test, crossing point, blend) are
those of :mod:`csmlab.dr.antialias_twin`, which documents them; here they are one loop
over the horizontally and vertically adjacent pixel pairs of each image, in float64.
:func:`_pair` decides one pair and also returns d alpha / d pos for the two vertices of
the crossing edge, which the forward records, so the backward reuses every decision.

With ``c = (s_x t_y - s_y t_x) / (t_y - s_y)`` the crossing of the edge from s to t
(pixel offsets from the front pixel's centre, axes swapped for vertical pairs) with the
pair's line, ``alpha = ds (0.5 - ds c) = 0.5 ds - c``, hence
``d alpha = -(t_y ds_x - s_y dt_x + t_y (s_x - t_x) / d ds_y + s_y (t_x - s_x) / d dt_y) / d``,
``d = t_y - s_y``; pixel offsets come from clip space as ``x / w * W/2`` (and y).
The forward is parallel over images (every write of an image stays in that image) and
records its hits; the backward walks those hits only (a few per silhouette pixel), never
the whole image again, and accumulates each image's vertex gradients in its own row of
``g_pos`` (range mode: the caller sums the rows).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

F32_MAX = 3.402823466e38
CROSSING_EPS = 0.0625   # nvdiffrast: "expect no more than 1/16 pixel inaccuracy"


@njit(cache=True, inline="always")
def _same_sign(a, b):
    # Sign *bits*, like nvdiffrast's float_as_int xor: +0 and -0 differ.
    return (math.copysign(1.0, a) < 0) == (math.copysign(1.0, b) < 0)


@njit(cache=True, inline="always")
def _edge(ds, sx, sy, tx, ty):
    """(num, den, ex) of the edge from s to t: the crossing is num / den, none when both ends lie
    on one side of the pair's line (then num = -F32_MAX, den = 1, as in nvdiffrast)."""
    ex, ey = tx - sx, ty - sy
    if _same_sign(sy, ty):
        return -F32_MAX, 1.0, ex
    return ds * (sx * ey - sy * ex), ey, ex


@njit(cache=True, inline="always")
def _greater(n_i, d_i, n_j, d_j):
    # n_i / d_i > n_j / d_j without dividing, with nvdiffrast's tie-breaking
    return (n_i * d_j > n_j * d_i) == _same_sign(d_i, d_j)


@njit(cache=True, inline="always")
def _pixel(pos, pb, v, xh, yh, fx, fy):
    return pos[pb, v, 0] / pos[pb, v, 3] * xh - fx, pos[pb, v, 1] / pos[pb, v, 3] * yh - fy


@njit(cache=True)
def silhouette_candidates(pos, tri, opp, H, W, out):
    """out[b, t]: can triangle t have a silhouette edge in image b? The twin's cheap, conservative
    per-triangle version of the per-pair test (no pixel-centre translation, near-zero areas kept);
    it only lets most id changes inside a closed mesh skip the per-pair work."""
    xh, yh = 0.5 * W, 0.5 * H
    px = np.empty((pos.shape[1], 2))   # each image's vertices in pixels, projected once (not per triangle)
    for b in range(pos.shape[0]):
        for v in range(pos.shape[1]):
            px[v, 0], px[v, 1] = _pixel(pos, b, v, xh, yh, 0.0, 0.0)
        for t in range(tri.shape[0]):
            x0, y0 = px[tri[t, 0], 0], px[tri[t, 0], 1]
            x1, y1 = px[tri[t, 1], 0], px[tri[t, 1], 1]
            x2, y2 = px[tri[t, 2], 0], px[tri[t, 2], 1]
            bb = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            maybe = False
            wmax = 0.0
            for i in range(3):
                o = opp[t, i] if opp[t, i] >= 0 else tri[t, i]
                ox, oy = px[o, 0], px[o, 1]
                if i == 0:
                    wing = (x1 - ox) * (y2 - oy) - (x2 - ox) * (y1 - oy)
                elif i == 1:
                    wing = (x2 - ox) * (y0 - oy) - (x0 - ox) * (y2 - oy)
                else:
                    wing = (x0 - ox) * (y1 - oy) - (x1 - ox) * (y0 - oy)
                wmax = max(wmax, abs(wing))
                if _same_sign(wing, bb) or abs(wing) <= 1e-4 * (abs(wing) + abs(bb)):
                    maybe = True
            out[b, t] = maybe or abs(bb) <= 1e-4 * wmax


@njit(cache=True, inline="always")
def _pair(rast, pos, tri, opp, cand, b, y0, x0, y1, x1, down, H, W):
    """One adjacent pair with different ids: (hit, alpha, frozen, vs, ve, d alpha/d pos[vs] as
    (x, y, w), the same for pos[ve], pos image row)."""
    pb = np.int64(b) if pos.shape[0] > 1 else np.int64(0)
    miss = (False, 0.0, True, np.int64(0), np.int64(0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, pb)
    t0, t1 = int(rast[b, y0, x0, 3]) - 1, int(rast[b, y1, x1, 3]) - 1
    use_first = t0 >= 0 and (t1 < 0 or rast[b, y0, x0, 2] < rast[b, y1, x1, 2])
    front = t0 if use_first else t1
    if not cand[pb, front]:
        return miss
    ds = 1.0 if use_first else -1.0
    rx, ry = (x0, y0) if use_first else (x1, y1)
    xh, yh = 0.5 * W, 0.5 * H
    fx, fy = rx + 0.5 - xh, ry + 0.5 - yh
    px0, py0 = _pixel(pos, pb, tri[front, 0], xh, yh, fx, fy)
    px1, py1 = _pixel(pos, pb, tri[front, 1], xh, yh, fx, fy)
    px2, py2 = _pixel(pos, pb, tri[front, 2], xh, yh, fx, fy)
    bb = (px1 - px0) * (py2 - py0) - (px2 - px0) * (py1 - py0)
    if down:   # the pair always runs along +q_x
        qx0, qy0, qx1, qy1, qx2, qy2 = py0, px0, py1, px1, py2, px2
    else:
        qx0, qy0, qx1, qy1, qx2, qy2 = px0, py0, px1, py1, px2, py2
    # Edge i is opposite vertex i: edge 0 = (v1, v2), 1 = (v2, v0), 2 = (v0, v1).
    n0, d0, e0 = _edge(ds, qx1, qy1, qx2, qy2)
    n1, d1, e1 = _edge(ds, qx2, qy2, qx0, qy0)
    n2, d2, e2 = _edge(ds, qx0, qy0, qx1, qy1)
    g10 = _greater(n1, d1, n0, d0)
    g20 = _greater(n2, d2, n0, d0)
    g21 = _greater(n2, d2, n1, d1)
    if g20 and g21:
        c, num, den, ex, s, e = 2, n2, d2, e2, 0, 1
        sx, sy, tx, ty, psx, psy, ptx, pty = qx0, qy0, qx1, qy1, px0, py0, px1, py1
    elif g10:
        c, num, den, ex, s, e = 1, n1, d1, e1, 2, 0
        sx, sy, tx, ty, psx, psy, ptx, pty = qx2, qy2, qx0, qy0, px2, py2, px0, py0
    else:
        c, num, den, ex, s, e = 0, n0, d0, e0, 1, 2
        sx, sy, tx, ty, psx, psy, ptx, pty = qx1, qy1, qx2, qy2, px1, py1, px2, py2
    # Silhouette: the wing triangle (opposite vertex, edge c) on the same side as the triangle itself.
    o = opp[front, c] if opp[front, c] >= 0 else tri[front, c]   # boundary edge: always a silhouette
    ox, oy = _pixel(pos, pb, o, xh, yh, fx, fy)
    wing = (psx - ox) * (pty - oy) - (ptx - ox) * (psy - oy)
    if not (_same_sign(wing, bb) and abs(den) >= abs(ex)):
        return miss
    dc = num / den
    if not (dc > -CROSSING_EPS and dc < 1.0 + CROSSING_EPS):
        return miss
    alpha = ds * (0.5 - min(max(dc, 0.0), 1.0))
    vs, ve = np.int64(tri[front, s]), np.int64(tri[front, e])
    if abs(alpha) >= 0.5 or alpha == 0.0:   # frozen: no position gradient (as nvdiffrast)
        return (True, alpha, True, vs, ve, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, pb)
    d = ty - sy
    da_sx, da_tx = -ty / d, sy / d
    da_sy, da_ty = -ty * (sx - tx) / (d * d), -sy * (tx - sx) / (d * d)
    # back from (q_x, q_y) to pixel (x, y) offsets
    gsx, gsy, gtx, gty = (da_sy, da_sx, da_ty, da_tx) if down else (da_sx, da_sy, da_tx, da_ty)
    ws, wt = pos[pb, vs, 3], pos[pb, ve, 3]
    return (True, alpha, False, vs, ve,
            gsx * xh / ws, gsy * yh / ws, -(gsx * pos[pb, vs, 0] * xh + gsy * pos[pb, vs, 1] * yh) / (ws * ws),
            gtx * xh / wt, gty * yh / wt, -(gtx * pos[pb, ve, 0] * xh + gty * pos[pb, ve, 1] * yh) / (wt * wt),
            pb)


HIT_INTS, HIT_FLOATS = 5, 7   # a recorded hit: (pixel 0, pixel 1, target pixel, vs, ve), (alpha, d alpha / d pos)


@njit(cache=True, parallel=True)
def antialias_forward(color, rast, pos, tri, opp, cand, out, hit_i, hit_f, n_hits, max_id):
    """``out`` holds a copy of ``color``; adds every hit pair's blend to its target pixel and records the
    hit for the backward (see :func:`_antialias_forward_image`). ``max_id[b]``: the largest triangle
    id + 1 in image b (the caller raises when it exceeds the triangle count; such ids are skipped)."""
    for b in prange(color.shape[0]):
        n_hits[b], max_id[b] = _antialias_forward_image(b, color, rast, pos, tri, opp, cand, out, hit_i[b],
                                                        hit_f[b])


@njit(cache=True)
def antialias_forward_serial(color, rast, pos, tri, opp, cand, out, hit_i, hit_f, n_hits, max_id):
    """:func:`antialias_forward` on the calling thread (small calls: no thread pool is woken)."""
    for b in range(color.shape[0]):
        n_hits[b], max_id[b] = _antialias_forward_image(b, color, rast, pos, tri, opp, cand, out, hit_i[b],
                                                        hit_f[b])


@njit(cache=True)
def _antialias_forward_image(b, color, rast, pos, tri, opp, cand, out, hit_i, hit_f):
    """Blend image b; return its number of hits and its largest id. Hit k is stored in ``hit_i[k]`` (flat pixels of the
    pair and of the blended target, the crossing edge's vertices) and ``hit_f[k]`` (alpha and the six
    d alpha / d pos terms, zeros when frozen), so the backward visits hits only, never every pair.
    Hits beyond the buffers' capacity are counted, not stored (the caller then retries, larger)."""
    B, H, W, C = color.shape
    cap = hit_i.shape[0]
    # int64 on purpose: under prange, b is unsigned, and unsigned/signed unify to float64 (not an index).
    pb = np.int64(b) if pos.shape[0] > 1 else np.int64(0)
    n_tri = tri.shape[0]
    n = 0
    # The largest id: every id in the image either fills it (then pixel (0, 0) has it) or borders
    # another id somewhere, so looking at pixel (0, 0) and at the pairs that differ finds it.
    largest = rast[b, 0, 0, 3]
    changes = np.empty(W + 1, np.int64)
    for down in range(2):   # 0: horizontal pairs (x, x + 1), 1: vertical pairs (y, y + 1)
        for y0 in range(H - down):
            y1 = y0 + down
            row0, row1 = rast[b, y0], rast[b, y1]
            # Branch-free scan for the pairs whose ids differ (most are equal; a branch per pair
            # mispredicts at every id change), then the per-pair work on those only.
            k = 0
            for x0 in range(W - 1 + down):
                changes[k] = x0
                k += row0[x0, 3] != row1[x0 + 1 - down, 3]
            for j in range(k):
                x0 = changes[j]
                x1 = x0 + 1 - down
                id0, id1 = row0[x0, 3], row1[x1, 3]
                largest = max(largest, id0, id1)
                # Most id changes lie inside the mesh: test the front triangle's candidacy here, cheaply,
                # before the per-pair work (_pair repeats it, harmlessly).
                front = int(id0 if id0 > 0 and (id1 == 0 or row0[x0, 2] < row1[x1, 2]) else id1) - 1
                if front >= n_tri or not cand[pb, front]:
                    continue
                hit, alpha, frozen, vs, ve, sx, sy, sw, tx_, ty_, tw, _ = _pair(
                    rast, pos, tri, opp, cand, b, y0, x0, y1, x1, down == 1, H, W)
                if not hit:
                    continue
                ty, tx = (y0, x0) if alpha > 0 else (y1, x1)
                for c in range(C):
                    out[b, ty, tx, c] += alpha * (color[b, y1, x1, c] - color[b, y0, x0, c])
                if n < cap:
                    hi, hf = hit_i[n], hit_f[n]
                    hi[0], hi[1], hi[2], hi[3], hi[4] = y0 * W + x0, y1 * W + x1, ty * W + tx, vs, ve
                    hf[0], hf[1], hf[2], hf[3], hf[4], hf[5], hf[6] = alpha, sx, sy, sw, tx_, ty_, tw
                    if frozen:
                        hf[1] = hf[2] = hf[3] = hf[4] = hf[5] = hf[6] = 0.0
                n += 1
    return n, largest


@njit(cache=True)
def antialias_backward(color, hit_i, hit_f, n_hits, g_out, g_color, g_pos):
    """The hits recorded by the forward, in reverse: ``g_color`` holds a copy of ``g_out``; ``g_pos``
    [B, V, 4] zeros (row b: image b's share). Serial: the hits are few (silhouette pixels only)."""
    B, H, W, C = color.shape
    for b in range(B):
        col, g_o, g_c, g_p = color[b].reshape(H * W, C), g_out[b].reshape(H * W, C), \
            g_color[b].reshape(H * W, C), g_pos[b]
        for k in range(n_hits[b]):
            p0, p1, pt, vs, ve = hit_i[b, k, 0], hit_i[b, k, 1], hit_i[b, k, 2], hit_i[b, k, 3], hit_i[b, k, 4]
            hf = hit_f[b, k]
            alpha = hf[0]
            g_alpha = 0.0
            for c in range(C):
                gt = g_o[pt, c]
                g_alpha += gt * (col[p1, c] - col[p0, c])
                g_c[p1, c] += alpha * gt
                g_c[p0, c] -= alpha * gt
            g_p[vs, 0] += g_alpha * hf[1]
            g_p[vs, 1] += g_alpha * hf[2]
            g_p[vs, 3] += g_alpha * hf[3]
            g_p[ve, 0] += g_alpha * hf[4]
            g_p[ve, 1] += g_alpha * hf[5]
            g_p[ve, 3] += g_alpha * hf[6]
