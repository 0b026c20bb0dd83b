"""ACSM's losses (Kulkarni, Gupta, Fouhey, Tulsiani, CVPR 2020): the CSM terms through the *articulated* template.

Per-hypothesis terms return [B,K]. Hypothesis k has its own camera and its own part
transforms, hence its own posed template ``verts`` [B,K,V,3]:

- cycle: pixel -> UV -> articulated template point -> projection by camera k -> back to
  the pixel (:func:`articulated_cycle_error`);
- visibility: ``relu(z_point - z_rendered)^2`` against the depth of the *articulated*
  template rendered by ``csmlab.dr`` (:func:`render_posed`);
- coverage (ACSM's ``cov``): every ground-truth contour point should have a projected
  vertex nearby, :func:`coverage_loss`;
- consistency (``con``): the rendered silhouette must stay inside the mask, its pixels
  weighted by the mask's distance transform, :func:`consistency_loss`;
- keypoint reprojection (optional), part-translation regulariser.

The shared pieces (masked means, silhouette loss, hypothesis entropy and diversity)
are :mod:`csmlab.surface_losses`.
"""

from __future__ import annotations

import torch

from csmlab.geometry import ortho_clip, ortho_depth, ortho_project, pixel_to_ndc
from csmlab.render import depth_image, rasterize_mesh, silhouette
from csmlab.surface_losses import check_cameras, flatten_cameras, masked_mean, pixel_centres_ndc, sample_at_ndc


def _flat_verts(verts: torch.Tensor, B: int, K: int) -> torch.Tensor:
    if verts.dim() != 4 or verts.shape[:2] != (B, K) or verts.shape[-1] != 3:
        raise ValueError(f"verts must be [B,K,V,3] with B={B}, K={K} (the cameras'), got {list(verts.shape)}")
    return verts.reshape(B * K, verts.shape[2], 3)


def render_posed(verts: torch.Tensor, faces: torch.Tensor, cams: dict, resolution) -> dict[str, torch.Tensor]:
    """Render posed templates [B,K,V,3] under their cameras -> ``silhouette``, ``depth``, ``coverage`` [B,K,H,W]."""
    B, K = check_cameras(cams)
    X = _flat_verts(verts, B, K)
    scale, R, trans = flatten_cameras(cams)
    r = rasterize_mesh(ortho_clip(X, scale, R, trans), faces, resolution)
    H, W = r.rast.shape[1:3]
    return {"silhouette": silhouette(r).reshape(B, K, H, W),
            "depth": depth_image(r, ortho_depth(X, R)).reshape(B, K, H, W),
            "coverage": r.mask.reshape(B, K, H, W)}


def project_posed_points(points: torch.Tensor, cams: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Points [B,K,H,W,3] (one set per hypothesis) -> (NDC [B,K,H,W,2], depth [B,K,H,W])."""
    B, K = check_cameras(cams, points.shape[0])
    if points.dim() != 5 or points.shape[1] != K or points.shape[-1] != 3:
        raise ValueError(f"points must be [B,K,H,W,3] with K={K}, got {list(points.shape)}")
    H, W = points.shape[2:4]
    scale, R, trans = flatten_cameras(cams)
    X = points.reshape(B * K, H * W, 3)
    return ortho_project(X, scale, R, trans).reshape(B, K, H, W, 2), ortho_depth(X, R).reshape(B, K, H, W)


def articulated_cycle_error(points: torch.Tensor, cams: dict) -> torch.Tensor:
    """[B,K,H,W] squared NDC distance between each pixel centre and its articulated point's projection."""
    ndc, _ = project_posed_points(points, cams)
    H, W = points.shape[2:4]
    target = pixel_centres_ndc(H, W, points.device, points.dtype).reshape(H, W, 2)
    return ((ndc - target) ** 2).sum(-1)


def articulated_cycle_loss(points: torch.Tensor, cams: dict, mask: torch.Tensor) -> torch.Tensor:
    """[B,K] cycle loss through the articulated template, averaged over the foreground."""
    return masked_mean(articulated_cycle_error(points, cams), mask)


def articulated_visibility_loss(points: torch.Tensor, cams: dict, rendered: dict, mask: torch.Tensor) -> torch.Tensor:
    """[B,K] ``relu(z_point - z_rendered)^2`` over the foreground, with the articulated template's depth."""
    ndc, z = project_posed_points(points, cams)
    ref = ndc.detach()
    z_rendered = sample_at_ndc(rendered["depth"].detach(), ref)
    covered = sample_at_ndc(rendered["coverage"].detach(), ref) > 1 - 1e-4
    err = torch.where(covered, torch.relu(z - z_rendered) ** 2, torch.zeros_like(z))
    return masked_mean(err, mask)


def project_vertices(verts: torch.Tensor, cams: dict) -> torch.Tensor:
    """Posed vertices [B,K,V,3] -> their NDC projections [B,K,V,2]."""
    B, K = check_cameras(cams)
    scale, R, trans = flatten_cameras(cams)
    return ortho_project(_flat_verts(verts, B, K), scale, R, trans).reshape(B, K, verts.shape[2], 2)


def coverage_loss(verts_ndc: torch.Tensor, contour: torch.Tensor, k: int = 1) -> torch.Tensor:
    """[B,K] mean over contour points [B,C,2] of the squared NDC distance to their ``k`` nearest projected vertices.

    ``verts_ndc`` is [B,K,V,2]. The silhouette loss only pulls at edge pixels it already
    overlaps; coverage pulls the mesh out to every part of the true outline (a raised wing
    the template does not reach). ACSM averages the 4 nearest vertices; ``k=1`` is zero
    exactly when every contour point has a projected vertex on it.
    """
    if verts_ndc.dim() != 4 or verts_ndc.shape[-1] != 2:
        raise ValueError(f"verts_ndc must be [B,K,V,2], got {list(verts_ndc.shape)}")
    if contour.dim() != 3 or contour.shape[0] != verts_ndc.shape[0] or contour.shape[-1] != 2:
        raise ValueError(f"contour must be [B,C,2] with B={verts_ndc.shape[0]}, got {list(contour.shape)}")
    B, K = verts_ndc.shape[:2]
    c = contour[:, None].expand(B, K, *contour.shape[1:]).reshape(B * K, -1, 2)
    d2 = torch.cdist(c, verts_ndc.reshape(B * K, -1, 2)).pow(2).reshape(B, K, c.shape[1], -1)   # [B,K,C,V]
    return d2.topk(k, dim=-1, largest=False).values.mean(-1).mean(-1)


def consistency_loss(silhouette_k: torch.Tensor, mask_distance: torch.Tensor) -> torch.Tensor:
    """[B,K] mean of the rendered silhouette [B,K,H,W] times the mask's distance transform [B,1,H,W].

    The distance transform is 0 on the mask and grows away from it, so only the rendered
    pixels outside the mask cost anything, the more the farther out.
    """
    if silhouette_k.dim() != 4 or mask_distance.shape != (silhouette_k.shape[0], 1) + silhouette_k.shape[2:]:
        raise ValueError(f"silhouette_k must be [B,K,H,W] and mask_distance [B,1,H,W] of the same size, got "
                         f"{list(silhouette_k.shape)} and {list(mask_distance.shape)}")
    return (silhouette_k * mask_distance).flatten(2).mean(-1)


def keypoint_loss(verts: torch.Tensor, cams: dict, keypoint_weights: torch.Tensor, keypoints: torch.Tensor,
                  size: int) -> torch.Tensor:
    """[B,K] squared NDC error of the posed template's keypoints against visible [B,N,3] pixel keypoints."""
    kp3 = torch.einsum("nv,bkvc->bknc", keypoint_weights.to(verts), verts)
    B, K = kp3.shape[:2]
    scale, R, trans = flatten_cameras(cams)
    proj = ortho_project(kp3.reshape(B * K, -1, 3), scale, R, trans).reshape(B, K, -1, 2)
    target = pixel_to_ndc(keypoints[..., :2], size, size)[:, None]
    vis = (keypoints[..., 2] > 0.5).to(proj.dtype)[:, None]
    return (((proj - target) ** 2).sum(-1) * vis).sum(-1) / vis.sum(-1).clamp_min(1)


def translation_regulariser(translations: torch.Tensor) -> torch.Tensor:
    """Scalar: squared part translations [B,K,P,3], summed over parts and axes, averaged (ACSM's ``trans_reg``)."""
    return (translations ** 2).sum(-1).sum(-1).mean()


def contour_points(mask: torch.Tensor, n: int = 200, seed: int = 0) -> torch.Tensor:
    """[N,n,2] NDC centres of boundary pixels of [N,1,H,W] masks (a mask pixel with a background 4-neighbour).

    ``n`` points are drawn per image (with repetition when the outline is shorter) from a
    generator seeded by ``seed``, as ACSM samples ``n_contour`` points per image.
    """
    m = mask[:, 0] > 0.5
    pad = torch.nn.functional.pad(m[:, None].float(), (1, 1, 1, 1))[:, 0] > 0.5
    inner = pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:]
    edge = m & ~inner
    H, W = m.shape[-2:]
    g = torch.Generator().manual_seed(seed)
    out = []
    for e in edge:
        rows, cols = torch.nonzero(e, as_tuple=True)
        if rows.numel() == 0:
            rows, cols = torch.tensor([H // 2]), torch.tensor([W // 2])
        pick = torch.randint(rows.numel(), (n,), generator=g)
        px = torch.stack([cols[pick].float() + 0.5, rows[pick].float() + 0.5], -1)
        out.append(pixel_to_ndc(px, H, W))
    return torch.stack(out)


def mask_distance_transform(mask: torch.Tensor) -> torch.Tensor:
    """[N,1,H,W] distance (NDC units) from every pixel to the nearest mask pixel: 0 on the mask."""
    from scipy import ndimage

    W = mask.shape[-1]
    out = torch.stack([torch.from_numpy(ndimage.distance_transform_edt(~(m[0] > 0.5).numpy())).float()
                       for m in mask.cpu()])
    return (out * (2.0 / W))[:, None]
