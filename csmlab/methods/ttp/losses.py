"""To The Point's training losses, each a named term (weighted in :mod:`.fit`).

After the authors' ``main.py`` (flags in brackets):

- ``mask`` [mask_loss_wt]: L1 (the authors' ``torch.nn.L1Loss``; ``kind="mse"`` is what this
  course used before) between the antialiased silhouette of the solved shape under the solved
  camera (``csmlab.render``, i.e. nvdiffrast's ``antialias``) and the mask.
- ``texture`` [tex_loss_wt]: TTP textures the mesh *with the image itself*: vertex i
  carries the texture coordinate u_i (its regressed point), so rendering samples the image
  at the interpolated regressed points; where the geometry and the regression agree the
  render reproduces the image. TTP scores it with LPIPS (no weights here, no network
  download): an L1 over the object's mask instead. With ``texture_flip`` (the authors' ``main.py``
  always does it) the term is the mean of that and its mirror half, :func:`texture_flip_loss`: the
  detached shape under the detached mirror camera, textured from the image, against the mirrored
  image -- mirror partners must carry the same colour (the gradient reaches the points only).
- ``visibility`` [vis_loss_wt]: MSE between the regressed visibilities and the vertices
  the rasterizer shows (detached).
- ``cycle`` [rigid_wt]: the regressed points against the projection of the solved shape
  (detached), for the points that fall on the mask -- TTP's ``cycle_loss``.
- ``arap`` [arap_reg_wt] on the solved shapes against the template, ``arap_basis``
  [arap_basis_loss_wt] on T + B_k for every basis mode, ``deformation`` [def_loss_wt]:
  the mean of (V - T)^2 over every coordinate (the authors' ``.pow(2).mean()``; before, this
  course summed the three coordinates, three times the authors' term).
- ``equivariance`` [equiv_loss_wt]: the points regressed from an affinely warped image
  must be the warped points of the original image (detached target).
- ``mask_dt`` [tex_dt_loss_wt]: the regressed points must lie on the mask: the distance
  transform of the mask's outside (distance to the nearest mask pixel, NDC units), read
  at every point -- TTP's ``texture_dt_loss_v`` on ``tex_flow``.
- ``boundary`` [bdt_reg_wt]: the regressed points must cover the mask's outline: for each
  boundary pixel of the mask, the squared distance to the nearest regressed point, averaged
  -- TTP's ``bds_loss`` on ``tex_flow``. These two act on the 2D points directly, so they
  reach the regressor without passing through the renderer: the antialiased silhouette's
  gradient is faint on a coarse closed mesh at 32 px (its rim triangles are nearly edge-on
  and rarely own a pixel centre, which nvdiffrast's antialiasing needs).
- ``flip_camera`` [equiv_cam_loss_wt, with ``--flip_train``]: the batch also holds every image
  mirrored left-right; the camera solved on the mirrored image must be the mirror of the camera
  solved on the original, ``(s, M R M, (-tx, ty))`` with ``M = diag(-1, 1, 1)`` (the mirrored
  picture of a mirror-symmetric template) -- TTP's ``cam_flip_loss``: the mean of the scale MSE,
  the geodesic rotation error (radians) and the translation distance. A regressor that puts every
  bird on the side of its initial view cannot satisfy it, since mirroring moves azimuth a to -a.
- ``flip_points`` (our change, 0 in the presets unless set): the points regressed from the
  left-right mirrored image must be the mirror of the original's, vertex i where its partner was
  with x negated (detached target). The correspondence form of ``--flip_train``: it ties the two
  labellings of a bird and its mirror image without a camera, so it cannot be met by parking every
  camera at the view that is its own mirror (what ``flip_camera`` did at the medium budget).
- ``keypoints`` [kp_loss_wt, 0 in the README's CUB recipe]: L1 between the projected
  keypoint vertices and the annotated keypoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ... import render
from ...geometry import arap_energy, ortho_clip, ortho_project, pixel_to_ndc
from ...geometry.laplacian import laplacian_energy


def render_solution(verts: torch.Tensor, faces: torch.Tensor, sol: dict, resolution: int) -> render.Raster:
    """The raster of the solved shapes [B,N,3] under the solved cameras."""
    return render.rasterize_mesh(ortho_clip(verts, sol["scale"], sol["rotation"], sol["trans"]), faces, resolution)


MASK_LOSSES = ("l1", "mse")


def mask_loss(r: render.Raster, mask: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean L1 (TTP's ``mask_loss_fn``) or squared error between the silhouette and the mask (area-resized)."""
    if kind not in MASK_LOSSES:
        raise ValueError(f"kind must be one of {MASK_LOSSES}, got {kind!r}")
    sil = render.silhouette(r)
    target = F.interpolate(mask, size=sil.shape[-2:], mode="area")
    return F.l1_loss(sil, target) if kind == "l1" else F.mse_loss(sil, target)


def deformation_loss(verts: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """TTP's ``deform_loss``: ``(V - T)^2`` averaged over instances, vertices *and* coordinates."""
    return ((verts - template) ** 2).mean()


def texture_loss(r: render.Raster, points: torch.Tensor, images: torch.Tensor, mask: torch.Tensor,
                 target: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between the image (or ``target``) and its re-rendering with the regressed points as texture coordinates."""
    uv = render.interpolate_image(r, points)                                     # [B,2,h,w] NDC, y up
    grid = torch.stack([uv[:, 0], -uv[:, 1]], -1)                               # grid_sample: y down
    tex = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    target = F.interpolate(images if target is None else target, size=tex.shape[-2:], mode="area")
    m = F.interpolate(mask, size=tex.shape[-2:], mode="area") * r.mask
    return ((tex - target).abs() * m).sum() / (3 * m.sum()).clamp_min(1)


def texture_flip_loss(verts: torch.Tensor, faces: torch.Tensor, sol: dict, points: torch.Tensor, images: torch.Tensor,
                      mask: torch.Tensor, resolution: int) -> torch.Tensor:
    """The authors' second texture half (``texture_pred_flip`` in ``main.py``): the detached shape under the
    detached mirror camera, textured from the image at the regressed points, against the mirrored image."""
    R_m, t_m = mirror_camera(sol["rotation"].detach(), sol["trans"].detach())
    r_m = render_solution(verts.detach(), faces, {"rotation": R_m, "scale": sol["scale"].detach(), "trans": t_m},
                          resolution)
    return texture_loss(r_m, points, images, mask.flip(-1), target=images.flip(-1))


def visible_vertices(r: render.Raster, n_verts: int) -> torch.Tensor:
    """[B,N] 1.0 for the vertices of the faces that cover at least one pixel."""
    ids = r.face_ids.flatten(1)                                                  # [B,HW], -1 background
    B = ids.shape[0]
    out = torch.zeros(B, n_verts, dtype=r.pos.dtype, device=ids.device)
    tri = r.tri.long()
    for b in range(B):
        faces = torch.unique(ids[b][ids[b] >= 0])
        out[b, tri[faces].reshape(-1)] = 1.0
    return out


def visibility_loss(visibility: torch.Tensor, r: render.Raster) -> torch.Tensor:
    return F.mse_loss(visibility, visible_vertices(r, visibility.shape[1]))


def sample_mask(mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """[B,N] the mask read (nearest pixel) at NDC points [B,N,2]."""
    grid = torch.stack([points[..., 0], -points[..., 1]], -1)[:, None]
    return F.grid_sample(mask, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0, 0]


def _pixel_centres(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """[H*W,2] NDC of the pixel centres, row-major, top row first."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=like.dtype, device=like.device) + 0.5,
                            torch.arange(width, dtype=like.dtype, device=like.device) + 0.5, indexing="ij")
    return pixel_to_ndc(torch.stack([xs, ys], -1).reshape(-1, 2), height, width)


def mask_dt_loss(points: torch.Tensor, mask: torch.Tensor, resolution: int = 32) -> torch.Tensor:
    """Mean distance (NDC) from each regressed point [B,N,2] to the mask [B,1,H,W], read off the distance
    transform of the mask's outside at ``resolution`` (bilinear; 0 inside the mask)."""
    m = (F.interpolate(mask, size=(resolution, resolution), mode="area") > 0.5).flatten(1)    # [B,HW]
    centres = _pixel_centres(resolution, resolution, points)
    d = torch.cdist(centres, centres)                                                        # [HW,HW]
    far = torch.finfo(d.dtype).max
    dt = torch.where(m[:, None, :], d[None], far).amin(-1)                                   # [B,HW]
    dt = torch.where(m.any(-1, keepdim=True), dt, torch.zeros_like(dt)).reshape(-1, 1, resolution, resolution)
    grid = torch.stack([points[..., 0], -points[..., 1]], -1)[:, None]
    return F.grid_sample(dt, grid, mode="bilinear", padding_mode="border", align_corners=False).mean()


def boundary_loss(points: torch.Tensor, mask: torch.Tensor, resolution: int = 32) -> torch.Tensor:
    """Mean over the mask's boundary pixels (mask pixels with a 4-neighbour off it) of the squared NDC distance
    to the nearest regressed point [B,N,2]."""
    m = (F.interpolate(mask, size=(resolution, resolution), mode="area") > 0.5).float()
    inner = -F.max_pool2d(-F.pad(m, (1, 1, 1, 1)), 3, stride=1)                              # erosion
    boundary = ((m - inner) > 0.5).flatten(1)                                                 # [B,HW]
    centres = _pixel_centres(resolution, resolution, points)
    nearest = torch.cdist(centres[None].expand(points.shape[0], -1, -1), points).amin(-1) ** 2   # [B,HW]
    b = boundary.to(points.dtype)
    return ((nearest * b).sum(-1) / b.sum(-1).clamp_min(1)).mean()


def cycle_loss(points: torch.Tensor, verts: torch.Tensor, sol: dict, mask: torch.Tensor) -> torch.Tensor:
    proj = ortho_project(verts, sol["scale"], sol["rotation"], sol["trans"]).detach()
    on = (sample_mask(mask, proj) > 0.5).to(points.dtype)
    err = ((points - proj) ** 2).sum(-1)
    return ((on * err).sum(-1) / on.sum(-1).clamp_min(1)).mean()


def shape_regulariser(verts: torch.Tensor, template: torch.Tensor, faces: torch.Tensor, kind: str,
                      weights=None) -> torch.Tensor:
    """[B] ARAP (``kind="arap"``), the Laplacian-coordinates change (``"laplacian"``) or 0 (``"none"``).

    ``weights``: the template's precomputed ``laplacian_weights`` (cotangent), reused across batches.
    """
    if kind == "arap":
        return arap_energy(verts, template, faces, "cot" if weights is None else weights)
    if kind == "laplacian":
        return laplacian_energy(verts, template, faces)
    if kind == "none":
        return verts.new_zeros(verts.shape[0])
    raise ValueError(f"regulariser must be 'arap', 'laplacian' or 'none', got {kind!r}")


def random_affine(batch: int, generator: torch.Generator, max_angle_deg: float, max_shift: float,
                  scale_range=(0.9, 1.1)) -> torch.Tensor:
    """[B,2,3] NDC (y up) affine maps x -> A x + b: a rotation, an isotropic scale and a shift."""
    ang = (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(max_angle_deg)
    lo, hi = scale_range
    sc = lo + (hi - lo) * torch.rand(batch, generator=generator)
    sh = (torch.rand(batch, 2, generator=generator) * 2 - 1) * max_shift
    c, s = torch.cos(ang) * sc, torch.sin(ang) * sc
    return torch.stack([torch.stack([c, -s, sh[:, 0]], -1), torch.stack([s, c, sh[:, 1]], -1)], 1)


def warp_images(images: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """The image whose content at NDC point A x + b is the input's content at x (background: border colour)."""
    A, b = affine[:, :, :2], affine[:, :, 2:]
    Ainv = torch.linalg.inv(A)
    inv = torch.cat([Ainv, -Ainv @ b], -1)                                       # output point -> input point
    flip = torch.diag(torch.tensor([1.0, -1.0], dtype=images.dtype, device=images.device))
    theta = torch.cat([flip @ inv[:, :, :2] @ flip, flip @ inv[:, :, 2:]], -1)   # in grid_sample's y-down frame
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def apply_affine(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bij,bnj->bni", affine[:, :, :2], points) + affine[:, None, :, 2]


def equivariance_loss(points_warped: torch.Tensor, points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(points_warped, apply_affine(points, affine).detach())


def mirror_camera(rotation: torch.Tensor, trans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera of the left-right mirrored image: (M R M, (-tx, ty)), M = diag(-1, 1, 1); scale unchanged.

    The same convention as the synthetic birds' ``mirror_scenes`` (quaternion (w, x, -y, -z)).
    """
    m = torch.tensor([-1.0, 1.0, 1.0], dtype=rotation.dtype, device=rotation.device)
    return m[:, None] * rotation * m[None, :], trans * m[:2]


def flip_camera_loss(sol: dict, sol_flip: dict, eps: float = 1e-7) -> torch.Tensor:
    """TTP's ``cam_flip_loss``: (scale MSE + mean geodesic angle (rad) + mean translation distance) / 3
    between the mirror of the cameras ``sol`` and the cameras ``sol_flip`` solved on the mirrored images."""
    R_m, t_m = mirror_camera(sol["rotation"], sol["trans"])
    cos = (((R_m * sol_flip["rotation"]).sum((-2, -1)) - 1) / 2).clamp(-1 + eps, 1 - eps)   # acos: finite grad
    scale = F.mse_loss(sol["scale"], sol_flip["scale"])
    return (scale + torch.acos(cos).mean() + (t_m - sol_flip["trans"]).norm(dim=-1).mean()) / 3


def flip_points_loss(points_flipped: torch.Tensor, points: torch.Tensor, vertex_flip: torch.Tensor) -> torch.Tensor:
    """MSE between the points [B,N,2] of the mirrored images and the mirrored, partner-swapped ``points``."""
    if points_flipped.shape != points.shape or vertex_flip.shape != (points.shape[1],):
        raise ValueError(f"points_flipped must match points {list(points.shape)} and vertex_flip be "
                         f"[{points.shape[1]}], got {list(points_flipped.shape)} and {list(vertex_flip.shape)}")
    m = torch.tensor([-1.0, 1.0], dtype=points.dtype, device=points.device)
    return F.mse_loss(points_flipped, (points[:, vertex_flip] * m).detach())


def keypoint_loss(verts: torch.Tensor, sol: dict, keypoint_vertex: torch.Tensor, keypoints: torch.Tensor,
                  resolution: int) -> torch.Tensor:
    """L1 (NDC) between the projected keypoint vertices and the visible annotated keypoints [B,K,3] (pixels)."""
    proj = ortho_project(verts[:, keypoint_vertex], sol["scale"], sol["rotation"], sol["trans"])
    gt = pixel_to_ndc(keypoints[..., :2], resolution, resolution)
    vis = (keypoints[..., 2] > 0.5).to(proj.dtype)[..., None]
    return ((proj - gt).abs() * vis).sum() / (2 * vis.sum()).clamp_min(1)
