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


@njit(cache=True)
def _run_end(r, px, W):
    """The end (exclusive) of the run of pixels from px on that hold the same id as px."""
    q = px + 1
    while q < W and r[q, 3] == r[px, 3]:
        q += 1
    return q


@njit(cache=True)
def _interpolate_forward_image(b, attr, rast, tri, out):
    # Runs of pixels with one id: the triangle's attributes are looked up once per run, and the
    # channel loop is the outer one (register accumulators, no per-pixel lookups); the arithmetic
    # per pixel and channel is unchanged.
    B, H, W, C = out.shape
    ab = np.int64(b) if attr.shape[0] > 1 else np.int64(0)
    n_tri = tri.shape[0]
    largest = 0.0
    for py in range(H):
        r, o = rast[b, py], out[b, py]
        px = 0
        while px < W:
            q = _run_end(r, px, W)
            largest = max(largest, r[px, 3])
            t = int(r[px, 3]) - 1
            if t < 0 or t >= n_tri:
                for k in range(px, q):
                    for c in range(C):
                        o[k, c] = 0.0
                px = q
                continue
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            for c in range(C):
                a2 = attr[ab, i2, c]
                d0, d1 = attr[ab, i0, c] - a2, attr[ab, i1, c] - a2
                for k in range(px, q):
                    o[k, c] = a2 + d0 * r[k, 0] + d1 * r[k, 1]
            px = q
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
    B, H, W, C = g_out.shape
    ab = np.int64(b) if attr.shape[0] > 1 else np.int64(0)
    for py in range(H):
        for px in range(W):
            t = int(rast[b, py, px, 3]) - 1
            if t < 0:
                if want_rast:
                    for ch in range(4):
                        g_rast[b, py, px, ch] = 0.0
                continue
            u, v = rast[b, py, px, 0], rast[b, py, px, 1]
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            gu = gv = 0.0
            for c in range(C):
                g = g_out[b, py, px, c]
                if want_attr:
                    g_attr[b, i0, c] += g * u
                    g_attr[b, i1, c] += g * v
                    g_attr[b, i2, c] += g - g * u - g * v
                if want_rast:
                    a2 = attr[ab, i2, c]
                    gu += g * (attr[ab, i0, c] - a2)
                    gv += g * (attr[ab, i1, c] - a2)
            if want_rast:
                g_rast[b, py, px, 0] = gu
                g_rast[b, py, px, 1] = gv
                g_rast[b, py, px, 2] = 0.0
                g_rast[b, py, px, 3] = 0.0
