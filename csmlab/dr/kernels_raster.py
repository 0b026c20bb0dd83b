"""Compiled (numba) rasterizer kernels: triangle setup, visibility + barycentrics, and their backward.

The textbook rasterizer, as plain loops: for every triangle, its bounding box; for
every pixel centre in the box, the three edge functions; where all three are >= 0 and
z/w lies in [-1, 1], the depth test. The conventions (and the setup formulas) are
those of the PyTorch twin, :mod:`csmlab.dr.zbuffer` and :mod:`csmlab.dr.raster`:

- homogeneous edge functions (Olano & Greer 1997), so triangles crossing w = 0 need no
  clipping code: the "external" part of the plane fails the edge test;
- degenerate triangles (relative tolerance ``DEGENERATE_RTOL``) and triangles entirely
  beyond one clip plane cover nothing; z/w outside [-1, 1] is dropped;
- the smallest z/w wins; on an exact tie the lower triangle index (triangles are drawn
  in increasing order and only a strictly nearer one replaces the owner).

Everything runs in float64; only the written outputs take ``pos``'s dtype. Unlike the
twin, the depth test compares float64 z/w (the twin compares float32 z/w + 1), so on
surfaces closer than ~1e-7 in z/w the two may pick different owners.

For the winning triangle, u = e_0 / S and v = e_1 / S (S = e_0 + e_1 + e_2) and the pixel
derivatives ``du/dX = (A_0 - u sum A) / S`` and so on come from its edge functions
``e_i = A_i dx + B_i dy + C_i`` relative to its box corner (float64, small offsets: u, v
agree with a float64 brute force to ~1e-7). :func:`bary_backward` differentiates these
formulas by hand (see its docstring).

Parallel over (image, band of rows) jobs with ``numba.prange``; each job owns its
pixels, so no two threads write the same output. The number of threads is numba's own
(``NUMBA_NUM_THREADS`` or ``numba.set_num_threads``), independent of torch's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

DEGENERATE_RTOL = 1e-9   # the twin's value (csmlab.dr.zbuffer)
BBOX_EPS = 1e-3
# The z-test loop runs over a whole number of SPAN_CHUNK pixels per row (the columns past the box
# are masked out): LLVM vectorises it SPAN_CHUNK wide, and a row of a small triangle then never
# falls to the scalar remainder loop, which LLVM compiles with branches (about 4x slower on
# ~5-pixel rows). The z-buffer and owner rows carry ROW_PAD spare columns for the overhang.
SPAN_CHUNK = 8
ROW_PAD = SPAN_CHUNK
# Columns of a triangle's setup record: A_0..2 (0-2), B_0..2 (3-5), C_0..2 (6-8), then these.
R_ZX, R_ZY, R_Z0, R_X0, R_Y0, R_X1, R_Y1 = 9, 10, 11, 12, 13, 14, 15
REC = 16


@njit(cache=True)
def count_nonfinite(values):
    """How many entries of ``values`` (any float array) are NaN or inf."""
    n = 0
    for x in values.ravel():
        n += not math.isfinite(x)
    return n


@njit(cache=True, parallel=True)
def triangle_setup(pos, vidx, H, W, keep, rec, sign):
    """Per triangle n (vertices ``pos[vidx[n]]``, float64 [.., 4]): ``keep[n]``, ``sign[n]`` and its
    record ``rec[n]`` (float64 [N, REC]): the sign-normalised edge coefficients (A_i, B_i, C_i)
    relative to the box corner, the depth plane (dz/dX, dz/dY, z/w at the corner) and the inclusive
    pixel box (x0, y0, x1, y1); see the ``R_*`` column names. One record per triangle, so that the
    per-run lookups of the pixel passes touch two cache lines, not one in each of several arrays."""
    for n in prange(vidx.shape[0]):
        _setup_triangle(n, pos, vidx, H, W, keep, rec, sign)


@njit(cache=True)
def triangle_setup_serial(pos, vidx, H, W, keep, rec, sign):
    """:func:`triangle_setup` on the calling thread (small calls: no thread pool is woken)."""
    for n in range(vidx.shape[0]):
        _setup_triangle(n, pos, vidx, H, W, keep, rec, sign)


@njit(cache=True)
def _skip(n, keep, rec, sign):
    """Mark triangle n as not drawn, with defined values in every row (the caller's arrays are
    np.empty; a skipped triangle's stale bytes, inf or NaN, must never reach the backward)."""
    keep[n] = False
    sign[n] = 0.0
    for r in range(REC):
        rec[n, r] = 0.0


@njit(cache=True, inline="always")
def _setup_triangle(n, pos, vidx, H, W, keep, rec, sign):
    p0, p1, p2 = pos[vidx[n, 0]], pos[vidx[n, 1]], pos[vidx[n, 2]]
    x0_, y0_, z0_, w0 = p0[0], p0[1], p0[2], p0[3]
    x1_, y1_, z1_, w1 = p1[0], p1[1], p1[2], p1[3]
    x2_, y2_, z2_, w2 = p2[0], p2[1], p2[2], p2[3]
    # Entirely beyond one clip plane (this includes all three w <= 0): nothing to draw.
    if ((x0_ > w0 and x1_ > w1 and x2_ > w2) or (-x0_ > w0 and -x1_ > w1 and -x2_ > w2)
            or (y0_ > w0 and y1_ > w1 and y2_ > w2) or (-y0_ > w0 and -y1_ > w1 and -y2_ > w2)
            or (z0_ > w0 and z1_ > w1 and z2_ > w2) or (-z0_ > w0 and -z1_ > w1 and -z2_ > w2)
            or (w0 < 0 and w1 < 0 and w2 < 0)):
        _skip(n, keep, rec, sign)
        return
    hw, hh, cw, ch = W / 2, H / 2, (W - 1) / 2, (H - 1) / 2
    if w0 > 0 and w1 > 0 and w2 > 0:
        # the box only bounds the exact edge test, BBOX_EPS absorbs rounding
        # one division per vertex (the box only needs BBOX_EPS of accuracy)
        q0, q1, q2 = 1.0 / w0, 1.0 / w1, 1.0 / w2
        X0, X1, X2 = x0_ * q0 * hw + cw, x1_ * q1 * hw + cw, x2_ * q2 * hw + cw
        Y0, Y1, Y2 = y0_ * q0 * hh + ch, y1_ * q1 * hh + ch, y2_ * q2 * hh + ch
        bx0 = max(math.ceil(min(X0, X1, X2) - BBOX_EPS), 0.0)
        by0 = max(math.ceil(min(Y0, Y1, Y2) - BBOX_EPS), 0.0)
        bx1 = min(math.floor(max(X0, X1, X2) + BBOX_EPS), W - 1.0)
        by1 = min(math.floor(max(Y0, Y1, Y2) + BBOX_EPS), H - 1.0)
    else:  # a vertex at w <= 0: the projected region is unbounded, use the whole image
        bx0, by0, bx1, by1 = 0.0, 0.0, W - 1.0, H - 1.0
    if not (bx1 >= bx0 and by1 >= by0):   # NaN fails too
        _skip(n, keep, rec, sign)
        return
    # Vertices relative to the box corner, in pixels times w.
    xt0, xt1, xt2 = x0_ * hw + w0 * (cw - bx0), x1_ * hw + w1 * (cw - bx0), x2_ * hw + w2 * (cw - bx0)
    yt0, yt1, yt2 = y0_ * hh + w0 * (ch - by0), y1_ * hh + w1 * (ch - by0), y2_ * hh + w2 * (ch - by0)
    # Edge i opposite vertex i, (i, j, k) cyclic: A_i = w_k y_j - w_j y_k, B_i = w_j x_k - w_k x_j,
    # C_i = x_j y_k - x_k y_j.
    a0, b0, c0 = w2 * yt1 - w1 * yt2, w1 * xt2 - w2 * xt1, xt1 * yt2 - xt2 * yt1
    a1, b1, c1 = w0 * yt2 - w2 * yt0, w2 * xt0 - w0 * xt2, xt2 * yt0 - xt0 * yt2
    a2, b2, c2 = w1 * yt0 - w0 * yt1, w0 * xt1 - w1 * xt0, xt0 * yt1 - xt1 * yt0
    det = c0 * w0 + c1 * w1 + c2 * w2
    # |det| > rtol * prod |(xt, yt, w)_i|, squared (no square roots); NaN fails too
    q0, q1, q2 = xt0 * xt0 + yt0 * yt0 + w0 * w0, xt1 * xt1 + yt1 * yt1 + w1 * w1, xt2 * xt2 + yt2 * yt2 + w2 * w2
    norms2 = q0 * q1 * q2
    if not det * det > DEGENERATE_RTOL * DEGENERATE_RTOL * norms2:
        if not (math.isinf(norms2) or math.isinf(det * det)) or \
                not abs(det) > DEGENERATE_RTOL * math.sqrt(q0) * math.sqrt(q1) * math.sqrt(q2):
            _skip(n, keep, rec, sign)   # (huge coordinates overflow the squares: the unsquared test)
            return
    sg = -1.0 if det < 0 else 1.0   # coverage is e_i >= 0 after this; u = e_0 / S does not change
    cf = rec[n]
    cf[0], cf[1], cf[2] = sg * a0, sg * a1, sg * a2
    cf[3], cf[4], cf[5] = sg * b0, sg * b1, sg * b2
    cf[6], cf[7], cf[8] = sg * c0, sg * c1, sg * c2
    sign[n] = sg
    keep[n] = True
    cf[R_X0], cf[R_Y0], cf[R_X1], cf[R_Y1] = bx0, by0, bx1, by1   # whole numbers
    cf[R_ZX] = (a0 * z0_ + a1 * z1_ + a2 * z2_) / det
    cf[R_ZY] = (b0 * z0_ + b1 * z1_ + b2 * z2_) / det
    cf[R_Z0] = (c0 * z0_ + c1 * z1_ + c2 * z2_) / det


@njit(cache=True, parallel=True)
def rasterize_forward(pos, vidx, face, first, keep, rec, n_bands, H, W, zbuf_all, rast, rast_db,
                      owner):
    """Visibility and barycentrics. Image b draws setup entries first[b]..first[b+1]-1; writes
    rast [B,H,W,4], rast_db [B,H,W,4] (zeros where nothing is drawn) and owner [B,H,W + ROW_PAD] int32
    (setup index of the winner, -1 for background and the spare columns). ``zbuf_all``
    [workers, band rows, W + ROW_PAD] is scratch, one z-buffer per worker (allocated by the caller:
    torch's allocator reuses pages, numba's would fault them in). Jobs are (image, band of rows);
    worker w runs jobs w, w + workers, ... on its own z-buffer, which stays in its core's cache from
    one job to the next (a z-buffer per job would stream the whole batch's through memory). The work
    of one job is a plain function, which LLVM optimises better than the body of a parallel loop."""
    n_jobs = (first.shape[0] - 1) * n_bands
    workers = zbuf_all.shape[0]
    for w in prange(workers):
        for job in range(w, n_jobs, workers):
            _raster_job(job, vidx, face, first, keep, rec, n_bands, H, W, zbuf_all[w], rast, rast_db,
                        owner)


@njit(cache=True)
def rasterize_forward_serial(pos, vidx, face, first, keep, rec, n_bands, H, W, zbuf_all, rast,
                             rast_db, owner):
    """:func:`rasterize_forward` on the calling thread (one z-buffer, ``zbuf_all[0]``, for every job)."""
    for job in range((first.shape[0] - 1) * n_bands):
        _raster_job(job, vidx, face, first, keep, rec, n_bands, H, W, zbuf_all[0], rast, rast_db,
                    owner)


@njit(cache=True)
def _raster_job(job, vidx, face, first, keep, rec, n_bands, H, W, zbuf, rast, rast_db, owner):
    band_h = (H + n_bands - 1) // n_bands
    b, band = job // n_bands, job % n_bands
    r0, r1 = band * band_h, min(H, (band + 1) * band_h)
    if r0 >= r1:
        return
    zbuf[:] = np.inf
    own = owner[b]
    own[r0:r1] = -1
    for n in range(first[b], first[b + 1]):
        if not keep[n]:
            continue
        cf = rec[n]
        bx0, by0, bx1, by1 = int(cf[R_X0]), int(cf[R_Y0]), int(cf[R_X1]), int(cf[R_Y1])
        ya, yb = max(by0, r0), min(by1, r1 - 1)
        if ya > yb:
            continue
        a0, a1, a2 = cf[0], cf[1], cf[2]
        b0, b1, b2 = cf[3], cf[4], cf[5]
        c0, c1, c2 = cf[6], cf[7], cf[8]
        zx, zy, z0 = cf[R_ZX], cf[R_ZY], cf[R_Z0]
        n_x = bx1 - bx0 + 1
        n_pad = (n_x + SPAN_CHUNK - 1) // SPAN_CHUNK * SPAN_CHUNK   # within the ROW_PAD spare columns
        n32 = np.int32(n)   # owner is int32: half the memory traffic of int64
        for py in range(ya, yb + 1):
            dy = float(py - by0)
            e0, e1, e2 = b0 * dy + c0, b1 * dy + c1, b2 * dy + c2
            zr = zy * dy + z0
            zrow = zbuf[py - r0, bx0:bx0 + n_pad]
            orow = own[py, bx0:bx0 + n_pad]
            # Branch-free (every pixel of the padded span is stored, changed or not): LLVM vectorises
            # this loop, several times faster than testing and storing pixel by pixel.
            for ix in range(n_pad):
                dx = float(ix)
                zw = zx * dx + zr
                z_old = zrow[ix]
                hit = ((a0 * dx + e0 >= 0) & (a1 * dx + e1 >= 0) & (a2 * dx + e2 >= 0)
                       & (zw >= -1.0) & (zw <= 1.0) & (zw < z_old) & (ix < n_x))
                zrow[ix] = zw if hit else z_old
                orow[ix] = n32 if hit else orow[ix]
    face0 = face[first[b]] if first[b] < first[b + 1] else 0
    # Barycentrics of the winners from their edge functions relative to the box corner (float64,
    # small offsets; the twin computes them the same way). Pixel by pixel, each reading its winner's
    # record: a branch at every change of owner (one every few pixels) mispredicts, while the
    # background test changes at silhouettes only.
    for py in range(r0, r1):
        orow, rrow, drow = own[py], rast[b, py], rast_db[b, py]   # row views: cheaper indexing
        for px in range(W):
            n = orow[px]
            if n < 0:
                rrow[px, 0] = rrow[px, 1] = rrow[px, 2] = rrow[px, 3] = 0.0
                drow[px, 0] = drow[px, 1] = drow[px, 2] = drow[px, 3] = 0.0
                continue
            cf = rec[n]
            dx, dy = px - cf[R_X0], py - cf[R_Y0]
            a0, a1, a2 = cf[0], cf[1], cf[2]
            b0, b1, b2 = cf[3], cf[4], cf[5]
            e0 = a0 * dx + b0 * dy + cf[6]
            e1 = a1 * dx + b1 * dy + cf[7]
            s = e0 + e1 + (a2 * dx + b2 * dy + cf[8])
            sa, sb = a0 + a1 + a2, b0 + b1 + b2
            inv_s = 1.0 / s if s != 0 else 1.0
            u, v = e0 * inv_s, e1 * inv_s
            # nvdiffrast's output clamp against rounding: u, v >= 0 and u + v <= 1.
            uc, vc = min(max(u, 0.0), 1.0), min(max(v, 0.0), 1.0)
            t = uc + vc
            if t > 1.0:   # rare (rounding): the one division of the clamp only where it acts
                shrink = 1.0 / t
                uc, vc = uc * shrink, vc * shrink
            zw = cf[R_ZX] * dx + cf[R_ZY] * dy + cf[R_Z0]
            rrow[px, 0] = uc
            rrow[px, 1] = vc
            rrow[px, 2] = min(max(zw, -1.0), 1.0)
            rrow[px, 3] = face0 + (n - first[b]) + 1   # image b's faces are consecutive from face[first[b]]
            drow[px, 0] = (a0 - u * sa) * inv_s
            drow[px, 1] = (b0 - u * sb) * inv_s
            drow[px, 2] = (a1 - v * sa) * inv_s
            drow[px, 3] = (b1 - v * sb) * inv_s


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
        # dy is constant along a run, so dL/dB_i = dy sum dL/de_i (+ the rast_db terms, q3..q5):
        # six running sums instead of nine, few enough to stay in registers.
        n_run = -1
        q0 = q1 = q2 = q3 = q4 = q5 = q6 = q7 = q8 = 0.0
        x0 = 0
        dy = a0 = a1 = a2 = b0 = b1 = b2 = k0 = k1 = k2 = 0.0
        orow, grow, drow = owner[b, py], g_rast[b, py], g_db[b, py]
        for px in range(W + 1):
            n = orow[px] if px < W else -1
            if n != n_run:
                if n_run >= 0:
                    gc = g_coef[n_run]
                    gc[0] += q0
                    gc[1] += q1
                    gc[2] += q2
                    gc[3] += q3 + dy * q6
                    gc[4] += q4 + dy * q7
                    gc[5] += q5 + dy * q8
                    gc[6] += q6
                    gc[7] += q7
                    gc[8] += q8
                    q0 = q1 = q2 = q3 = q4 = q5 = q6 = q7 = q8 = 0.0
                n_run = n
                if n >= 0:   # the triangle's row terms, once per run
                    cf = rec[n]
                    x0, dy = int(cf[R_X0]), py - cf[R_Y0]
                    a0, a1, a2 = cf[0], cf[1], cf[2]
                    b0, b1, b2 = cf[3], cf[4], cf[5]
                    k0, k1, k2 = b0 * dy + cf[6], b1 * dy + cf[7], b2 * dy + cf[8]
            if n < 0:
                continue
            dx = float(px - x0)
            e0 = a0 * dx + k0
            e1 = a1 * dx + k1
            s = e0 + e1 + (a2 * dx + k2)
            if s == 0:
                continue
            inv_s = 1.0 / s
            bu, bv = e0 * inv_s, e1 * inv_s
            g0, g1 = np.float64(grow[px, 0]), np.float64(grow[px, 1])
            g_s = 0.0
            if use_db:
                sa, sb = a0 + a1 + a2, b0 + b1 + b2
                gX0, gY0 = np.float64(drow[px, 0]), np.float64(drow[px, 1])
                gX1, gY1 = np.float64(drow[px, 2]), np.float64(drow[px, 3])
                g_s = -(gX0 * (a0 - bu * sa) + gY0 * (b0 - bu * sb)
                        + gX1 * (a1 - bv * sa) + gY1 * (b1 - bv * sb)) * inv_s * inv_s
                g0 -= (gX0 * sa + gY0 * sb) * inv_s
                g1 -= (gX1 * sa + gY1 * sb) * inv_s
                gx_b = (gX0 * bu + gX1 * bv) * inv_s
                gy_b = (gY0 * bu + gY1 * bv) * inv_s
                q0 += gX0 * inv_s - gx_b
                q1 += gX1 * inv_s - gx_b
                q2 -= gx_b
                q3 += gY0 * inv_s - gy_b
                q4 += gY1 * inv_s - gy_b
                q5 -= gy_b
            g_b = (g0 * bu + g1 * bv) * inv_s
            ge0, ge1, ge2 = g0 * inv_s - g_b + g_s, g1 * inv_s - g_b + g_s, g_s - g_b
            q0 += ge0 * dx
            q1 += ge1 * dx
            q2 += ge2 * dx
            q6 += ge0
            q7 += ge1
            q8 += ge2
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
