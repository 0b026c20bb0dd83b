"""Stage (d): project 3D embeddings onto the image, with the camera refined on the silhouette.

Camera (scaled orthographic, ``u = s (R X)[:2] + t`` in NDC): R comes from the
predicted (or true) azimuth and elevation, s starts at a fixed value (the demo's
``init_dist``) and t centres the shape on the mask (the paper assumes centred
objects). :func:`refine_camera` then minimises the mean squared difference between
the antialiased silhouette rendered through ``csmlab.dr`` and the image's mask,
``V* = argmin_V sum_p (S[p] - render_V(M)[p])^2`` (Eq. 7; ``demo.py`` optimises the
distance only, with Adam for 30 steps): ``mode="scale"`` optimises log s only (the
demo), ``mode="similarity"`` optimises s, t and a rotation update as well.

Self-occlusion is resolved in 3D: a point is visible when it passes the depth test
against the rasterized z-buffer of the shape (:func:`point_visibility`). Each
covered pixel takes the embedding of the nearest visible point in the image plane
(:func:`splat_points`), and a semantic keypoint is the pixel whose embedding is
nearest the keypoint's stored mean embedding (:func:`keypoints_from_pixels`). A
hidden keypoint therefore lands on the nearest visible surface, never on the hidden
one, unlike a 2D transfer that reads a hidden wing tip through the body.
"""

from __future__ import annotations

import torch

from csmlab import render
from csmlab.geometry import axis_angle_to_matrix, ndc_to_pixel, ortho_clip, ortho_depth, ortho_project, pixel_to_ndc
from csmlab.metrics import pck


def _check_mask(mask) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be [B,1,H,W], got "
                         f"{list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    return mask


def centre_translation(points: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor, R: torch.Tensor):
    """[B,2] translation that puts the projected cloud's mean on the mask's centroid (NDC)."""
    _check_mask(mask)
    B, _, H, W = mask.shape
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    m = mask[:, 0]
    area = m.flatten(1).sum(1).clamp_min(1)
    centroid = torch.stack([(m * xs).flatten(1).sum(1), (m * ys).flatten(1).sum(1)], -1) / area[:, None]
    proj = ortho_project(points, scale, R, torch.zeros(B, 2)).mean(1)
    return pixel_to_ndc(centroid, H, W) - proj


def silhouette(verts, faces, scale, R, trans, resolution: int) -> torch.Tensor:
    """[B,1,H,W] antialiased silhouette of the posed meshes (gradients reach the camera)."""
    r = render.rasterize_mesh(ortho_clip(verts, scale, R, trans), faces, (resolution, resolution))
    return render.silhouette(r)


def refine_camera(verts: torch.Tensor, faces: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor,
                  R: torch.Tensor, trans: torch.Tensor, mode: str = "scale", steps: int = 30,
                  lr: float = 0.02, resolution: int | None = None, return_path: bool = False) -> dict:
    """Fit the camera to the mask by gradient descent on the silhouette loss; returns the camera and losses.

    Returns ``scale`` [B], ``R`` [B,3,3], ``trans`` [B,2], ``losses`` [steps + 1] (the mean
    loss before each step and after the last) and ``per_image`` [B] (the final loss of each image).
    ``resolution`` renders at a lower resolution than the mask's (the mask is area-averaged to it),
    which the CPU presets use to save time; the camera is in NDC, so it does not change.
    ``return_path`` adds ``path``: the camera (scale, R, trans) before each step and after the last.
    """
    if mode not in ("scale", "similarity"):
        raise ValueError(f"mode must be 'scale' or 'similarity', got {mode!r}")
    _check_mask(mask)
    H = mask.shape[-1] if resolution is None else int(resolution)
    if H != mask.shape[-1]:
        if mask.shape[-1] % H:
            raise ValueError(f"resolution must divide the mask's size {mask.shape[-1]}, got {resolution}")
        mask = torch.nn.functional.avg_pool2d(mask, mask.shape[-1] // H)
    log_s = scale.detach().log().clone().requires_grad_(True)
    t = trans.detach().clone().requires_grad_(mode == "similarity")
    rot = torch.zeros(len(R), 3, requires_grad=mode == "similarity")
    params = [log_s] + ([t, rot] if mode == "similarity" else [])
    opt = torch.optim.Adam(params, lr=lr)
    losses, path = [], []
    for step in range(steps + 1):
        Rk = axis_angle_to_matrix(rot) @ R if mode == "similarity" else R
        if return_path:
            path.append((log_s.detach().exp(), Rk.detach(), t.detach().clone()))
        per_image = (silhouette(verts, faces, log_s.exp(), Rk, t, H) - mask).pow(2).flatten(1).mean(1)
        loss = per_image.sum()  # a sum: each image's camera gets its own full gradient
        losses.append(float(per_image.detach().mean()))
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = {"scale": log_s.detach().exp(), "R": Rk.detach(), "trans": t.detach(),
           "losses": torch.tensor(losses), "per_image": per_image.detach()}
    if return_path:
        out["path"] = path
    return out


def point_visibility(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, scale: torch.Tensor,
                     R: torch.Tensor, trans: torch.Tensor, resolution: int, tolerance_px: float = 2.0) -> torch.Tensor:
    """[B,N] bool: the point lies in the image and passes the z-buffer depth test at its pixel.

    The z-buffer comes from rasterizing the mesh (``csmlab.dr``); a point is visible when
    its depth is at most the buffer's depth at its pixel plus ``tolerance_px`` pixel widths
    (in object units, ``tolerance_px * 2 / (H s)``): the buffer holds the depth at the
    pixel centre, not at the point. A pixel the mesh does not cover is infinitely far (the
    background), so points on thin parts and silhouette edges whose pixel centre is not
    covered are visible: nothing lies in front of them.
    """
    H = W = int(resolution)
    r = render.rasterize_mesh(ortho_clip(verts, scale, R, trans), faces, (H, W))
    zbuf = render.depth_image(r, ortho_depth(verts, R))[:, 0]            # [B,H,W] top row first
    cover = r.mask[:, 0] > 0
    xy = ndc_to_pixel(ortho_project(points, scale, R, trans), H, W)
    col, row = xy[..., 0].floor().long(), xy[..., 1].floor().long()
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H)
    b = torch.arange(len(points))[:, None].expand_as(col)
    c, rr = col.clamp(0, W - 1), row.clamp(0, H - 1)
    tol = tolerance_px * 2.0 / (H * scale)[:, None]
    front = ortho_depth(points, R) <= zbuf[b, rr, c] + tol
    return inside & (~cover[b, rr, c] | front)


def splat_points(points: torch.Tensor, visible: torch.Tensor, coverage: torch.Tensor, scale, R, trans) -> torch.Tensor:
    """[B,H,W] long: for each covered pixel, the visible point nearest in the image plane (-1 elsewhere)."""
    B, _, H, W = coverage.shape
    xy = ndc_to_pixel(ortho_project(points, scale, R, trans), H, W)
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    centres = torch.stack([xs, ys], -1).reshape(-1, 2)
    out = torch.full((B, H * W), -1, dtype=torch.long)
    for b in range(B):
        fg = coverage[b, 0].reshape(-1) > 0.5
        vis = torch.nonzero(visible[b])[:, 0]
        if fg.any() and len(vis):
            out[b, fg] = vis[torch.cdist(centres[fg], xy[b, vis]).argmin(1)]
    return out.reshape(B, H, W)


def keypoints_from_pixels(pixel_index: torch.Tensor, embedding: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """[B,K,2] pixel positions (x, y; centres at +0.5): per keypoint, the pixel whose embedding is nearest its mean.

    pixel_index [B,H,W] (from :func:`splat_points`), embedding [B,N,D], means [K,D] or one set per image
    [B,K,D]. Images with no covered pixel get NaN (scored as wrong).
    """
    B, H, W = pixel_index.shape
    if means.dim() == 2:
        means = means.expand(B, -1, -1)
    if means.dim() != 3 or len(means) != B or means.shape[-1] != embedding.shape[-1]:
        raise ValueError(f"means must be [K,{embedding.shape[-1]}] or [{B},K,{embedding.shape[-1]}], "
                         f"got {list(means.shape)}")
    out = torch.full((B, means.shape[1], 2), float("nan"))
    for b in range(B):
        flat = pixel_index[b].reshape(-1)
        fg = torch.nonzero(flat >= 0)[:, 0]
        if len(fg) == 0:
            continue
        d = torch.cdist(means[b], embedding[b, flat[fg]])                # [K, pixels]
        best = fg[d.argmin(1)]
        out[b] = torch.stack([best % W + 0.5, best // W + 0.5], -1).float()
    return out


def bbox_size(mask: torch.Tensor) -> torch.Tensor:
    """[B] max(width, height) of each mask's bounding box, in pixels (the paper's w_bbox, h_bbox)."""
    _check_mask(mask)
    m = mask[:, 0] > 0.5
    rows, cols = m.any(2), m.any(1)
    if not rows.any(1).all():
        raise ValueError("a mask is empty: its bounding box is undefined")

    def extent(a):
        idx = torch.arange(a.shape[1])
        return (torch.where(a, idx, -1).max(1).values - torch.where(a, idx, a.shape[1]).min(1).values + 1).float()

    return torch.maximum(extent(rows), extent(cols))


def pck_per_image(pred: torch.Tensor, keypoints: torch.Tensor, mask: torch.Tensor, alpha: float = 0.1) -> dict:
    """2D PCK at alpha_img and alpha_bbox, computed per image over its visible keypoints, then averaged.

    pred [B,K,2] pixels, keypoints [B,K,3] (x, y, visibility). Eq. 8: correct when the error
    is at most alpha * max(w, h) of the image or of the object's bounding box.
    """
    if pred.shape[:2] != keypoints.shape[:2] or keypoints.shape[-1] != 3:
        raise ValueError(f"pred must be [B,K,2] and keypoints [B,K,3], got {list(pred.shape)}, {list(keypoints.shape)}")
    H, W = mask.shape[-2:]
    box = bbox_size(mask)
    img, bb = [], []
    for b in range(len(pred)):
        vis = keypoints[b, :, 2] > 0.5
        if not vis.any():
            continue
        p = torch.nan_to_num(pred[b], nan=1e9)
        img.append(float(pck(p, keypoints[b, :, :2], vis, alpha, float(max(H, W)))))
        bb.append(float(pck(p, keypoints[b, :, :2], vis, alpha, float(box[b]))))
    if not img:
        raise ValueError("no image has a visible keypoint: 2D PCK is undefined")
    return {"pck_img": sum(img) / len(img), "pck_bbox": sum(bb) / len(bb), "n_images": len(img)}
