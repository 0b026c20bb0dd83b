"""To The Point end to end: the correspondence regressor, the learned basis, and the solve inside the forward.

TTP's formulation (``nnutils/mesh_net_lpl_v2_tex.py`` and ``main.py`` of the authors' code):

- an image encoder and one linear layer regress, for every template vertex i, a 2D point
  ``u_i = tanh(.)`` (NDC) and a visibility ``v_i = sigmoid(.)``; the visibilities weight
  the camera solve (``--weighted_camera``);
- the camera (R, s, t) and the deformation coefficients c of ``V = T + B c`` are *solved*
  from (u, v) by minimising the reprojection error -- here by notebook 01's batched solver
  (:func:`.implicit.solve_implicit`, the ridge ``(exp(w) I + Gamma Gamma^T)^-1 Gamma alpha``
  for c), differentiated by the implicit function theorem;
- the basis B [K,N,3] (``BasisGenerator``, initialised ``U(0, 0.01)``) and the ridge's
  log-weight w (``beta_weight``, initialised 0) are network parameters, learned over the
  dataset.

What the CPU budget changes: the encoder is a small strided CNN trained from scratch
(``encoder="convs"``; the full recipe's ``encoder="resnet18"`` is TTP's ImageNet ResNet-18 at 256 px,
:class:`ResNetEncoder`), and the solver runs a few alternations instead of BPnP's 100 L-BFGS
iterations x ``def_steps``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...geometry import azel_to_matrix, ortho_project
from .implicit import solve_implicit, solve_unrolled
from .solver import SolverConfig


def _check_images(images, resolution: int | None = None) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a [B,3,H,W] tensor, got {got}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0,1], got {images.dtype}")
    if resolution is not None and tuple(images.shape[-2:]) != (resolution, resolution):
        raise ValueError(f"images must be {resolution}x{resolution} (the model's resolution), "
                         f"got {tuple(images.shape[-2:])}")


class Encoder(nn.Module):
    """A strided CNN: resolution / 16 feature map -> a feature vector (GroupNorm: batch 8 is small).

    The feature vector is linear (no ReLU after the last layer): with one, every unit died within
    the first 400 medium iterations, the regressor's output froze at its bias and the solved camera
    was the same for every image (the 124 degree median error of the first medium checkpoint).
    """

    def __init__(self, resolution: int, width: int = 16, feat_dim: int = 256):
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.GroupNorm(min(8, b // 4), b), nn.ReLU(True)]
        self.conv = nn.Sequential(*layers)
        side = resolution // 16
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * side * side, feat_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x * 2 - 1))


class ResNetEncoder(nn.Module):
    """TTP's encoder at full scale: ResNet-18 up to layer4 (``csmlab.nets``, torchvision's names, so the
    ImageNet file loads strictly into ``self.trunk.resnet``), average-pooled, then a linear feature."""

    def __init__(self, feat_dim: int = 256):
        super().__init__()
        from csmlab.nets.camera_head import ResNet18Trunk

        self.trunk = ResNet18Trunk()
        self.fc = nn.Linear(ResNet18Trunk.channels, feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(x).mean((2, 3)))


ENCODERS = ("convs", "resnet18")


class TTPNet(nn.Module):
    """Image -> per-vertex 2D points (NDC) and visibilities; holds the template, basis B and ridge weight.

    ``init_view`` (azimuth, elevation in degrees, scale): the regressor's bias starts at
    the template seen from that view, so the first solves see a bird-shaped point set.
    """

    def __init__(self, template_verts: torch.Tensor, faces: torch.Tensor, n_basis: int, resolution: int,
                 width: int = 16, feat_dim: int = 256, init_view=(90.0, 0.0, 0.7), seed: int = 0,
                 encoder: str = "convs"):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if template_verts.dim() != 2 or template_verts.shape[1] != 3:
            raise ValueError(f"template_verts must be [N,3], got {list(template_verts.shape)}")
        if resolution % 16:
            raise ValueError(f"resolution must be a multiple of 16, got {resolution}")
        gen = torch.Generator().manual_seed(seed)
        self.resolution = int(resolution)
        self.register_buffer("template", template_verts.float().clone())
        self.register_buffer("faces", faces.long().clone())
        N = template_verts.shape[0]
        self.encoder = Encoder(resolution, width, feat_dim) if encoder == "convs" else ResNetEncoder(feat_dim)
        self.head = nn.Linear(feat_dim, N * 3)
        with torch.no_grad():
            self.head.weight.mul_(0.01)
            az, el, s = (math.radians(init_view[0]), math.radians(init_view[1]), init_view[2])
            R = azel_to_matrix(torch.tensor([az]), torch.tensor([el]), torch.zeros(1))
            uv = ortho_project(self.template[None], torch.tensor([s]), R, torch.zeros(1, 2))[0]
            bias = torch.cat([torch.atanh(uv.clamp(-0.95, 0.95)), torch.zeros(N, 1)], -1)
            self.head.bias.copy_(bias.reshape(-1))
        # TTP's BasisGenerator: U(0, 0.01) per entry; K modes of N x 3 displacements
        self.basis = nn.Parameter(torch.rand(n_basis, N, 3, generator=gen) * 0.01)
        self.log_reg = nn.Parameter(torch.zeros(()))   # TTP's beta_weight: ridge weight exp(w)

    @property
    def n_verts(self) -> int:
        return self.template.shape[0]

    def correspondences(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"points": [B,N,2] NDC in (-1,1), "visibility": [B,N] in (0,1)}."""
        _check_images(images, self.resolution)
        out = self.head(self.encoder(images)).reshape(images.shape[0], self.n_verts, 3)
        return {"points": torch.tanh(out[..., :2]), "visibility": torch.sigmoid(out[..., 2])}

    def forward(self, images: torch.Tensor, solver: SolverConfig | None = None, gradient: str = "implicit",
                basis: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Correspondences, then the camera and shape solved from them (:func:`solve_shape_and_camera`)."""
        out = self.correspondences(images)
        out.update(solve_shape_and_camera(out["points"], out["visibility"], self.template,
                                          self.basis if basis is None else basis, self.log_reg, solver, gradient))
        return out


GRADIENTS = ("implicit", "unrolled", "none")


def solve_shape_and_camera(points: torch.Tensor, visibility: torch.Tensor, template: torch.Tensor,
                           basis: torch.Tensor, log_reg: torch.Tensor, solver: SolverConfig | None = None,
                           gradient: str = "implicit") -> dict[str, torch.Tensor]:
    """rotation [B,3,3], scale [B], trans [B,2], coeffs [B,K] and verts [B,N,3] = T + B c, solved from (u, v).

    The solve runs in float64 (the solver's choice); ``gradient``: ``"implicit"`` (IFT),
    ``"unrolled"`` (back-propagate through the iterations) or ``"none"`` (detached).
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    B, N = points.shape[:2]
    if points.shape != (B, N, 2) or visibility.shape != (B, N):
        raise ValueError(f"points must be [B,N,2] and visibility [B,N], got {list(points.shape)} and "
                         f"{list(visibility.shape)}")
    if template.shape != (N, 3) or basis.dim() != 3 or basis.shape[1:] != (N, 3):
        raise ValueError(f"template must be [{N},3] and basis [K,{N},3], got {list(template.shape)} and "
                         f"{list(basis.shape)}")
    dt = torch.float64
    args = (points.to(dt), visibility.to(dt), template.to(dt), basis.to(dt), log_reg.to(dt), solver)
    if gradient == "implicit":
        R, s, t, c = solve_implicit(*args)
    elif gradient == "unrolled":
        R, s, t, c = solve_unrolled(*args)
    else:
        with torch.no_grad():
            R, s, t, c = solve_implicit(*args)
    f = points.dtype
    R, s, t, c = R.to(f), s.to(f), t.to(f), c.to(f)
    verts = template[None] + torch.einsum("bk,knc->bnc", c, basis)
    return {"rotation": R, "scale": s, "trans": t, "coeffs": c, "verts": verts}
