"""Rotations: quaternions, axis-angle, matrices, azimuth/elevation, and bins.

Conventions (used everywhere in csmlab):
- Quaternions are real-first ``(w, x, y, z)``; they are normalised on input and
  returned with ``w >= 0`` (q and -q are the same rotation).
- Matrices act on column vectors: ``X_cam = R @ X``. Batched ``[...,3,3]``.
- Axis-angle is a 3-vector whose direction is the axis and whose norm is the angle (radians).
- Azimuth/elevation/roll describe where the camera sits around the object:
  azimuth turns from the front (+z) towards the object's right (+x) about +y,
  elevation lifts the camera above the object, roll turns the image.
  The object rotation is ``R = Rz(roll) @ Rx(elevation) @ Ry(-azimuth)``, so at
  azimuth 90 degrees the object's +x (its right side) faces the viewer, and at
  positive elevation its top (+y) tilts towards the viewer.
"""

from __future__ import annotations

import math

import torch

from csmlab.checks import FLOAT_DTYPES, check_finite, check_number, check_tensor


def _check_last(name: str, x: torch.Tensor, n: int) -> None:
    check_tensor(name, x, shape=f"...,{n}", dtypes=FLOAT_DTYPES)


def _check_matrix(name: str, R: torch.Tensor) -> None:
    check_tensor(name, R, shape="...,3,3", dtypes=FLOAT_DTYPES)


def _check_broadcast(**tensors) -> None:
    """Arguments combined entry by entry must broadcast, share a dtype and a device."""
    (na, a), (nb, b) = tensors.items()
    dims: dict = {}
    check_tensor(na, a, dims=dims, same_dtype=True)
    check_tensor(nb, b, dims=dims, same_dtype=True)
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"{na} and {nb} must have broadcastable shapes, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}") from None


def _check_quaternion(name: str, q: torch.Tensor) -> None:
    """[...,4] finite and not zero: a zero quaternion is no rotation (normalising it would give NaN or 0)."""
    _check_last(name, q, 4)
    check_finite(name, q)
    zero = q.norm(dim=-1) == 0
    if bool(zero.any()):
        raise ValueError(f"{name} must be non-zero quaternions, got {int(zero.sum())} of length 0")


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """[...,4] (w,x,y,z) -> [...,3,3]. The quaternion is normalised first; a zero one is refused."""
    _check_quaternion("q", q)
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """[...,3,3] rotation -> [...,4] unit quaternion with w >= 0.

    Uses the largest of the four candidate denominators per matrix (Shepperd's
    method), which stays accurate for every rotation angle.
    """
    _check_matrix("R", R)
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cand = torch.stack([
        torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2],
                     m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                     m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                     1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                     m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], dim=-2)  # [...,4 candidates,4]; candidate k has component k = 4 q_k^2 / (2 q_k) * ... up to scale
    diag = torch.stack([1 + tr, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                        1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                        1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = diag.argmax(-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """[...,3] axis-angle -> [...,3,3] by Rodrigues' formula, smooth at angle 0."""
    _check_last("axis_angle", aa, 3)
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # [...,1,1]
    theta = theta2.clamp_min(1e-24).sqrt()
    small = theta2 < 1e-8
    # sin(t)/t and (1-cos t)/t^2 with Taylor series near 0 so gradients stay finite there.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-24))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """[...,4] -> [...,3] axis-angle with angle in [0, pi]."""
    _check_quaternion("q", q)
    q = torch.nn.functional.normalize(q, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    vec = q[..., 1:]
    sin_half = vec.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    scale = torch.where(sin_half < 1e-8, 2.0 / q[..., :1].clamp_min(1e-8), angle / sin_half.clamp_min(1e-12))
    return vec * scale


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """[...,3] axis-angle -> [...,4] unit quaternion (w >= 0 for angles up to pi)."""
    _check_last("axis_angle", aa, 3)
    angle = aa.norm(dim=-1, keepdim=True)
    half = angle / 2
    k = torch.where(angle < 1e-8, 0.5 - angle ** 2 / 48, torch.sin(half) / angle.clamp_min(1e-12))
    return torch.cat([torch.cos(half), aa * k], dim=-1)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """[...,3,3] -> [...,3] axis-angle."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a*b, so that matrix(a*b) = matrix(a) @ matrix(b)."""
    _check_last("a", a, 4)
    _check_last("b", b, 4)
    _check_broadcast(a=a, b=b)
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = {"x": [one, zero, zero, zero, c, -s, zero, s, c],
            "y": [c, zero, s, zero, one, zero, -s, zero, c],
            "z": [c, -s, zero, s, c, zero, zero, zero, one]}[axis]
    return torch.stack(rows, -1).reshape(angle.shape + (3, 3))


def azel_to_matrix(azimuth, elevation, roll=0.0) -> torch.Tensor:
    """Azimuth, elevation, roll (radians, broadcastable) -> [...,3,3] object rotation.

    ``R = Rz(roll) @ Rx(elevation) @ Ry(-azimuth)`` (see the module docstring).
    """
    args = {"azimuth": azimuth, "elevation": elevation, "roll": roll}
    like = next((a for a in args.values() if isinstance(a, torch.Tensor)), None)
    dims: dict = {}
    for name, a in args.items():
        if not isinstance(a, torch.Tensor):   # a Python number takes the dtype and device of the tensors
            a = torch.as_tensor(check_number(name, a), dtype=like.dtype if like is not None else None,
                                device=like.device if like is not None else None)
        args[name] = check_tensor(name, a, dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True, finite=True)
    try:
        az, el, ro = torch.broadcast_tensors(*args.values())
    except RuntimeError:
        raise ValueError("azimuth, elevation and roll must have broadcastable shapes, got "
                         + ", ".join(f"{n} {tuple(v.shape)}" for n, v in args.items())) from None
    return _axis_rotation("z", ro) @ _axis_rotation("x", el) @ _axis_rotation("y", -az)


def matrix_to_azel(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`azel_to_matrix`: returns (azimuth in (-pi, pi], elevation in [-pi/2, pi/2], roll).

    The viewing direction in object coordinates is the third row of R
    (``R^T e_z``) = (sin az cos el, sin el, cos az cos el).
    """
    _check_matrix("R", R)
    d = R[..., 2, :]
    az = torch.atan2(d[..., 0], d[..., 2])
    el = torch.asin(d[..., 1].clamp(-1.0, 1.0))  # clamp guards rounding only: |d|=1 for a rotation
    # Remove azimuth and elevation; what is left is Rz(roll).
    Rz = R @ _axis_rotation("y", -az).transpose(-1, -2) @ _axis_rotation("x", el).transpose(-1, -2)
    roll = torch.atan2(Rz[..., 1, 0], Rz[..., 0, 0])
    return az, el, roll


def rotation_angle_deg(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between rotations, in degrees: acos((tr(R1^T R2) - 1) / 2)."""
    _check_matrix("R1", R1)
    _check_matrix("R2", R2)
    _check_broadcast(R1=R1, R2=R2)
    rel = R1.transpose(-1, -2) @ R2
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def random_rotation(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """[n,3,3] rotations uniform on SO(3) (normalised Gaussian quaternions)."""
    n = int(check_number("n", n, low=0, integer=True))
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return quaternion_to_matrix(q).to(dtype)


def _check_bins(n_bins, low, high) -> None:
    check_number("n_bins", n_bins, low=1, integer=True)
    check_number("low", low)
    check_number("high", high, low=low, low_open=True)


def angle_to_bin(angle: torch.Tensor, n_bins: int, low: float = -math.pi, high: float = math.pi) -> torch.Tensor:
    """Index of the bin of width (high-low)/n_bins that holds each angle; the range wraps around."""
    _check_bins(n_bins, low, high)
    check_tensor("angle", angle, dtypes=FLOAT_DTYPES, finite=True)
    width = (high - low) / n_bins
    return torch.remainder(torch.floor((angle - low) / width), n_bins).long()


def bin_to_angle(index: torch.Tensor, n_bins: int, low: float = -math.pi, high: float = math.pi) -> torch.Tensor:
    """Centre angle of each bin; ``angle_to_bin(bin_to_angle(i)) == i``."""
    _check_bins(n_bins, low, high)
    check_tensor("index", index, dtypes=(torch.int32, torch.int64))
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_bins):
        raise ValueError(f"index must lie in [0, {n_bins}), got values in [{int(index.min())}, {int(index.max())}]")
    width = (high - low) / n_bins
    return low + (index.to(torch.get_default_dtype()) + 0.5) * width
