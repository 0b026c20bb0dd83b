"""A CSM-taught start for TTP's correspondence regressor -- our change, not the authors' recipe.

Why: trained from scratch on CPU, the regressor settles on correspondences whose solved cameras all
sit on the side of its initial view (notebook 03's 120 degree medium result), because no per-image
TTP loss tells a bird seen from azimuth a from its silhouette twin; the authors have an ImageNet
ResNet-18 for that, we have a small CNN. Notebook 02's CSM map, pooled into per-vertex points by
:func:`.dense.surface_map_correspondences`, already gives solved cameras near the truth (34 degrees on
rung B). So :func:`pretrain_regressor` fits TTP's regressor to those points and visibilities on the
*training* images (no camera, keypoint or shape label is read), and TTP's own objective takes over.
Nothing in the authors' code does this; the course labels it as ours.

``flip`` (with ``vertex_flip``, the template's mirror partner of each vertex): every other step the
batch is mirrored left-right, and so are its targets -- vertex i of the mirrored image sits where its
partner was, with x negated (the birds are mirror-symmetric). It is the authors' ``--flip_train``
(``mirror_image`` in ``data/base.py``) applied to the teacher's targets: twice the views, and one
left/right labelling for a bird and its mirror image.
"""

from __future__ import annotations

import torch

from .dense import surface_map_correspondences
from .model import TTPNet


def teacher_correspondences(csm_file, images: torch.Tensor, masks: torch.Tensor, category, k: int = 8,
                            sigma: float = 0.05, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """([N,V,2] NDC points, [N,V] visibilities) from CSM's pretrained surface map on [N,3,H,W] images."""
    from csmlab.methods import csm

    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N,3,H,W], got "
                         f"{list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not isinstance(masks, torch.Tensor) or masks.shape != (images.shape[0], 1, *images.shape[-2:]):
        raise ValueError(f"masks must be [N,1,H,W] matching images, got "
                         f"{list(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__}")
    model, info = csm.load_pretrained(csm_file, category)
    res = int(info["cfg"]["resolution"])
    if images.shape[-1] != res:
        raise ValueError(f"images must be at the CSM file's resolution {res}, got {images.shape[-1]}")
    template = category.template.verts.float()
    uv, vis = [], []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            pts = csm.predict(model, images[i:i + batch_size])["points"]
            u, v = surface_map_correspondences(pts, masks[i:i + batch_size], template, k, sigma)
            uv.append(u)
            vis.append(v)
    return torch.cat(uv), torch.cat(vis)


def teacher_loss(out: dict, uv: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Visibility-weighted squared point error plus the visibility MSE (both means)."""
    err = ((out["points"] - uv) ** 2).sum(-1)
    return (vis * err).sum() / vis.sum().clamp_min(1e-8) + ((out["visibility"] - vis) ** 2).mean()


def mirror_targets(uv: torch.Tensor, vis: torch.Tensor, vertex_flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-vertex (uv [B,V,2] NDC, vis [B,V]) of the left-right mirrored images: partner's, x negated."""
    if vertex_flip.shape != (uv.shape[1],):
        raise ValueError(f"vertex_flip must be [{uv.shape[1]}], got {list(vertex_flip.shape)}")
    idx = vertex_flip.long().to(uv.device)
    return uv[:, idx] * torch.tensor([-1.0, 1.0], dtype=uv.dtype, device=uv.device), vis[:, idx]


def pretrain_regressor(model: TTPNet, images: torch.Tensor, uv: torch.Tensor, vis: torch.Tensor, iters: int,
                       batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                       vertex_flip: torch.Tensor | None = None) -> list[float]:
    """Fit the encoder and head of ``model`` to the teacher's (uv, vis) for ``iters`` Adam steps; the losses.

    ``vertex_flip`` (None: no mirroring): mirror every other batch, images and targets (module docstring)."""
    if not isinstance(model, TTPNet):
        raise ValueError(f"model must be a TTPNet, got {type(model).__name__}")
    n = images.shape[0]
    if uv.shape != (n, model.n_verts, 2) or vis.shape != (n, model.n_verts):
        raise ValueError(f"uv must be [{n},{model.n_verts},2] and vis [{n},{model.n_verts}], got "
                         f"{list(uv.shape)} and {list(vis.shape)}")
    if int(iters) < 0 or int(batch_size) < 1:
        raise ValueError(f"iters must be >= 0 and batch_size >= 1, got {iters}, {batch_size}")
    params = list(model.encoder.parameters()) + list(model.head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(int(seed) + 11)
    device = model.template.device
    losses = []
    model.train()
    for _ in range(int(iters)):
        idx = torch.randint(n, (min(batch_size, n),), generator=gen)
        img, u, v = images[idx].to(device), uv[idx].to(device), vis[idx].to(device)
        if vertex_flip is not None and len(losses) % 2:
            img, (u, v) = img.flip(-1), mirror_targets(u, v, vertex_flip)
        out = model.correspondences(img)
        loss = teacher_loss(out, u, v)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
