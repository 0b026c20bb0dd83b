"""``DepthPeeler``: nvdiffrast's depth peeling (rasterizing successive depth layers).

Usage is nvdiffrast's::

    with dr.DepthPeeler(ctx, pos, tri, resolution) as peeler:
        for i in range(num_layers):
            rast, rast_db = peeler.rasterize_next_layer()

Semantics (``nvdiffrast/torch/ops.py``): the first layer is exactly ``rasterize(...)``;
each later layer is the same operation "except that previously reported surface points are
culled away": at every pixel it reports the nearest fragment whose z/w is strictly greater
than the z/w the previous layer reported there, and nothing where the previous layer was
empty or no fragment is left. Outputs, ids (``triangle_id + 1``) and gradients are those of
``rasterize``. On a context backed by nvdiffrast the real ``nvdiffrast.torch.DepthPeeler``
does the work.

How the twin finds layer k >= 1 (exact, but brute force): every triangle is rasterized on its
own (range mode, one single-triangle image each, in chunks that bound memory) by the twin's
``rasterize_torch``, so coverage, clipping and barycentrics follow its rules exactly; a
no-gradient pass keeps, per pixel, the nearest candidate behind the previous layer (ties to
the lower triangle index, as in the twin's z-buffer), then only the winning triangles are
rasterized again with gradients and their pixels gathered. Cost grows like
triangles x pixels, fine for the course's small meshes; use nvdiffrast for large scenes.
"""

from __future__ import annotations

import torch

from csmlab.dr.raster import rasterize_torch

CHUNK_PIXELS = 1 << 22  # single-triangle image pixels rasterized at once


class DepthPeeler:
    """``nvdiffrast.torch.DepthPeeler(glctx, pos, tri, resolution, ranges=None, grad_db=True)``."""

    def __init__(self, glctx, pos, tri, resolution, ranges=None, grad_db=True):
        from csmlab.dr import RasterizeContext  # the context class lives in the package root

        if not isinstance(glctx, RasterizeContext):
            raise ValueError(f"glctx must be a csmlab.dr.RasterizeContext / RasterizeCudaContext, "
                             f"got {type(glctx).__name__}")
        if grad_db is not True and grad_db is not False:
            raise ValueError(f"grad_db must be True or False, got {grad_db!r}")
        grad_db = grad_db and glctx.output_db  # as nvdiffrast: no rast_db gradients without rast_db
        self.raster_ctx, self.pos, self.tri, self.ranges, self.grad_db = glctx, pos, tri, ranges, grad_db
        self.resolution = tuple(resolution)
        self.peeling_idx = None
        self._nvdr = None
        if glctx.nvdr is not None and isinstance(pos, torch.Tensor) and pos.is_cuda:
            from csmlab.dr import _nvdiffrast
            self._nvdr = _nvdiffrast().DepthPeeler(glctx.nvdr, pos, tri, resolution,
                                                   ranges=ranges, grad_db=grad_db)

    def __enter__(self):
        if getattr(self.raster_ctx, "active_depth_peeler", None) is not None:
            raise RuntimeError("Cannot have multiple depth peelers active simultaneously")
        self.raster_ctx.active_depth_peeler = self
        self.peeling_idx = 0
        self._prev = None
        if self._nvdr is not None:
            self._nvdr.__enter__()
        return self

    def __exit__(self, *args):
        if self._nvdr is not None:
            self._nvdr.__exit__(*args)
        self.raster_ctx.active_depth_peeler = None
        self.raster_ctx = self.pos = self.tri = self.ranges = self._prev = None
        self.peeling_idx = None

    def rasterize_next_layer(self):
        """The next depth layer: ``(rast, rast_db)`` as ``rasterize`` returns them."""
        if self.peeling_idx is None or getattr(self.raster_ctx, "active_depth_peeler", None) is not self:
            raise RuntimeError("rasterize_next_layer() must be called inside `with DepthPeeler(...)`")
        if self._nvdr is not None:
            result = self._nvdr.rasterize_next_layer()
        elif self.peeling_idx == 0:
            result = rasterize_torch(self.pos, self.tri, self.resolution, ranges=self.ranges,
                                     grad_db=self.grad_db)
        else:
            result = peel_layer(self.pos, self.tri, self.resolution, self.ranges, self.grad_db, self._prev)
        from csmlab.dr import _without_db

        self._prev = result[0].detach()
        self.peeling_idx += 1
        return _without_db(result, self.raster_ctx)


def _fragments(pos, tri, ranges, n_images):
    """Every (image, triangle) pair that can cover pixels: flat positions [N,4] and, per pair,
    the image, the triangle index (the id rasterize reports) and its rows in ``tri``."""
    tri = tri.long()
    if pos.dim() == 3:  # instanced: image b draws every triangle with pos[b]
        n_v = pos.shape[1]
        image = torch.arange(n_images, device=pos.device).repeat_interleave(tri.shape[0])
        face = torch.arange(tri.shape[0], device=pos.device).repeat(n_images)
        rows = tri.index_select(0, face) + (image * n_v).unsqueeze(1)
        return pos.reshape(-1, 4), image, face, rows
    start, count = ranges[:, 0].long(), ranges[:, 1].long()
    image = torch.arange(n_images, device=pos.device).repeat_interleave(count)
    first = torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    face = torch.arange(image.numel(), device=pos.device) - first + start.index_select(0, image)
    return pos, image, face, tri.index_select(0, face)


def _single_triangle_rasters(flat, rows, resolution, grad_db):
    """rast, rast_db [n, H, W, 4]: triangle ``rows[i]`` alone on image i."""
    n = rows.shape[0]
    ranges = torch.stack([torch.arange(n), torch.ones(n, dtype=torch.long)], 1).to(torch.int32)
    return rasterize_torch(flat, rows, resolution, ranges=ranges, grad_db=grad_db)


def peel_layer(pos, tri, resolution, ranges, grad_db, prev_rast):
    """The layer behind ``prev_rast`` [B,H,W,4] (see the module docstring)."""
    n_images, h, w = prev_rast.shape[:3]
    flat, image, face, rows = _fragments(pos, tri, ranges, n_images)
    prev_z = prev_rast[..., 2].reshape(n_images, -1)
    prev_hit = (prev_rast[..., 3] > 0).reshape(n_images, -1)
    best_z = torch.full((n_images, h * w), float("inf"), dtype=torch.float64, device=pos.device)
    best = torch.full((n_images, h * w), -1, dtype=torch.long, device=pos.device)  # pair index
    chunk = max(1, CHUNK_PIXELS // (h * w))
    with torch.no_grad():
        for s in range(0, rows.shape[0], chunk):
            rast, _ = _single_triangle_rasters(flat, rows[s:s + chunk], resolution, False)
            img = image[s:s + chunk]
            z = rast[..., 2].reshape(len(img), -1).to(torch.float64)
            ok = (rast[..., 3] > 0).reshape(len(img), -1) & prev_hit[img] & (z > prev_z[img])
            z = torch.where(ok, z, torch.full_like(z, float("inf")))
            slot = (img.unsqueeze(1) * (h * w) + torch.arange(h * w, device=z.device)).reshape(-1)
            zmin = torch.full((n_images * h * w,), float("inf"), dtype=torch.float64, device=z.device)
            zmin.scatter_reduce_(0, slot, z.reshape(-1), reduce="amin")
            # among the chunk's nearest candidates, the lowest pair index (= lowest triangle id)
            pair = torch.arange(s, s + len(img), device=z.device).unsqueeze(1).expand_as(z).reshape(-1)
            tied = (z.reshape(-1) == zmin.index_select(0, slot)) & torch.isfinite(z.reshape(-1))
            first = torch.full_like(best.view(-1), rows.shape[0])
            first.scatter_reduce_(0, slot[tied], pair[tied], reduce="amin")
            # earlier chunks hold lower indices, so only a strictly nearer candidate replaces them
            closer = zmin < best_z.view(-1)
            best_z.view(-1)[closer] = zmin[closer]
            best.view(-1)[closer] = first[closer]
    best = best.view(-1)
    taken = (best >= 0).nonzero().squeeze(1)
    owner = best.index_select(0, taken)
    winners, local = torch.unique(owner, return_inverse=True)
    vals = []
    for s in range(0, winners.numel(), chunk):
        pairs = winners[s:s + chunk]
        rast, rast_db = _single_triangle_rasters(flat, rows.index_select(0, pairs), resolution, grad_db)
        mine = ((local >= s) & (local < s + len(pairs))).nonzero().squeeze(1)
        # row of (single-triangle image, pixel) for every output pixel this chunk owns
        src = (local[mine] - s) * (h * w) + taken[mine] % (h * w)
        vals.append((mine, rast.reshape(-1, 4).index_select(0, src), rast_db.reshape(-1, 4).index_select(0, src)))
    out = torch.zeros(n_images * h * w, 4, dtype=pos.dtype, device=pos.device)
    out_db = torch.zeros_like(out)
    if vals:
        mine = torch.cat([m for m, _, _ in vals])
        where = taken.index_select(0, mine)
        val = torch.cat([v for _, v, _ in vals])
        ids = (face.index_select(0, owner.index_select(0, mine)) + 1).to(pos.dtype).unsqueeze(1)
        out = out.index_copy(0, where, torch.cat([val[:, :3], ids], 1))
        out_db = out_db.index_copy(0, where, torch.cat([d for _, _, d in vals]))
    out_db = out_db if grad_db else out_db.detach()
    return out.view(n_images, h, w, 4), out_db.view(n_images, h, w, 4)
