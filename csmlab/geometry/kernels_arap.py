"""Compiled (numba) kernels of the ARAP energy (:mod:`.arap`): covariances, local rotations, energy and gradient.

Three passes over the padded one-ring table ``nbrs [V,D]`` (padding slots point at the
vertex itself and have weight 0), all in float64, serial (one call is ~1 ms of work: waking
a thread pool costs more):

1. :func:`covariances`: ``S_i = sum_j w_ij (v'_j - v'_i)(v_j - v_i)^T``.
2. :func:`horn_rotations`: the rotation maximising ``tr(R^T S_i)`` in closed form, from
   Horn's quaternion (Horn 1987, "Closed-form solution of absolute orientation using unit
   quaternions"): no iterations on the rotation, no starting point, never a reflection.
   (A per-matrix port of the Newton rotation fit of :func:`.arap.nearest_rotations` was
   tried first: from the global rotation it needs 4-5 steps on average and crawls, with
   gradient steps, on thin one-rings; it took twice Horn's time.) Matrices whose largest
   eigenvalue is repeated -- the rotation is not unique -- are flagged for the SVD.
3. :func:`energy_and_gradient`: ``E_b = mean_i sum_j w_ij ||r_ij||^2`` with
   ``r_ij = (v'_j - v'_i) - R_i (v_j - v_i)``, and its gradient at fixed R_i (exact: R_i
   is optimal, the envelope theorem), for the deformed and the rest vertices.

Arrays: ``x [B,V,3]`` deformed, ``rest [Br,V,3]`` and ``w [Bw,V,D]`` with Br, Bw = 1 (shared)
or B. The rest gradient is per instance (``[B,V,3]``); the caller sums it when shared.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def covariances(x, rest, nbrs, w, S):
    B, V, _ = x.shape
    D = nbrs.shape[1]
    for b in range(B):
        rb = b if rest.shape[0] > 1 else 0
        wb = b if w.shape[0] > 1 else 0
        for i in range(V):
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = 0.0
            for d in range(D):
                wij = w[wb, i, d]
                if wij == 0.0:
                    continue
                j = nbrs[i, d]
                e0 = x[b, j, 0] - x[b, i, 0]
                e1 = x[b, j, 1] - x[b, i, 1]
                e2 = x[b, j, 2] - x[b, i, 2]
                f0 = wij * (rest[rb, j, 0] - rest[rb, i, 0])
                f1 = wij * (rest[rb, j, 1] - rest[rb, i, 1])
                f2 = wij * (rest[rb, j, 2] - rest[rb, i, 2])
                s00 += e0 * f0
                s01 += e0 * f1
                s02 += e0 * f2
                s10 += e1 * f0
                s11 += e1 * f1
                s12 += e1 * f2
                s20 += e2 * f0
                s21 += e2 * f1
                s22 += e2 * f2
            S[b, i, 0, 0], S[b, i, 0, 1], S[b, i, 0, 2] = s00, s01, s02
            S[b, i, 1, 0], S[b, i, 1, 1], S[b, i, 1, 2] = s10, s11, s12
            S[b, i, 2, 0], S[b, i, 2, 1], S[b, i, 2, 2] = s20, s21, s22


@njit(cache=True)
def _det3(a, b, c, d, e, f, g, h, k):
    return a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g)


@njit(cache=True)
def _minor(A, k, m):
    """The 3 x 3 minor of the 4 x 4 ``A`` without row k and column m."""
    r0, r1, r2 = (1, 2, 3) if k == 0 else ((0, 2, 3) if k == 1 else ((0, 1, 3) if k == 2 else (0, 1, 2)))
    c0, c1, c2 = (1, 2, 3) if m == 0 else ((0, 2, 3) if m == 1 else ((0, 1, 3) if m == 2 else (0, 1, 2)))
    return _det3(A[r0, c0], A[r0, c1], A[r0, c2], A[r1, c0], A[r1, c1], A[r1, c2], A[r2, c0], A[r2, c1], A[r2, c2])


@njit(cache=True)
def horn_rotation(S, R, N, A):
    """R [3,3] maximising tr(R^T S), from Horn's quaternion: the eigenvector of the largest eigenvalue
    of the symmetric, traceless 4 x 4 ``N`` built from ``S`` (``N``, ``A`` [4,4] scratch). The eigenvalue
    is the largest root of det(N - l I) = l^4 + c2 l^2 + c1 l + c0, found by Newton's method from the
    upper bound sqrt(3) ||S||_F (monotone: all roots are real); the eigenvector is the largest column of
    adj(N - l I). A rotation is always a proper one (no reflection to fix). Returns False where the
    largest eigenvalue is (nearly) repeated -- the best rotation is not unique -- for the SVD to decide."""
    # Horn's S_xy = sum a_x b_y (a rest, b deformed) is our S transposed
    xx, xy, xz = S[0, 0], S[1, 0], S[2, 0]
    yx, yy, yz = S[0, 1], S[1, 1], S[2, 1]
    zx, zy, zz = S[0, 2], S[1, 2], S[2, 2]
    N[0, 0], N[0, 1], N[0, 2], N[0, 3] = xx + yy + zz, yz - zy, zx - xz, xy - yx
    N[1, 1], N[1, 2], N[1, 3] = xx - yy - zz, xy + yx, zx + xz
    N[2, 2], N[2, 3] = -xx + yy - zz, yz + zy
    N[3, 3] = -xx - yy + zz
    for p in range(4):
        for q in range(p):
            N[p, q] = N[q, p]
    fro2 = 0.0
    for p in range(3):
        for q in range(3):
            fro2 += S[p, q] * S[p, q]
    if not fro2 > 0.0:
        return False
    c2 = -2.0 * fro2
    c1 = -8.0 * _det3(xx, xy, xz, yx, yy, yz, zx, zy, zz)
    c0 = (N[0, 0] * _det3(N[1, 1], N[1, 2], N[1, 3], N[2, 1], N[2, 2], N[2, 3], N[3, 1], N[3, 2], N[3, 3])
          - N[0, 1] * _det3(N[1, 0], N[1, 2], N[1, 3], N[2, 0], N[2, 2], N[2, 3], N[3, 0], N[3, 2], N[3, 3])
          + N[0, 2] * _det3(N[1, 0], N[1, 1], N[1, 3], N[2, 0], N[2, 1], N[2, 3], N[3, 0], N[3, 1], N[3, 3])
          - N[0, 3] * _det3(N[1, 0], N[1, 1], N[1, 2], N[2, 0], N[2, 1], N[2, 2], N[3, 0], N[3, 1], N[3, 2]))
    lam0 = math.sqrt(3.0 * fro2)
    lam = lam0
    for _ in range(60):
        l2 = lam * lam
        P = (l2 + c2) * l2 + c1 * lam + c0
        dP = (4.0 * l2 + 2.0 * c2) * lam + c1
        if not dP > 0.0:
            break
        step = P / dP
        lam -= step
        if abs(step) <= 1e-15 * lam0:
            break
    for p in range(4):
        for q in range(4):
            A[p, q] = N[p, q] - (lam if p == q else 0.0)
    # adj(A) = c q q^T: its column k, the cofactors C_{k,m}, is the eigenvector times c q_k; take the
    # column of the largest diagonal cofactor |C_kk| = |c| q_k^2 (the best conditioned one)
    best, bk = -1.0, 0
    for k in range(4):
        v = abs(_minor(A, k, k))
        if v > best:
            best, bk = v, k
    if not best > 1e-9 * lam0 ** 3:
        return False
    q0, q1, q2, q3 = _minor(A, bk, 0), -_minor(A, bk, 1), _minor(A, bk, 2), -_minor(A, bk, 3)
    nq = math.sqrt(q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3)     # the sign (-1)^k of the column is irrelevant
    w, x, y, z = q0 / nq, q1 / nq, q2 / nq, q3 / nq
    R[0, 0], R[0, 1], R[0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)
    R[1, 0], R[1, 1], R[1, 2] = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)
    R[2, 0], R[2, 1], R[2, 2] = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
    return True


@njit(cache=True)
def horn_rotations(S, R, unsolved):
    """:func:`horn_rotation` for every ``S [B,V,3,3]``; ``unsolved [B,V]`` flags the ones left to the SVD."""
    N = np.empty((4, 4))
    A = np.empty((4, 4))
    for b in range(S.shape[0]):
        for i in range(S.shape[1]):
            unsolved[b, i] = not horn_rotation(S[b, i], R[b, i], N, A)


@njit(cache=True)
def energy_and_gradient(x, rest, nbrs, w, R, want_rest, E, gx, grest):
    """``E [B]``; ``gx [B,V,3]`` and (``want_rest``) ``grest [B,V,3]`` zero-filled on entry."""
    B, V, _ = x.shape
    D = nbrs.shape[1]
    inv_v = 1.0 / V
    for b in range(B):
        rb = b if rest.shape[0] > 1 else 0
        wb = b if w.shape[0] > 1 else 0
        total = 0.0
        for i in range(V):
            Ri = R[b, i]
            for d in range(D):
                wij = w[wb, i, d]
                if wij == 0.0:
                    continue
                j = nbrs[i, d]
                f0 = rest[rb, j, 0] - rest[rb, i, 0]
                f1 = rest[rb, j, 1] - rest[rb, i, 1]
                f2 = rest[rb, j, 2] - rest[rb, i, 2]
                r0 = x[b, j, 0] - x[b, i, 0] - (Ri[0, 0] * f0 + Ri[0, 1] * f1 + Ri[0, 2] * f2)
                r1 = x[b, j, 1] - x[b, i, 1] - (Ri[1, 0] * f0 + Ri[1, 1] * f1 + Ri[1, 2] * f2)
                r2 = x[b, j, 2] - x[b, i, 2] - (Ri[2, 0] * f0 + Ri[2, 1] * f1 + Ri[2, 2] * f2)
                total += wij * (r0 * r0 + r1 * r1 + r2 * r2)
                c = 2.0 * wij * inv_v
                gx[b, j, 0] += c * r0
                gx[b, j, 1] += c * r1
                gx[b, j, 2] += c * r2
                gx[b, i, 0] -= c * r0
                gx[b, i, 1] -= c * r1
                gx[b, i, 2] -= c * r2
                if want_rest:   # d/d(rest edge) = -2 w R_i^T r
                    for k in range(3):
                        q = c * (Ri[0, k] * r0 + Ri[1, k] * r1 + Ri[2, k] * r2)
                        grest[b, j, k] -= q
                        grest[b, i, k] += q
        E[b] = total * inv_v
