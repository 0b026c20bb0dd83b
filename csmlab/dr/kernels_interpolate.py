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


# Channels handled together, in scalar registers (a loop over a runtime channel count is not). Three,
# not four: with a fourth the per-pixel loop ran at half speed (measured), and colours have three.
GROUP = 3


@njit(cache=True)
def _interpolate_forward_image(b, attr, rast, tri, out):
    # Every pixel looks its triangle up, without a branch: background and out-of-range ids read
    # triangle 0 and store a zero instead (a branch at every change of id, one every few pixels,
    # mispredicts). A group narrower than GROUP repeats its last channel (same value, same column).
    # Float64 arithmetic (np.float64: numba's float() keeps float32), rounded once when stored.
    B, H, W, C = out.shape
    ab = np.int64(b) if attr.shape[0] > 1 else np.int64(0)
    at = attr[ab]
    n_tri = tri.shape[0]
    largest = 0.0
    for c0 in range(0, C, GROUP):
        c1, c2 = min(c0 + 1, C - 1), min(c0 + 2, C - 1)
        for py in range(H):
            r, o = rast[b, py], out[b, py]
            for px in range(W):
                idf = r[px, 3]
                largest = max(largest, idf)
                t = int(idf) - 1
                drawn = t >= 0 and t < n_tri
                tt = t if drawn else 0
                a0, a1, a2 = at[tri[tt, 0]], at[tri[tt, 1]], at[tri[tt, 2]]
                u, v = r[px, 0], r[px, 1]
                p0, p1, p2 = np.float64(a2[c0]), np.float64(a2[c1]), np.float64(a2[c2])
                v0 = p0 + (a0[c0] - p0) * u + (a1[c0] - p0) * v
                v1 = p1 + (a0[c1] - p1) * u + (a1[c1] - p1) * v
                v2 = p2 + (a0[c2] - p2) * u + (a1[c2] - p2) * v
                o[px, c0] = v0 if drawn else 0.0   # +0.0, as the twin
                o[px, c1] = v1 if drawn else 0.0
                o[px, c2] = v2 if drawn else 0.0
    return largest


@njit(cache=True, parallel=True)
def interpolate_backward(attr, rast, tri, g_out, want_attr, want_rast, acc, g_attr, g_rast):
    """``g_attr`` [B, V, C] (written in full when ``want_attr``): row b is image b's contribution (the
    caller sums the rows when the attributes are shared), summed in the float64 scratch ``acc``
    [B, V, C] (may be ``g_attr`` itself when that is float64); ``g_rast`` [B, H, W, 4], written in
    full when ``want_rast`` (only u, v receive a gradient). One pass over the pixels for both."""
    B, H, W, C = g_out.shape
    for b in prange(B):
        _interpolate_backward_image(b, attr, rast, tri, g_out, want_attr, want_rast, acc, g_attr, g_rast)


@njit(cache=True)
def interpolate_backward_serial(attr, rast, tri, g_out, want_attr, want_rast, acc, g_attr, g_rast):
    """:func:`interpolate_backward` on the calling thread (small calls: no thread pool is woken)."""
    for b in range(g_out.shape[0]):
        _interpolate_backward_image(b, attr, rast, tri, g_out, want_attr, want_rast, acc, g_attr, g_rast)


@njit(cache=True)
def _interpolate_backward_image(b, attr, rast, tri, g_out, want_attr, want_rast, acc, g_attr, g_rast):
    # Per pixel, as in the forward (no runs of ids, so no mispredicted branch at every change of id;
    # the one branch left, background or not, changes at silhouettes only). The attribute gradients
    # g u, g v, g (1 - u - v) are added to the three vertices' rows of ``acc`` in float64; g_rast's
    # u, v get sum_c g_c (a_0 - a_2)_c and sum_c g_c (a_1 - a_2)_c (later groups add to the first's).
    # Repeated channels of a narrow group count zero (masks m1, m2).
    B, H, W, C = g_out.shape
    ab = np.int64(b) if attr.shape[0] > 1 else np.int64(0)
    at = attr[ab]
    ac = acc[b]
    if want_attr:
        ac[:] = 0.0
    for c0 in range(0, C, GROUP):
        c1, c2 = min(c0 + 1, C - 1), min(c0 + 2, C - 1)
        m1, m2 = 1.0 if c0 + 1 < C else 0.0, 1.0 if c0 + 2 < C else 0.0
        for py in range(H):
            r, g, gr = rast[b, py], g_out[b, py], g_rast[b, py]
            for px in range(W):
                t = int(r[px, 3]) - 1
                if t < 0:
                    if want_rast and c0 == 0:
                        gr[px, 0] = gr[px, 1] = gr[px, 2] = gr[px, 3] = 0.0
                    continue
                i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
                g0, g1, g2 = np.float64(g[px, c0]), m1 * g[px, c1], m2 * g[px, c2]
                u, v = np.float64(r[px, 0]), np.float64(r[px, 1])
                if want_attr:
                    w = 1.0 - u - v
                    ga0, ga1, ga2 = ac[i0], ac[i1], ac[i2]
                    ga0[c0] += g0 * u
                    ga0[c1] += g1 * u
                    ga0[c2] += g2 * u
                    ga1[c0] += g0 * v
                    ga1[c1] += g1 * v
                    ga1[c2] += g2 * v
                    ga2[c0] += g0 * w
                    ga2[c1] += g1 * w
                    ga2[c2] += g2 * w
                if want_rast:
                    a0, a1, a2 = at[i0], at[i1], at[i2]
                    q0, q1, q2 = np.float64(a2[c0]), np.float64(a2[c1]), np.float64(a2[c2])
                    gu = g0 * (a0[c0] - q0) + g1 * (a0[c1] - q1) + g2 * (a0[c2] - q2)
                    gv = g0 * (a1[c0] - q0) + g1 * (a1[c1] - q1) + g2 * (a1[c2] - q2)
                    if c0 == 0:
                        gr[px, 0], gr[px, 1], gr[px, 2], gr[px, 3] = gu, gv, 0.0, 0.0
                    else:
                        gr[px, 0] += gu
                        gr[px, 1] += gv
    if want_attr:
        ga = g_attr[b]
        for i in range(ac.shape[0]):
            for c in range(C):
                ga[i, c] = ac[i, c]
