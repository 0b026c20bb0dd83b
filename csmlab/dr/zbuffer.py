"""Triangle setup and visibility for the PyTorch twin (which triangle owns each pixel).

Method: homogeneous 2D rasterization (Olano & Greer 1997). In pixel units (the
centre of column ``px`` at X = px, of row ``py`` at Y = py) a vertex is the
homogeneous point ``(Xw, Yw, w)``. Relative to a per-triangle origin
``(ox, oy)`` (the corner of its bounding box) the three *edge functions*

    e_i(dx, dy) = A_i dx + B_i dy + C_i,   (i, j, k) cyclic,
    A_i = w_k y_j - w_j y_k,  B_i = w_j x_k - w_k x_j,  C_i = x_j y_k - x_k y_j,

(with x = Xw - ox w, y = Yw - oy w) are the adjugate rows of the 3x3 matrix of the
vertices, and ``e / sum(e)`` are the perspective-correct barycentrics. After
multiplying the ``e_i`` by the sign of the determinant, a pixel centre is covered
exactly when ``e_0, e_1, e_2 >= 0``: this also rejects the part of the plane where
the interpolated w would be <= 0 (an "external" triangle), so triangles crossing
w = 0 behave like clipped ones with no special case. ``z/w = sum(e_i z_i) / |det|``
is affine in the pixel (a depth plane). Pixels whose z/w falls outside [-1, 1]
are dropped, which is what clipping at the near and far planes does.

Speed: visibility needs no gradient, so the per-candidate work is plain float32
on small integers, in large element-wise operations along a long contiguous axis
(no per-candidate gathers, no Python loop over triangles; PyTorch on CPU is slow at
short inner axes, broadcasting a column and gathers, and fast at long same-shape
element-wise work). All boxes are covered by square t x t tiles, t a power of two
chosen per call by a cost model (8 for a 1280-face sphere at 128x128): a box of at
most 2t x 2t gets a fixed grid of at most 2 x 2 tiles, larger boxes more, and tiles
that a conservative corner test shows outside the triangle are dropped. Tiles are
shifted inside the image, so no bounds test is needed. The candidates of all tiles
are evaluated as [t, t, tiles] arrays, and the z-buffer is one
``scatter_reduce_(amin)`` on an int64 key whose high half holds the float bits of
z/w + 1 (non-negative, hence ordered like integers; INT32_MAX where the candidate
is not covered) and whose low half holds the triangle index: the nearest triangle
wins and depth ties go to the lower index, deterministically. The depth test thus
resolves z/w to float32 precision of z/w + 1 (about 1.2e-7, like a 24-bit depth
buffer); the z/w written to ``rast`` is computed separately in float64. At most
``max_candidates`` (pixel, triangle) pairs are held at once.
"""

from __future__ import annotations

import sys

import torch

MAX_TILE = 32
# Work of setting up one tile, in units of one pixel test (measured, see benchmarks/raster.py).
TILE_OVERHEAD = 24
DEFAULT_MAX_CANDIDATES = 1 << 21
# |det| of the vertex matrix, rows (vertices) then columns (x, y, w) scaled to unit norm, below this
# counts as a zero-area triangle. Scaling both ways keeps the test independent of the homogeneous
# scale of each vertex and of the triangle's size: a screen-covering triangle with |x/w| = 1e9 is
# not "degenerate" merely because its x and y dwarf its w.
DEGENERATE_RTOL = 1e-9
# Bounding boxes grow by this many pixels, so rounding never drops a covered pixel centre.
BBOX_EPS = 1e-3
_NEXT, _PREV = [1, 2, 0], [2, 0, 1]


def triangle_setup(verts_t: torch.Tensor, H: int, W: int) -> dict:
    """Bounding boxes, culling and edge-function coefficients of N triangles.

    All per-triangle arrays put the triangle axis last, so that every operation runs
    along a long contiguous axis (PyTorch is slow at reducing short inner axes).

    Args:
        verts_t: [3, 4, N] float64 clip-space vertices (vertex, coordinate, triangle);
            may require grad.
    Returns a dict with
        keep: [N] bool, triangles that may cover a pixel centre (not culled, not degenerate);
        box: [4, N] int64 (x0, y0, x1, y1), inclusive pixel bounds; (x0, y0) is the origin;
        abc: [9, N] rows (A_0, A_1, A_2, B_0, B_1, B_2, C_0, C_1, C_2), differentiable wrt
             ``verts_t`` (sign not normalised: u = e_0 / sum(e) does not need it);
        sign: [N] the determinant's sign (+1 or -1);
        depth: [3, N] (dz/dX, dz/dY, z/w at the origin), no grad.
    """
    x, y, z, w = verts_t.unbind(1)                           # each [3, N]
    with torch.no_grad():
        xd, yd, zd, wd = x.detach(), y.detach(), z.detach(), w.detach()
        # A triangle entirely beyond one clip plane covers nothing (this also drops
        # triangles whose three w are <= 0).
        beyond = torch.stack([xd - wd, -xd - wd, yd - wd, -yd - wd, zd - wd, -zd - wd, -wd])
        outside = (beyond > 0).all(1).any(0)
        all_front = (wd > 0).all(0)
        safe_w = torch.where(all_front, wd, 1.0)
        X = (xd * (W / 2) + wd * ((W - 1) / 2)) / safe_w
        Y = (yd * (H / 2) + wd * ((H - 1) / 2)) / safe_w
        # A vertex at w <= 0 makes the projected region unbounded: use the whole image.
        x0 = torch.where(all_front, torch.ceil(X.amin(0) - BBOX_EPS).clamp(min=0), 0.0)
        y0 = torch.where(all_front, torch.ceil(Y.amin(0) - BBOX_EPS).clamp(min=0), 0.0)
        x1 = torch.where(all_front, torch.floor(X.amax(0) + BBOX_EPS).clamp(max=W - 1), W - 1.0)
        y1 = torch.where(all_front, torch.floor(Y.amax(0) + BBOX_EPS).clamp(max=H - 1), H - 1.0)
        keep = ~outside & (x1 >= x0) & (y1 >= y0)

    # Edge functions relative to the box corner: small numbers, good precision.
    xt = x * (W / 2) + w * ((W - 1) / 2 - x0)
    yt = y * (H / 2) + w * ((H - 1) / 2 - y0)
    xj, xk, yj, yk, wj, wk = xt[_NEXT], xt[_PREV], yt[_NEXT], yt[_PREV], w[_NEXT], w[_PREV]
    abc = torch.cat([wk * yj - wj * yk, wj * xk - wk * xj, xj * yk - xk * yj])   # [9, N]

    with torch.no_grad():
        a, b, c = abc.detach().view(3, 3, -1).unbind(0)
        det = (c * wd).sum(0)                    # sum_i e_i w_i: the same at every pixel
        rows = (xt.detach().square() + yt.detach().square() + wd.square()).sqrt().clamp_min(1e-300)   # [3, N]
        cols = torch.stack([(v / rows).square().sum(0).sqrt() for v in (xt.detach(), yt.detach(), wd)])
        keep &= det.abs() > DEGENERATE_RTOL * rows.prod(0) * cols.prod(0)
        sign = torch.where(det < 0, -1.0, 1.0).to(det)
        inv_det = 1.0 / torch.where(keep, det, 1.0)
        depth = torch.stack([(a * zd).sum(0), (b * zd).sum(0), (c * zd).sum(0)]) * inv_det
    box = torch.stack([x0, y0, x1, y1]).long()
    return dict(keep=keep, box=box, abc=abc, sign=sign, depth=depth)


def _choose_tile(bw: torch.Tensor, bh: torch.Tensor, H: int, W: int) -> int:
    """The square tile side (a power of two that fits the image) with the least
    estimated work: tiles x (pixels per tile + a per-tile overhead)."""
    best, best_cost, t = 1, None, 1
    while t <= min(MAX_TILE, H, W):
        tiles = int((((bw + t - 1) // t) * ((bh + t - 1) // t)).sum())
        cost = tiles * (t * t + TILE_OVERHEAD)
        if best_cost is None or cost < best_cost:
            best, best_cost = t, cost
        t *= 2
    return best


def zbuffer(setup: dict, image_of_tri: torch.Tensor, n_images: int, H: int, W: int,
            max_candidates: int = DEFAULT_MAX_CANDIDATES) -> torch.Tensor:
    """The winning triangle of every pixel: [n_images * H * W] int64 index into the
    triangles given to :func:`triangle_setup`, -1 where nothing is drawn."""
    device = image_of_tri.device
    zbuf = torch.full((n_images * H * W,), _EMPTY_KEY, dtype=torch.int64, device=device)
    kept = setup["keep"].nonzero().squeeze(1)
    if kept.numel():
        tiles = _make_tiles(setup, kept, image_of_tri, H, W)
        if tiles is not None:
            _draw(zbuf, *tiles, W, max_candidates)
    return torch.where(zbuf < _UNCOVERED_FROM, zbuf & 0xFFFFFFFF, -1)


def _make_tiles(setup, kept, image_of_tri, H, W):
    """Cover each kept triangle's box with t x t tiles, drop tiles the triangle misses.

    Boxes of at most 2t x 2t pixels (the common case) get a fixed grid of 2 x 2 tiles
    (1 tile when every box fits in one), built with broadcasting; larger boxes are split
    with ``repeat_interleave``.
    Returns (t, triangle index [n], pixel index of the tile origins [n], and the rows
    (e_0, e_1, e_2, z/w + 1) of the plane coefficients as three float32 [4, n] arrays:
    d/dX, d/dY and the value at the tile origin), tiles sorted by pixel index; or None.
    """
    x0, y0, x1, y1 = setup["box"].index_select(1, kept)
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    t = _choose_tile(bw, bh, H, W)
    # Offsets of the tiles that cover a box of at most 2t x 2t pixels (one tile if all fit in one).
    one = bool(((bw <= t) & (bh <= t)).all())
    grid = torch.tensor([[0, 0]] if one else [[0, 0], [t, 0], [0, t], [t, t]], device=kept.device)
    n_slots = grid.shape[0]
    small = (bw <= 2 * t) & (bh <= 2 * t)
    if bool(small.all()):
        tri, gx, gy = kept, grid[:, 0, None], grid[:, 1, None]              # tiles [slots, n]
        used = (gx < bw) & (gy < bh)
    else:
        big = (~small).nonzero().squeeze(1)
        ntx, nty = (bw[big] + t - 1) // t, (bh[big] + t - 1) // t
        counts = ntx * nty
        entry = torch.repeat_interleave(big, counts)
        local = torch.arange(entry.numel(), device=kept.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        ntx_e = torch.repeat_interleave(ntx, counts)
        # Small boxes keep their grid slots; each big box's tiles form extra columns (slot 0).
        slot = torch.arange(kept.numel(), device=kept.device)
        tri = torch.cat([slot.expand(n_slots, -1), entry.expand(n_slots, -1)], 1)
        gx = torch.cat([grid[:, 0, None].expand(n_slots, kept.numel()),
                        (local % ntx_e * t).expand(n_slots, -1)], 1)
        gy = torch.cat([grid[:, 1, None].expand(n_slots, kept.numel()),
                        (local // ntx_e * t).expand(n_slots, -1)], 1)
        first_slot = (torch.arange(n_slots, device=kept.device) == 0)[:, None].expand(n_slots, entry.numel())
        used = torch.cat([small.expand(n_slots, -1), first_slot], 1) & (gx < bw[tri]) & (gy < bh[tri])
        x0, y0, tri = x0[tri], y0[tri], kept[tri]
    # Tiles are shifted back inside the image: the coverage test is exact, so evaluating
    # pixels outside the box is harmless, and no bounds test is needed.
    ox, oy = (x0 + gx).clamp(max=W - t), (y0 + gy).clamp(max=H - t)      # [slots, m]
    # Per-tile plane coefficients in float32: tile offsets are small integers.
    table = torch.cat([setup["abc"].detach() * setup["sign"], setup["depth"]]).to(torch.float32)
    tri = tri.view(-1, tri.shape[-1])                # [1, n] (grid slots broadcast) or [slots, m]
    rows = [row.index_select(0, tri.reshape(-1)).view(tri.shape) for row in table]
    a = torch.stack([rows[0], rows[1], rows[2], rows[9]])           # [4, 1 or slots, m]
    b = torch.stack([rows[3], rows[4], rows[5], rows[10]])
    c = torch.stack([rows[6], rows[7], rows[8], rows[11] + 1.0])
    c = c + a * (ox - x0) + b * (oy - y0) + 0.0  # values at the tile origins, [4, slots, m]
    # (+ 0.0 turns -0.0 into +0.0: a -0.0 edge value would read as "outside" by its sign bit)
    # Conservative tile test: each edge function's largest value on the tile, the depth range.
    span = float(t - 1)
    hi = c + (a.clamp(min=0) + b.clamp(min=0)) * span
    lo3 = c[3] + (a[3].clamp(max=0) + b[3].clamp(max=0)) * span
    sel = (used & (hi >= 0).all(0) & (lo3 <= 2)).view(-1).nonzero().squeeze(1)
    if sel.numel() == 0:
        return None
    tri = tri.expand(ox.shape).reshape(-1).index_select(0, sel)
    origin = (image_of_tri.index_select(0, tri) * (H * W)
              + (oy * W + ox).view(-1).index_select(0, sel))
    origin, order = origin.sort()                 # scatter locality: tiles in image order
    sel, tri = sel.index_select(0, order), tri.index_select(0, order)
    a, b, c = (m.expand(c.shape).reshape(4, -1).index_select(1, sel) for m in (a, b, c))
    return t, tri, origin, (a, b, c)


# The key of a candidate is two int32 halves viewed as one int64 (little-endian):
# high = bits of z/w + 1 (non-negative and monotonic for z/w in [-1, 1]) or INT32_MAX
# when not covered; low = triangle index. amin picks the nearest, then the lowest index.
_UNCOVERED_FROM = 0x7FFFFFFF << 32
_EMPTY_KEY = torch.iinfo(torch.int64).max
_HIGH = 1 if sys.byteorder == "little" else 0


def _draw(zbuf, t, tri, origin, coef, W, max_candidates):
    """Evaluate every pixel of every tile and scatter-min the keys into ``zbuf``.

    Arrays are laid out [t, t, tiles] so that every element-wise operation runs along
    the long, contiguous tile axis. ``margin = min(e_0, e_1, e_2, z1, 2 - z1)``
    (z1 = z/w + 1; the last two only when some tile may reach a clip plane) is
    negative exactly for candidates that are not covered; its sign bit, spread to
    INT32_MAX, replaces their depth bits.
    """
    device = zbuf.device
    d = torch.arange(t, device=device, dtype=torch.float32)[:, None]
    pixel_offsets = (torch.arange(t, device=device)[:, None] * W + torch.arange(t, device=device))[..., None]
    step = max(1, max_candidates // (t * t))
    for s in range(0, tri.numel(), step):
        a, b, c = (m[:, s:s + step] for m in coef)                          # [4, n] each
        e0, e1, e2, z1 = ((a[r] * d)[None] + (b[r] * d + c[r])[:, None] for r in range(4))  # [t, t, n]
        margin = torch.minimum(torch.minimum(e0, e1), e2)
        reach = (a[3].abs() + b[3].abs()) * (t - 1)
        if bool(((c[3] - reach) < 0).any() | ((c[3] + reach) > 2).any()):
            margin = torch.minimum(margin, torch.minimum(z1, 2.0 - z1))   # some pixel may clip
        key = torch.empty(margin.shape + (2,), dtype=torch.int32, device=device)
        not_covered = (margin.view(torch.int32) >> 31) & 0x7FFFFFFF
        torch.maximum(z1.view(torch.int32), not_covered, out=key[..., _HIGH])
        key[..., 1 - _HIGH] = tri[s:s + step].to(torch.int32)
        zbuf.scatter_reduce_(0, (origin[s:s + step] + pixel_offsets).view(-1),
                             key.view(torch.int64).view(-1), reduce="amin")
