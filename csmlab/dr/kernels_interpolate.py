"""Compiled (numba) kernels of ``interpolate``: ``out = u a_0 + v a_1 + (1 - u - v) a_2`` per pixel.

``attr`` is [Ba, V, C] with Ba = 1 (one set for every image) or B; ``rast`` [B, H, W, 4]
holds (u, v, z/w, triangle id + 1); background pixels (id 0) get 0. The backward
scatters ``g u``, ``g v``, ``g (1 - u - v)`` into the attributes of the three vertices and
gives ``rast`` the gradients ``sum_c g_c (a_0 - a_2)_c`` (u) and ``sum_c g_c (a_1 - a_2)_c`` (v).
Parallel over images; images never write the same output row (the attribute gradient
of a shared attribute set is accumulated per image, then summed by the caller).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def interpolate_forward(attr, rast, tri, out, max_id):
    """``out`` [B, H, W, C]; ``max_id[b]``: the largest triangle id + 1 in image b (the caller raises
    when it exceeds the triangle count: such pixels are never looked up, they get 0)."""
    for b in prange(out.shape[0]):
        max_id[b] = _interpolate_forward_image(b, attr, rast, tri, out)


@njit(cache=True)
def interpolate_forward_serial(attr, rast, tri, out, max_id):
    """:func:`interpolate_forward` on the calling thread (small calls: no thread pool is woken)."""
    for b in range(out.shape[0]):
        max_id[b] = _interpolate_forward_image(b, attr, rast, tri, out)


GROUP = 4   # channels handled together, in scalar registers (a loop over a runtime channel count is not)


@njit(cache=True)
def _interpolate_forward_image(b, attr, rast, tri, out):
    # Channels in groups of up to GROUP, each group in scalar registers (the masks k > 1 and so on are
    # the same for the whole call: predicted branches). Along a row, a triangle's attributes
    # (a_2, a_0 - a_2, a_1 - a_2) are looked up once per run of pixels with its id.
    B, H, W, C = out.shape
    ab = np.int64(b) if attr.shape[0] > 1 else np.int64(0)
    n_tri = tri.shape[0]
    largest = 0.0
    zero = attr[ab, 0, 0] * 0
    for c0 in range(0, C, GROUP):
        k = min(GROUP, C - c0)
        c1, c2, c3 = min(c0 + 1, C - 1), min(c0 + 2, C - 1), min(c0 + 3, C - 1)   # in range even when masked
        for py in range(H):
            r, o = rast[b, py], out[b, py]
            id_run = -1.0   # no id: the first pixel starts a run
            drawn = False
            p0 = p1 = p2 = p3 = d0 = d1 = d2 = d3 = e0 = e1 = e2 = e3 = zero
            for px in range(W):
                idf = r[px, 3]
                if idf != id_run:
                    id_run = idf
                    largest = max(largest, idf)
                    t = int(idf) - 1
                    drawn = t >= 0 and t < n_tri
                    if drawn:
                        a0, a1, a2 = attr[ab, tri[t, 0]], attr[ab, tri[t, 1]], attr[ab, tri[t, 2]]
                        p0, p1, p2, p3 = a2[c0], a2[c1], a2[c2], a2[c3]
                        d0, d1, d2, d3 = a0[c0] - p0, a0[c1] - p1, a0[c2] - p2, a0[c3] - p3
                        e0, e1, e2, e3 = a1[c0] - p0, a1[c1] - p1, a1[c2] - p2, a1[c3] - p3
                if drawn:
                    u, v = r[px, 0], r[px, 1]
                    o[px, c0] = p0 + d0 * u + e0 * v
                    if k > 1:
                        o[px, c1] = p1 + d1 * u + e1 * v
                    if k > 2:
                        o[px, c2] = p2 + d2 * u + e2 * v
                    if k > 3:
                        o[px, c3] = p3 + d3 * u + e3 * v
                else:
                    for c in range(c0, c0 + k):
                        o[px, c] = 0.0
    return largest


@njit(cache=True, parallel=True)
def interpolate_backward(attr, rast, tri, g_out, want_attr, want_rast, g_attr, g_rast):
    """``g_attr`` [B, V, C] zeros: row b is image b's contribution (the caller sums the rows when the
    attributes are shared); ``g_rast`` [B, H, W, 4], written in full when ``want_rast`` (only u, v
    receive a gradient). One pass over the pixels for both (reading ``rast`` once)."""
    B, H, W, C = g_out.shape
    for b in prange(B):
        _interpolate_backward_image(b, attr, rast, tri, g_out, want_attr, want_rast, g_attr, g_rast)


@njit(cache=True)
def interpolate_backward_serial(attr, rast, tri, g_out, want_attr, want_rast, g_attr, g_rast):
    """:func:`interpolate_backward` on the calling thread (small calls: no thread pool is woken)."""
    for b in range(g_out.shape[0]):
        _interpolate_backward_image(b, attr, rast, tri, g_out, want_attr, want_rast, g_attr, g_rast)


@njit(cache=True)
def _interpolate_backward_image(b, attr, rast, tri, g_out, want_attr, want_rast, g_attr, g_rast):
    # Channels in groups of up to GROUP in scalar registers, as in the forward. Along a row, the
    # attribute gradients of a run of pixels with one id are summed in float64 (sum g u, sum g v,
    # sum g) and added to the triangle's three rows when the run ends; g_rast's u, v get
    # sum_c g_c (a_0 - a_2)_c and sum_c g_c (a_1 - a_2)_c (later groups add to the first's).
    B, H, W, C = g_out.shape
    ab = np.int64(b) if attr.shape[0] > 1 else np.int64(0)
    zero = attr[ab, 0, 0] * 0
    for c0 in range(0, C, GROUP):
        k = min(GROUP, C - c0)
        c1, c2, c3 = min(c0 + 1, C - 1), min(c0 + 2, C - 1), min(c0 + 3, C - 1)
        m1, m2, m3 = 1.0 if k > 1 else 0.0, 1.0 if k > 2 else 0.0, 1.0 if k > 3 else 0.0
        for py in range(H):
            r, g, gr = rast[b, py], g_out[b, py], g_rast[b, py]
            id_run = 0.0
            t = -1
            i0 = i1 = i2 = 0
            su0 = su1 = su2 = su3 = sv0 = sv1 = sv2 = sv3 = sg0 = sg1 = sg2 = sg3 = 0.0
            d0 = d1 = d2 = d3 = e0 = e1 = e2 = e3 = zero
            for px in range(W + 1):
                idf = r[px, 3] if px < W else -1.0   # a sentinel past the row's end closes the last run
                if idf != id_run:
                    if t >= 0 and want_attr:
                        _add_run(g_attr[b, i0], g_attr[b, i1], g_attr[b, i2], c0, c1, c2, c3, k,
                                 su0, su1, su2, su3, sv0, sv1, sv2, sv3, sg0, sg1, sg2, sg3)
                        su0 = su1 = su2 = su3 = sv0 = sv1 = sv2 = sv3 = sg0 = sg1 = sg2 = sg3 = 0.0
                    id_run = idf
                    t = int(idf) - 1
                    if t >= 0:
                        i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
                        if want_rast:
                            a0, a1, a2 = attr[ab, i0], attr[ab, i1], attr[ab, i2]
                            d0, d1, d2, d3 = a0[c0] - a2[c0], a0[c1] - a2[c1], a0[c2] - a2[c2], a0[c3] - a2[c3]
                            e0, e1, e2, e3 = a1[c0] - a2[c0], a1[c1] - a2[c1], a1[c2] - a2[c2], a1[c3] - a2[c3]
                if px == W:
                    break
                if t < 0:
                    if want_rast and c0 == 0:
                        gr[px, 0] = gr[px, 1] = gr[px, 2] = gr[px, 3] = 0.0
                    continue
                # masked channels read a valid column and count zero
                g0, g1, g2, g3 = g[px, c0], m1 * g[px, c1], m2 * g[px, c2], m3 * g[px, c3]
                if want_attr:
                    u, v = float(r[px, 0]), float(r[px, 1])
                    su0 += g0 * u
                    su1 += g1 * u
                    su2 += g2 * u
                    su3 += g3 * u
                    sv0 += g0 * v
                    sv1 += g1 * v
                    sv2 += g2 * v
                    sv3 += g3 * v
                    sg0 += g0
                    sg1 += g1
                    sg2 += g2
                    sg3 += g3
                if want_rast:
                    gu = g0 * d0 + g1 * d1 + g2 * d2 + g3 * d3
                    gv = g0 * e0 + g1 * e1 + g2 * e2 + g3 * e3
                    if c0 == 0:
                        gr[px, 0], gr[px, 1], gr[px, 2], gr[px, 3] = gu, gv, 0.0, 0.0
                    else:
                        gr[px, 0] += gu
                        gr[px, 1] += gv


@njit(cache=True, inline="always")
def _add_run(ga0, ga1, ga2, c0, c1, c2, c3, k, su0, su1, su2, su3, sv0, sv1, sv2, sv3, sg0, sg1, sg2, sg3):
    """Add one run's sums to its triangle's attribute-gradient rows (vertex 2 gets sum g (1 - u - v))."""
    ga0[c0] += su0
    ga1[c0] += sv0
    ga2[c0] += sg0 - su0 - sv0
    if k > 1:
        ga0[c1] += su1
        ga1[c1] += sv1
        ga2[c1] += sg1 - su1 - sv1
    if k > 2:
        ga0[c2] += su2
        ga1[c2] += sv2
        ga2[c2] += sg2 - su2 - sv2
    if k > 3:
        ga0[c3] += su3
        ga1[c3] += sv3
        ga2[c3] += sg3 - su3 - sv3
