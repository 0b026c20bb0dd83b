"""Compiled (numba) backward of the rasterizer's barycentrics: (u, v) and ``rast_db`` -> ``pos``.

The forward (:mod:`csmlab.dr.kernels_raster`) computes u = e_0 / S, v = e_1 / S from the winning
triangle's edge functions ``e_i = A_i dx + B_i dy + C_i`` (relative to its box corner; S = sum e);
the coefficients come from its setup record ``rec[n]``. The backward has two steps: per pixel, into
the winner's edge coefficients (``g_coef`` [N, 9]); per triangle, from those to its vertices.
:func:`bary_backward` does both; :func:`bary_pixel` is the first step for one pixel without
``rast_db``'s gradient, which ``interpolate``'s backward runs in its own pixel loop when it is the
only consumer of ``rast`` (see :mod:`csmlab.dr.raster_compiled`), and :func:`bary_triangles` the
second step alone.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from csmlab.dr.kernels_raster import R_X0, R_Y0


@njit(cache=True, inline="always")
def bary_pixel(g0, g1, e0, e1, s):
    """dL/de_i (i = 0, 1, 2) of one pixel from the gradients g0, g1 of its (u, v), without ``rast_db``:
    :func:`_bary_backward_image`'s formulas with gX = gY = 0, in the same order (the same bits)."""
    inv_s = 1.0 / s
    bu, bv = e0 * inv_s, e1 * inv_s
    g_s = 0.0
    g_b = (g0 * bu + g1 * bv) * inv_s
    return g0 * inv_s - g_b + g_s, g1 * inv_s - g_b + g_s, g_s - g_b


@njit(cache=True, parallel=True)
def bary_backward(pos, vidx, first, keep, rec, sign, owner, g_rast, g_db, use_db, H, W, per_image, g_coef, g_pos):
    """Gradient of (u, v) and, with ``use_db``, of rast_db into ``g_pos`` (float64).

    Two steps, as in the twin (:class:`csmlab.dr.raster._PixelBarycentrics`): per pixel, into the
    winner's edge coefficients (``g_coef`` [N, 9] scratch, zeroed here), with e_i = A_i dx + B_i dy
    + C_i, S = sum e, b_j = (u, v), D^X_j = (A_j - b_j SA) / S, D^Y_j = (B_j - b_j SB) / S::

        g'_j    = g_j - (gX_j SA + gY_j SB) / S
        dL/de_i = (g'_i - sum_j g'_j b_j) / S - sum_j (gX_j D^X_j + gY_j D^Y_j) / S
        dL/dA_i = dL/de_i dx + (gX_i - sum_j gX_j b_j) / S,   dL/dB_i the same with dy, gY
        dL/dC_i = dL/de_i                                          (g_2 = gX_2 = gY_2 = 0)

    then per triangle through A_i = w_k y_j - w_j y_k, B_i = w_j x_k - w_k x_j,
    C_i = x_j y_k - x_k y_j (the box-relative x = X W/2 + w ((W-1)/2 - x0), y likewise) to pos.
    ``per_image``: g_pos is [B, V, 4] (range mode: images share vertices, so each image
    accumulates its own rows); else [1, V_total, 4] (instanced: images own disjoint rows).
    Only triangles that were drawn (``keep``) and own a pixel reach ``g_pos``: the setup rows of the
    others hold no edge coefficients, and must never be read as if they did.
    """
    for b in prange(owner.shape[0]):
        _bary_backward_image(np.int64(b), pos, vidx, first, keep, rec, sign, owner, g_rast, g_db, use_db, H, W, g_coef,
                             g_pos[b] if per_image else g_pos[0])


@njit(cache=True)
def bary_backward_serial(pos, vidx, first, keep, rec, sign, owner, g_rast, g_db, use_db, H, W, per_image, g_coef,
                         g_pos):
    """:func:`bary_backward` on the calling thread."""
    for b in range(owner.shape[0]):
        _bary_backward_image(np.int64(b), pos, vidx, first, keep, rec, sign, owner, g_rast, g_db, use_db, H, W, g_coef,
                             g_pos[b] if per_image else g_pos[0])


@njit(cache=True)
def _bary_backward_image(b, pos, vidx, first, keep, rec, sign, owner, g_rast, g_db, use_db, H, W, g_coef, g_pos):
    g_coef[first[b]:first[b + 1]] = 0.0
    for py in range(H):
        # Sums for the run of pixels owned by one triangle, kept in registers and added to its
        # g_coef row when the run ends (adding pixel by pixel chains every pixel through memory).
        n_run = -1
        q0 = q1 = q2 = q3 = q4 = q5 = q6 = q7 = q8 = 0.0
        x0 = 0
        dy = a0 = a1 = a2 = b0 = b1 = b2 = c0 = c1 = c2 = by0 = by1 = by2 = 0.0
        for px in range(W + 1):
            n = owner[b, py, px] if px < W else -1
            if n != n_run:
                if n_run >= 0:
                    gc = g_coef[n_run]
                    gc[0] += q0
                    gc[1] += q1
                    gc[2] += q2
                    gc[3] += q3
                    gc[4] += q4
                    gc[5] += q5
                    gc[6] += q6
                    gc[7] += q7
                    gc[8] += q8
                    q0 = q1 = q2 = q3 = q4 = q5 = q6 = q7 = q8 = 0.0
                n_run = n
                if n >= 0:   # the triangle's row terms, once per run (same sums, same order as per pixel)
                    cf = rec[n]
                    x0, dy = int(cf[R_X0]), py - cf[R_Y0]
                    a0, a1, a2 = cf[0], cf[1], cf[2]
                    b0, b1, b2 = cf[3], cf[4], cf[5]
                    c0, c1, c2 = cf[6], cf[7], cf[8]
                    by0, by1, by2 = b0 * dy, b1 * dy, b2 * dy
            if n < 0:
                continue
            dx = float(px - x0)
            e0 = a0 * dx + by0 + c0
            e1 = a1 * dx + by1 + c1
            s = e0 + e1 + (a2 * dx + by2 + c2)
            if s == 0:
                continue
            inv_s = 1.0 / s
            bu, bv = e0 * inv_s, e1 * inv_s
            g0, g1 = float(g_rast[b, py, px, 0]), float(g_rast[b, py, px, 1])
            gX0 = gX1 = gY0 = gY1 = g_s = 0.0
            if use_db:
                sa, sb = a0 + a1 + a2, b0 + b1 + b2
                gX0, gY0 = float(g_db[b, py, px, 0]), float(g_db[b, py, px, 1])
                gX1, gY1 = float(g_db[b, py, px, 2]), float(g_db[b, py, px, 3])
                g_s = -(gX0 * (a0 - bu * sa) + gY0 * (b0 - bu * sb)
                        + gX1 * (a1 - bv * sa) + gY1 * (b1 - bv * sb)) * inv_s * inv_s
                g0 -= (gX0 * sa + gY0 * sb) * inv_s
                g1 -= (gX1 * sa + gY1 * sb) * inv_s
            g_b = (g0 * bu + g1 * bv) * inv_s
            ge0, ge1, ge2 = g0 * inv_s - g_b + g_s, g1 * inv_s - g_b + g_s, g_s - g_b
            q0 += ge0 * dx
            q1 += ge1 * dx
            q2 += ge2 * dx
            q3 += ge0 * dy
            q4 += ge1 * dy
            q5 += ge2 * dy
            q6 += ge0
            q7 += ge1
            q8 += ge2
            if use_db:
                gx_b = (gX0 * bu + gX1 * bv) * inv_s
                gy_b = (gY0 * bu + gY1 * bv) * inv_s
                q0 += gX0 * inv_s - gx_b
                q1 += gX1 * inv_s - gx_b
                q2 -= gx_b
                q3 += gY0 * inv_s - gy_b
                q4 += gY1 * inv_s - gy_b
                q5 -= gy_b
    _bary_triangles(b, pos, vidx, first, keep, rec, sign, H, W, g_coef, g_pos)


@njit(cache=True, parallel=True)
def bary_triangles(pos, vidx, first, keep, rec, sign, H, W, per_image, g_coef, g_pos):
    """The second step of :func:`bary_backward` alone: ``g_coef`` (the edge-coefficient gradients,
    summed over the pixels by the caller, e.g. the fused ``interpolate`` backward) -> ``g_pos``."""
    for b in prange(first.shape[0] - 1):
        _bary_triangles(np.int64(b), pos, vidx, first, keep, rec, sign, H, W, g_coef,
                        g_pos[b] if per_image else g_pos[0])


@njit(cache=True)
def bary_triangles_serial(pos, vidx, first, keep, rec, sign, H, W, per_image, g_coef, g_pos):
    """:func:`bary_triangles` on the calling thread."""
    for b in range(first.shape[0] - 1):
        _bary_triangles(np.int64(b), pos, vidx, first, keep, rec, sign, H, W, g_coef,
                        g_pos[b] if per_image else g_pos[0])


@njit(cache=True)
def _bary_triangles(b, pos, vidx, first, keep, rec, sign, H, W, g_coef, g_pos):
    # Only drawn triangles that own a pixel carry a gradient (the others' g_coef rows are zero).
    for n in range(first[b], first[b + 1]):
        if not keep[n]:
            continue
        gc = g_coef[n]
        if gc[0] == 0 and gc[1] == 0 and gc[2] == 0 and gc[3] == 0 and gc[4] == 0 and gc[5] == 0 \
                and gc[6] == 0 and gc[7] == 0 and gc[8] == 0:
            continue
        _triangle_backward(pos, vidx[n], int(rec[n, R_X0]), int(rec[n, R_Y0]), sign[n], g_coef[n], H, W, g_pos)


@njit(cache=True, inline="always")
def _triangle_backward(pos, v, x0, y0, sign, gc, H, W, g_pos):
    """Edge-coefficient gradients of one triangle -> its three pos rows (scalars, no temporaries)."""
    cx, cy = (W - 1) / 2 - x0, (H - 1) / 2 - y0
    w0, w1, w2 = pos[v[0], 3], pos[v[1], 3], pos[v[2], 3]
    x0t, x1t, x2t = pos[v[0], 0] * (W / 2) + w0 * cx, pos[v[1], 0] * (W / 2) + w1 * cx, pos[v[2], 0] * (W / 2) + w2 * cx
    y0t, y1t, y2t = pos[v[0], 1] * (H / 2) + w0 * cy, pos[v[1], 1] * (H / 2) + w1 * cy, pos[v[2], 1] * (H / 2) + w2 * cy
    gA0, gA1, gA2 = sign * gc[0], sign * gc[1], sign * gc[2]
    gB0, gB1, gB2 = sign * gc[3], sign * gc[4], sign * gc[5]
    gC0, gC1, gC2 = sign * gc[6], sign * gc[7], sign * gc[8]
    # A_i = w_k y_j - w_j y_k, B_i = w_j x_k - w_k x_j, C_i = x_j y_k - x_k y_j, (i, j, k) cyclic
    gw0 = gA1 * y2t - gB1 * x2t + gB2 * x1t - gA2 * y1t
    gw1 = gA2 * y0t - gB2 * x0t + gB0 * x2t - gA0 * y2t
    gw2 = gA0 * y1t - gB0 * x1t + gB1 * x0t - gA1 * y0t
    gy0 = gA2 * w1 - gC2 * x1t + gC1 * x2t - gA1 * w2
    gy1 = gA0 * w2 - gC0 * x2t + gC2 * x0t - gA2 * w0
    gy2 = gA1 * w0 - gC1 * x0t + gC0 * x1t - gA0 * w1
    gx0 = gB1 * w2 - gC1 * y2t + gC2 * y1t - gB2 * w1
    gx1 = gB2 * w0 - gC2 * y0t + gC0 * y2t - gB0 * w2
    gx2 = gB0 * w1 - gC0 * y1t + gC1 * y0t - gB1 * w0
    for j, gx, gy, gw in ((0, gx0, gy0, gw0), (1, gx1, gy1, gw1), (2, gx2, gy2, gw2)):
        r = v[j]
        g_pos[r, 0] += gx * (W / 2)
        g_pos[r, 1] += gy * (H / 2)
        g_pos[r, 3] += gw + gx * cx + gy * cy
