"""Per-pixel correspondences -> per-vertex ones: TTP's camera solve fed by a dense surface map.

A dense method (CSM's U-Net, or a per-pixel TTP regressor) maps every foreground pixel to a
template point. The solver wants, for every template vertex, a 2D point and a visibility.
:func:`surface_map_correspondences` pools each pixel into its ``k`` nearest template vertices
with weights ``exp(-(d / sigma)^2)``: a vertex's 2D point is the weighted mean of its pixels'
NDC positions, its visibility its total weight relative to a fifth of the best-covered vertex's,
capped at 1 (vertices no pixel maps near get visibility ~0 and do not pull on the camera).
"""

from __future__ import annotations

import torch

from ...geometry import pixel_to_ndc


def surface_map_correspondences(points: torch.Tensor, mask: torch.Tensor, template: torch.Tensor, k: int = 8,
                                sigma: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """[B,3,H,W] template points per pixel, [B,1,H,W] mask, [V,3] template -> ([B,V,2] NDC, [B,V] visibility)."""
    if not isinstance(points, torch.Tensor) or points.dim() != 4 or points.shape[1] != 3:
        raise ValueError(f"points must be a [B,3,H,W] tensor of template points, got "
                         f"{list(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__}")
    B, _, H, W = points.shape
    if not isinstance(mask, torch.Tensor) or mask.shape != (B, 1, H, W):
        raise ValueError(f"mask must be [B,1,H,W] = {[B, 1, H, W]}, got "
                         f"{list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    if not isinstance(template, torch.Tensor) or template.dim() != 2 or template.shape[1] != 3:
        raise ValueError(f"template must be a [V,3] tensor, got "
                         f"{list(template.shape) if isinstance(template, torch.Tensor) else type(template).__name__}")
    if not (isinstance(k, int) and 1 <= k <= template.shape[0]) or not sigma > 0:
        raise ValueError(f"k must be an int in [1, {template.shape[0]}] and sigma > 0, got k={k!r}, sigma={sigma!r}")
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    ndc = pixel_to_ndc(torch.stack([xs + 0.5, ys + 0.5], -1).to(points.dtype).reshape(-1, 2), H, W)
    tmpl = template.to(points.dtype)
    uv, vis = [], []
    for b in range(B):
        fg = mask[b, 0].reshape(-1) > 0.5
        if not bool(fg.any()):
            raise ValueError(f"mask of image {b} is empty: no pixel to take correspondences from")
        dist, idx = torch.cdist(points[b].reshape(3, -1).T[fg], tmpl).topk(k, largest=False)
        weights = torch.zeros(int(fg.sum()), tmpl.shape[0], dtype=points.dtype)
        weights.scatter_(1, idx, torch.exp(-(dist / sigma) ** 2))
        total = weights.sum(0)
        uv.append(weights.T @ ndc[fg] / total.clamp_min(1e-8)[:, None])
        vis.append((total / (0.2 * total.max()).clamp_min(1e-12)).clamp(max=1.0))
    return torch.stack(uv), torch.stack(vis)
