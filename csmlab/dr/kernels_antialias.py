"""Compiled (numba) kernels of ``antialias``: nvdiffrast's analytic silhouette blend, pair by pair.

The steps (discontinuity, front triangle, silhouette test, crossing point, blend) are
those of :mod:`csmlab.dr.antialias_twin`, which documents them; here they are one loop
over the horizontally and vertically adjacent pixel pairs of each image, in float64.
:func:`_pair` decides one pair and also returns d alpha / d pos for the two vertices of
the crossing edge, so the forward and the backward share every decision.

With ``c = (s_x t_y - s_y t_x) / (t_y - s_y)`` the crossing of the edge from s to t
(pixel offsets from the front pixel's centre, axes swapped for vertical pairs) with the
pair's line, ``alpha = ds (0.5 - ds c) = 0.5 ds - c``, hence
``d alpha = -(t_y ds_x - s_y dt_x + t_y (s_x - t_x) / d ds_y + s_y (t_x - s_x) / d dt_y) / d``,
``d = t_y - s_y``; pixel offsets come from clip space as ``x / w * W/2`` (and y).
Parallel over images; every write of an image stays in that image (and, in instanced
mode, in its own vertex rows; range mode accumulates per image and the caller sums).
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


@njit(cache=True)
def _pair(rast, pos, tri, opp, b, y0, x0, y1, x1, down, H, W):
    """One adjacent pair with different ids: (hit, alpha, frozen, vs, ve, d alpha/d pos[vs] as
    (x, y, w), the same for pos[ve], pos image row)."""
    t0, t1 = int(rast[b, y0, x0, 3]) - 1, int(rast[b, y1, x1, 3]) - 1
    use_first = t0 >= 0 and (t1 < 0 or rast[b, y0, x0, 2] < rast[b, y1, x1, 2])
    front = t0 if use_first else t1
    ds = 1.0 if use_first else -1.0
    rx, ry = (x0, y0) if use_first else (x1, y1)
    pb = np.int64(b) if pos.shape[0] > 1 else np.int64(0)
    xh, yh = 0.5 * W, 0.5 * H
    fx, fy = rx + 0.5 - xh, ry + 0.5 - yh
    vx = np.empty(3)
    vy = np.empty(3)
    ox = np.empty(3)
    oy = np.empty(3)
    for i in range(3):
        v = tri[front, i]
        vx[i] = pos[pb, v, 0] / pos[pb, v, 3] * xh - fx
        vy[i] = pos[pb, v, 1] / pos[pb, v, 3] * yh - fy
        o = opp[front, i]
        if o < 0:
            o = v  # boundary edge: the vertex itself, which always reads as a silhouette
        ox[i] = pos[pb, o, 0] / pos[pb, o, 3] * xh - fx
        oy[i] = pos[pb, o, 1] / pos[pb, o, 3] * yh - fy
    bb = (vx[1] - vx[0]) * (vy[2] - vy[0]) - (vx[2] - vx[0]) * (vy[1] - vy[0])
    qx, qy = (vy, vx) if down else (vx, vy)   # the pair always runs along +q_x
    num = np.empty(3)
    den = np.empty(3)
    exs = np.empty(3)
    for i in range(3):
        s, e = (i + 1) % 3, (i + 2) % 3
        exs[i] = qx[e] - qx[s]
        ey = qy[e] - qy[s]
        if _same_sign(qy[s], qy[e]):   # both ends on one side of the line: no crossing
            num[i], den[i] = -F32_MAX, 1.0
        else:
            num[i], den[i] = ds * (qx[s] * ey - qy[s] * exs[i]), ey
    g10 = (num[1] * den[0] > num[0] * den[1]) == _same_sign(den[1], den[0])
    g20 = (num[2] * den[0] > num[0] * den[2]) == _same_sign(den[2], den[0])
    g21 = (num[2] * den[1] > num[1] * den[2]) == _same_sign(den[2], den[1])
    c = 2 if (g20 and g21) else (1 if g10 else 0)
    s, e = (c + 1) % 3, (c + 2) % 3
    # Silhouette: the wing triangle (opposite vertex, edge c) on the same side as the triangle itself.
    wing = (vx[s] - ox[c]) * (vy[e] - oy[c]) - (vx[e] - ox[c]) * (vy[s] - oy[c])
    miss = (False, 0.0, True, np.int64(0), np.int64(0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, pb)
    if not (_same_sign(wing, bb) and abs(den[c]) >= abs(exs[c])):
        return miss
    dc = num[c] / den[c]
    if not (dc > -CROSSING_EPS and dc < 1.0 + CROSSING_EPS):
        return miss
    alpha = ds * (0.5 - min(max(dc, 0.0), 1.0))
    frozen = abs(alpha) >= 0.5 or alpha == 0.0
    vs, ve = np.int64(tri[front, s]), np.int64(tri[front, e])
    if frozen:
        return (True, alpha, True, vs, ve, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, pb)
    sx, sy, tx, ty = qx[s], qy[s], qx[e], qy[e]
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


@njit(cache=True, parallel=True)
def antialias_forward(color, rast, pos, tri, opp, out):
    """``out`` holds a copy of ``color``; adds every hit pair's blend to its target pixel."""
    B, H, W, C = color.shape
    for b in prange(B):
        for down in (False, True):
            for y0 in range(H - 1 if down else H):
                for x0 in range(W if down else W - 1):
                    y1, x1 = (y0 + 1, x0) if down else (y0, x0 + 1)
                    if rast[b, y0, x0, 3] == rast[b, y1, x1, 3]:
                        continue
                    r = _pair(rast, pos, tri, opp, b, y0, x0, y1, x1, down, H, W)
                    if not r[0]:
                        continue
                    alpha = r[1]
                    ty, tx = (y0, x0) if alpha > 0 else (y1, x1)
                    for c in range(C):
                        out[b, ty, tx, c] += alpha * (color[b, y1, x1, c] - color[b, y0, x0, c])


@njit(cache=True, parallel=True)
def antialias_backward(color, rast, pos, tri, opp, g_out, g_color, g_pos):
    """``g_color`` holds a copy of ``g_out``; ``g_pos`` [B, V, 4] zeros (row b: image b's share)."""
    B, H, W, C = color.shape
    for b in prange(B):
        for down in (False, True):
            for y0 in range(H - 1 if down else H):
                for x0 in range(W if down else W - 1):
                    y1, x1 = (y0 + 1, x0) if down else (y0, x0 + 1)
                    if rast[b, y0, x0, 3] == rast[b, y1, x1, 3]:
                        continue
                    hit, alpha, frozen, vs, ve, sx, sy, sw, tx_, ty_, tw, pb = _pair(
                        rast, pos, tri, opp, b, y0, x0, y1, x1, down, H, W)
                    if not hit:
                        continue
                    ty, tx = (y0, x0) if alpha > 0 else (y1, x1)
                    g_alpha = 0.0
                    for c in range(C):
                        gt = g_out[b, ty, tx, c]
                        g_alpha += gt * (color[b, y1, x1, c] - color[b, y0, x0, c])
                        g_color[b, y1, x1, c] += alpha * gt
                        g_color[b, y0, x0, c] -= alpha * gt
                    if not frozen:
                        g_pos[b, vs, 0] += g_alpha * sx
                        g_pos[b, vs, 1] += g_alpha * sy
                        g_pos[b, vs, 3] += g_alpha * sw
                        g_pos[b, ve, 0] += g_alpha * tx_
                        g_pos[b, ve, 1] += g_alpha * ty_
                        g_pos[b, ve, 3] += g_alpha * tw
