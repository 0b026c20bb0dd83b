"""Cameras and image coordinates.

Scaled-orthographic camera (To The Point, CSM, CMR): ``u = s * (R X)[:2] + t``,
in NDC with x right and y up, ``(s, R, t)`` per instance. For the z-buffer the
clip-space depth is the affine map ``z_ndc = -ORTHO_Z_SCALE * (R X)_z``: the
object's +z faces the viewer, so nearer points have a smaller z/w, as
nvdiffrast's depth test wants. It stays inside nvdiffrast's clip range
[-1, 1] while ``|(R X)_z| < 1 / ORTHO_Z_SCALE = 10`` object units.
The depth *image* of an orthographic view is ``-(R X)_z`` (object units,
nearer is smaller), see :func:`ortho_depth`.

Perspective camera (Unsup3D): an OpenGL-style pinhole looking down -z of the
camera frame, with depth ``d = -z_cam``; see :func:`perspective_clip`.

Image coordinates: keypoints in pixels are (x right, y down) and the centre of
pixel (row i, column j) is at (j + 0.5, i + 0.5). NDC has y up, and the pixel
centre of column j is at x = (2 j + 1) / W - 1, as in nvdiffrast. Convert only
through :func:`pixel_to_ndc` and :func:`ndc_to_pixel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from csmlab.checks import FLOAT_DTYPES, check_number, check_tensor

from .rotations import quaternion_to_matrix

ORTHO_Z_SCALE = 0.1


def _check_points(X: torch.Tensor, name: str = "X", dims: dict | None = None) -> dict:
    dims = {} if dims is None else dims
    check_tensor(name, X, shape="B,N,3", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)
    return dims


def _check_camera(X: torch.Tensor, scale: torch.Tensor, R: torch.Tensor, trans: torch.Tensor) -> None:
    """X [B,N,3], scale [B], R [B,3,3], trans [B,2]: one batch size, one float dtype, one device."""
    dims = _check_points(X)
    check_tensor("scale", scale, shape="B", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)
    check_tensor("R", R, shape="B,3,3", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)
    check_tensor("trans", trans, shape="B,2", dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)


def _check_size(name: str, value) -> int:
    return int(check_number(name, value, low=1, integer=True))


def ortho_project(X: torch.Tensor, scale: torch.Tensor, R: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """[B,N,3] points -> [B,N,2] NDC: ``s * (R X)[:2] + t``."""
    _check_camera(X, scale, R, trans)
    return scale[:, None, None] * (X @ R[:, :2, :].transpose(1, 2)) + trans[:, None, :]


def ortho_depth(X: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """[B,N] camera depth ``-(R X)_z`` of an orthographic view (nearer is smaller)."""
    check_tensor("R", R, shape="B,3,3", dims=_check_points(X), dtypes=FLOAT_DTYPES, same_dtype=True)
    return -(X @ R[:, 2, :, None])[..., 0]


def ortho_clip(X: torch.Tensor, scale: torch.Tensor, R: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """[B,N,3] points -> [B,N,4] clip-space positions for ``csmlab.dr.rasterize`` (w = 1)."""
    uv = ortho_project(X, scale, R, trans)
    z = ORTHO_Z_SCALE * ortho_depth(X, R)
    return torch.cat([uv, z[..., None], torch.ones_like(z)[..., None]], dim=-1).contiguous()


def perspective_clip(X_cam: torch.Tensor, fov_deg: float, near: float, far: float) -> torch.Tensor:
    """[B,N,3] camera-frame points (looking down -z) -> [B,N,4] clip space.

    ``w = d = -z_cam``; ``z/w`` goes from -1 at d = near to +1 at d = far.
    The image is square; ``fov_deg`` is the full field of view.
    """
    _check_points(X_cam, "X_cam")
    check_number("near", near, low=0, low_open=True)
    if not check_number("far", far) > near:
        raise ValueError(f"far must be > near (0 < near < far), got near={near}, far={far}")
    check_number("fov_deg", fov_deg, low=0, high=180, low_open=True, high_open=True)
    f = 1.0 / math.tan(math.radians(fov_deg) / 2)
    d = -X_cam[..., 2]
    zc = d * (far + near) / (far - near) - 2 * far * near / (far - near)
    return torch.stack([f * X_cam[..., 0], f * X_cam[..., 1], zc, d], dim=-1).contiguous()


def pixel_to_ndc(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[...,2] pixel (x right, y down, centres at +0.5) -> NDC (x right, y up)."""
    check_tensor("xy", xy, shape="...,2", dtypes=FLOAT_DTYPES)
    height, width = _check_size("height", height), _check_size("width", width)
    x = 2 * xy[..., 0] / width - 1
    y = 1 - 2 * xy[..., 1] / height
    return torch.stack([x, y], dim=-1)


def ndc_to_pixel(ndc: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pixel_to_ndc`."""
    check_tensor("ndc", ndc, shape="...,2", dtypes=FLOAT_DTYPES)
    height, width = _check_size("height", height), _check_size("width", width)
    x = (ndc[..., 0] + 1) * width / 2
    y = (1 - ndc[..., 1]) * height / 2
    return torch.stack([x, y], dim=-1)


@dataclass
class OrthoCamera:
    """A batch of scaled-orthographic cameras: scale [B], quat [B,4] (w,x,y,z), trans [B,2] (NDC)."""

    scale: torch.Tensor
    quat: torch.Tensor
    trans: torch.Tensor

    def __post_init__(self):
        dims: dict = {}
        for name, spec in (("scale", "B"), ("quat", "B,4"), ("trans", "B,2")):
            check_tensor(name, getattr(self, name), shape=spec, dims=dims, dtypes=FLOAT_DTYPES, same_dtype=True)

    @property
    def R(self) -> torch.Tensor:
        return quaternion_to_matrix(self.quat)

    def project(self, X: torch.Tensor) -> torch.Tensor:
        return ortho_project(X, self.scale, self.R, self.trans)

    def clip(self, X: torch.Tensor) -> torch.Tensor:
        return ortho_clip(X, self.scale, self.R, self.trans)

    def depth(self, X: torch.Tensor) -> torch.Tensor:
        return ortho_depth(X, self.R)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "quat": self.quat, "trans": self.trans}

    @classmethod
    def from_dict(cls, d: dict) -> "OrthoCamera":
        """From a sample's ``camera`` dict; unbatched values get a batch dim of 1."""
        s, q, t = (torch.as_tensor(d[k]) for k in ("scale", "quat", "trans"))
        if q.dim() == 1:
            s, q, t = s.reshape(1), q[None], t[None]
        return cls(s, q, t)
