"""The losses of surface-map methods (CSM, ICCV 2019; ACSM, CVPR 2020), each a plain function with a unit test.

Moved here from ``csmlab.methods.csm.losses`` (which re-exports every name) so that
``csmlab.methods.acsm`` uses the same cycle, visibility, mask and hypothesis terms.

Per-hypothesis terms return [B,K] (one value per image and camera hypothesis);
:func:`expected` weights them by the hypothesis probabilities. The training
objective (``fit.CSMObjective``) keeps the weighted terms in a named dict.

- geometric cycle: pixel -> template point -> project with camera k -> squared
  NDC distance to the pixel, averaged over the foreground (:func:`cycle_error`);
- visibility: ``relu(z_point - z_rendered)^2`` where ``z_rendered`` is the depth
  of the template rendered under camera k at the point's projection
  (:func:`visibility_error`): the point must not lie behind the visible surface;
- mask: rendered antialiased silhouette vs the ground-truth mask (:func:`mask_render_loss`);
- mask prediction: BCE of the U-Net's mask logit;
- hypothesis regularisers: usage entropy and rotation diversity.

Depth is ``csmlab.geometry.ortho_depth`` (object units, nearer is smaller).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csmlab.geometry import ortho_clip, ortho_depth, ortho_project, pixel_to_ndc, quaternion_to_matrix
from csmlab.render import depth_image, rasterize_mesh, silhouette


def _check_image(name: str, x, channels: int | None = None) -> None:
    ok = isinstance(x, torch.Tensor) and x.dim() == 4 and (channels is None or x.shape[1] == channels)
    if not ok:
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a [B,{channels if channels else 'C'},H,W] tensor, got {got}")


def check_cameras(cams: dict, batch: int | None = None) -> tuple[int, int]:
    """Validate a hypothesis dict (scale [B,K], quat [B,K,4], trans [B,K,2]); return (B, K)."""
    for key in ("scale", "quat", "trans"):
        if key not in cams or not isinstance(cams[key], torch.Tensor):
            raise ValueError(f"cams must hold tensors 'scale' [B,K], 'quat' [B,K,4], 'trans' [B,K,2]; "
                             f"{key!r} is missing")
    B, K = cams["scale"].shape[:2] if cams["scale"].dim() == 2 else (None, None)
    if B is None or cams["quat"].shape != (B, K, 4) or cams["trans"].shape != (B, K, 2):
        raise ValueError(f"cams must be scale [B,K], quat [B,K,4], trans [B,K,2], got "
                         f"{list(cams['scale'].shape)}, {list(cams['quat'].shape)}, {list(cams['trans'].shape)}")
    if batch is not None and B != batch:
        raise ValueError(f"cams hold {B} images but the points/masks hold {batch}")
    return B, K


def flatten_cameras(cams: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scale [B*K], R [B*K,3,3], trans [B*K,2]) with hypothesis index fastest."""
    return (cams["scale"].reshape(-1), quaternion_to_matrix(cams["quat"].reshape(-1, 4)),
            cams["trans"].reshape(-1, 2))


def pixel_centres_ndc(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[H*W,2] NDC of every pixel centre, rows top to bottom (the layout of [B,C,H,W] images)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype) + 0.5,
                            torch.arange(width, device=device, dtype=dtype) + 0.5, indexing="ij")
    return pixel_to_ndc(torch.stack([xs, ys], -1).reshape(-1, 2), height, width)


def _points_per_camera(points: torch.Tensor, K: int) -> torch.Tensor:
    B, _, H, W = points.shape
    flat = points.flatten(2).transpose(1, 2)                          # [B,HW,3]
    return flat[:, None].expand(B, K, H * W, 3).reshape(B * K, H * W, 3)


def project_points(points: torch.Tensor, cams: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Project a [B,3,H,W] template-point image with every hypothesis.

    Returns (ndc [B,K,H,W,2], depth [B,K,H,W]).
    """
    _check_image("points", points, 3)
    B, K = check_cameras(cams, points.shape[0])
    H, W = points.shape[-2:]
    scale, R, trans = flatten_cameras(cams)
    X = _points_per_camera(points, K)
    ndc = ortho_project(X, scale, R, trans).reshape(B, K, H, W, 2)
    return ndc, ortho_depth(X, R).reshape(B, K, H, W)


def cycle_error(points: torch.Tensor, cams: dict) -> torch.Tensor:
    """[B,K,H,W] squared NDC distance between each pixel's centre and its point's projection by camera k."""
    ndc, _ = project_points(points, cams)
    H, W = points.shape[-2:]
    target = pixel_centres_ndc(H, W, points.device, points.dtype).reshape(H, W, 2)
    return ((ndc - target) ** 2).sum(-1)


def masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B,K,H,W] errors averaged over a [B,1,H,W] foreground -> [B,K] (0 where the mask is empty)."""
    _check_image("mask", mask, 1)
    if err.dim() != 4 or err.shape[0] != mask.shape[0] or err.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"err must be [B,K,H,W] matching mask {list(mask.shape)}, got {list(err.shape)}")
    m = mask.to(err.dtype)
    return (err * m).flatten(2).sum(-1) / m.flatten(2).sum(-1).clamp_min(1.0)


def cycle_loss(points: torch.Tensor, cams: dict, mask: torch.Tensor) -> torch.Tensor:
    """[B,K] geometric-cycle loss: :func:`cycle_error` averaged over the foreground."""
    return masked_mean(cycle_error(points, cams), mask)


def render_template(verts: torch.Tensor, faces: torch.Tensor, cams: dict, resolution) -> dict[str, torch.Tensor]:
    """Render the template under every hypothesis -> dict of [B,K,H,W] images (top-row-first).

    ``silhouette`` is antialiased (gradients reach the cameras), ``depth`` is the
    :func:`~csmlab.geometry.ortho_depth` of the visible surface (0 off it) and
    ``coverage`` the hard 0/1 mask. One rasterisation serves all three.
    """
    B, K = check_cameras(cams)
    scale, R, trans = flatten_cameras(cams)
    X = verts[None].expand(B * K, -1, -1)
    r = rasterize_mesh(ortho_clip(X, scale, R, trans), faces, resolution)
    H, W = r.rast.shape[1:3]
    return {"silhouette": silhouette(r).reshape(B, K, H, W),
            "depth": depth_image(r, ortho_depth(X, R)).reshape(B, K, H, W),
            "coverage": r.mask.reshape(B, K, H, W)}


def sample_at_ndc(img: torch.Tensor, ndc: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of [B,K,H,W] images at [B,K,H,W,2] NDC positions -> [B,K,H,W].

    Images are top-row-first and NDC has y up, hence the sign of y; with
    ``align_corners=False`` grid_sample's pixel centres sit exactly where
    ``pixel_to_ndc`` puts them.
    """
    B, K, H, W = img.shape
    grid = torch.stack([ndc[..., 0], -ndc[..., 1]], -1).reshape(B * K, ndc.shape[2], ndc.shape[3], 2)
    out = F.grid_sample(img.reshape(B * K, 1, H, W), grid.to(img.dtype), mode="bilinear",
                        padding_mode="zeros", align_corners=False)
    return out.reshape(B, K, ndc.shape[2], ndc.shape[3])


def visibility_error(points: torch.Tensor, cams: dict, depth: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """[B,K,H,W] ``relu(z_point - z_rendered)^2`` at each point's projection under camera k.

    ``depth``/``coverage`` come from :func:`render_template` (no gradient is taken
    through them: the rendered surface is the reference). Only projections whose
    four neighbouring pixels are all covered count, so the background's zero depth
    never enters the bilinear sample; points projecting off the template are the
    cycle loss's business.
    """
    ndc, z = project_points(points, cams)
    ndc_ref = ndc.detach()                               # the lookup position: no sideways push from depth slopes
    z_rendered = sample_at_ndc(depth.detach(), ndc_ref)
    covered = sample_at_ndc(coverage.detach(), ndc_ref) > 1 - 1e-4
    return torch.where(covered, F.relu(z - z_rendered) ** 2, torch.zeros_like(z))


def visibility_loss(points: torch.Tensor, cams: dict, depth: torch.Tensor, coverage: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """[B,K] visibility loss averaged over the foreground."""
    return masked_mean(visibility_error(points, cams, depth, coverage), mask)


def mask_render_loss(silhouette_k: torch.Tensor, mask: torch.Tensor, scales=(1,)) -> torch.Tensor:
    """[B,K] squared difference between each rendered silhouette [B,K,H,W] and the mask [B,1,H,W].

    With several ``scales`` (pooling factors, e.g. (1, 2, 4, 8)) the difference is also taken
    between average-pooled copies and the terms are summed: a silhouette's gradient only
    lives on its edge pixels, and the pooled differences tell those pixels which way the
    coarse mismatch lies, which widens the basin of the camera fit.
    """
    _check_image("mask", mask, 1)
    if silhouette_k.dim() != 4 or silhouette_k.shape[0] != mask.shape[0] or silhouette_k.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"silhouette_k must be [B,K,H,W] matching mask {list(mask.shape)}, "
                         f"got {list(silhouette_k.shape)}")
    total = 0
    for f in scales:
        if not isinstance(f, int) or f < 1 or mask.shape[-1] % f or mask.shape[-2] % f:
            raise ValueError(f"scales must be positive ints dividing the image size, got {f!r}")
        a = silhouette_k if f == 1 else F.avg_pool2d(silhouette_k, f)
        b = mask if f == 1 else F.avg_pool2d(mask, f)
        total = total + ((a - b) ** 2).flatten(2).mean(-1)
    return total


def mask_bce(mask_logit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scalar binary cross-entropy of the U-Net's [B,1,H,W] mask logit."""
    _check_image("mask_logit", mask_logit, 1)
    return F.binary_cross_entropy_with_logits(mask_logit, mask.to(mask_logit.dtype))


def expected(per_hypothesis: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Scalar: the [B,K] per-hypothesis loss weighted by the [B,K] probabilities, averaged over images."""
    if per_hypothesis.shape != prob.shape:
        raise ValueError(f"per_hypothesis and prob must both be [B,K], got {list(per_hypothesis.shape)} "
                         f"and {list(prob.shape)}")
    return (per_hypothesis * prob).sum(-1).mean()


def usage_entropy(prob: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the batch-averaged hypothesis distribution, ``H(mean_b p_b)``.

    Minimising its *negative* keeps all hypotheses in use across the batch while
    each image can still commit to one (per-image entropy would forbid that).
    The maximum is log K, reached when every hypothesis is used equally often.
    """
    if prob.dim() != 2:
        raise ValueError(f"prob must be [B,K], got {list(prob.shape)}")
    usage = prob.mean(0)
    return -(usage * torch.log(usage.clamp_min(1e-12))).sum()


def rotation_diversity(quat: torch.Tensor) -> torch.Tensor:
    """CSM's rotation regulariser: mean over hypotheses of ``(pi - angle to the nearest other one) / pi``.

    0 when every hypothesis is 180 degrees from all others, 1 when two coincide. It
    stops hypotheses from collapsing onto one pose (the bounded azimuth offsets of
    the camera head stop them from spreading into upside-down poses).
    """
    if quat.dim() != 3 or quat.shape[-1] != 4:
        raise ValueError(f"quat must be [B,K,4], got {list(quat.shape)}")
    K = quat.shape[1]
    if K < 2:
        return quat.new_zeros(())
    q = F.normalize(quat, dim=-1)
    cos_half = (q @ q.transpose(1, 2)).abs().clamp(max=1 - 1e-7)          # |q_i . q_j| = cos(angle / 2)
    angle = 2 * torch.acos(cos_half)
    eye = torch.eye(K, dtype=torch.bool, device=q.device)
    nearest = angle.masked_fill(eye, float("inf")).min(dim=-1).values
    return ((torch.pi - nearest) / torch.pi).mean()
