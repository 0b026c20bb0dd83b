"""Tests for ``csmlab.dr.antialias_twin`` (the nvdiffrast ``antialias`` twin).

Pixel conventions (nvdiffrast): the centre of pixel column px is at NDC
x = (2 px + 1) / W - 1, i.e. at pixel coordinate (x + 1) W / 2 - 0.5.
"""

import pytest
import torch

from csmlab.dr.antialias_twin import antialias_construct_topology_hash_torch, antialias_torch
from csmlab.dr.raster import rasterize_torch
from csmlab.geometry.mesh import icosphere

# A non-planar quad (two triangles sharing the diagonal 0-2), all vertices in front.
# Coordinates avoid round values, so that no edge passes exactly through a pixel centre
# or a pair midpoint (where the antialiased image has kinks and gradcheck would trip).
QUAD_POS = torch.tensor([[[-0.713, -0.588, 0.1, 1.0], [0.652, -0.457, 0.2, 1.2],
                          [0.613, 0.707, 0.3, 1.0], [-0.507, 0.553, 0.1, 0.9]]], dtype=torch.float64)
QUAD_TRI = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)


def silhouette_image(pos, tri, resolution):
    """Antialiased coverage image: colour 1 on the mesh, 0 on the background."""
    rast, _ = rasterize_torch(pos, tri, resolution)
    color = (rast[..., 3:4] > 0).to(pos.dtype)
    return antialias_torch(color, rast, pos, tri)


def correlation(a, b):
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def far_from_vertices(pos, height, width, min_px):
    """[H*W] mask of pixels farther than min_px from every projected vertex."""
    xy = pos[0, :, :2] / pos[0, :, 3:4]
    px = (xy[:, 0] + 1) * width / 2 - 0.5
    py = (xy[:, 1] + 1) * height / 2 - 0.5
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    dist = ((xx[..., None] - px) ** 2 + (yy[..., None] - py) ** 2).sqrt().min(-1).values
    return (dist > min_px).flatten()


# ----------------------------------------------------------------------------- topology

def test_topology_table_of_a_quad():
    opposite = antialias_construct_topology_hash_torch(QUAD_TRI)
    # Entry [t, i] is the third vertex across the edge opposite vertex i of triangle t.
    # Triangle 0 = (0, 1, 2): only its edge (2, 0), opposite vertex 1, is shared -> vertex 3.
    # Triangle 1 = (0, 2, 3): only its edge (0, 2), opposite vertex 2, is shared -> vertex 1.
    assert opposite.tolist() == [[-1, 3, -1], [-1, -1, 1]]


def test_topology_of_a_closed_mesh_has_no_boundary_and_non_manifold_keeps_two():
    sphere = icosphere(1)
    opposite = antialias_construct_topology_hash_torch(sphere.faces)
    assert (opposite >= 0).all()
    # Three triangles on edge (0, 1): the first two (in order) see each other, the third
    # is treated as a boundary (nvdiffrast's hash stores two opposite vertices per edge).
    tri = torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4]], dtype=torch.int32)
    assert antialias_construct_topology_hash_torch(tri)[:, 2].tolist() == [3, 2, -1]


# ----------------------------------------------------------------------------- forward values

@pytest.mark.parametrize("edge_x, changed_col, expected", [
    # Vertical left edge at NDC x = -0.45 on an 8-pixel-wide image: pixel centres of
    # columns 1 and 2 are at -0.625 and -0.375, i.e. the edge is 0.3 px left of column
    # 2's centre. Column 2's footprint [-0.5, 0.5] px is covered 0.8 by the triangle.
    (-0.45, 2, 0.8),
    # At x = -0.55 the edge is 0.7 px left of column 2's centre: the triangle covers
    # 0.2 of column 1's footprint, and column 2 stays fully covered.
    (-0.55, 1, 0.2),
])
def test_vertical_edge_blend_matches_coverage(edge_x, changed_col, expected):
    pos = torch.tensor([[[edge_x, -0.95, 0.0, 1.0], [0.95, 0.0, 0.0, 1.0], [edge_x, 0.95, 0.0, 1.0]]],
                       dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = rasterize_torch(pos, tri, (8, 8))
    background, fill = 0.25, torch.tensor([1.0, -2.0], dtype=torch.float64)
    color = torch.where(rast[..., 3:4] > 0, fill, torch.full_like(fill, background))
    out = antialias_torch(color, rast, pos, tri)
    row = 3  # NDC y = -0.125: far from the slanted edges at this column
    want = expected * fill + (1 - expected) * background
    torch.testing.assert_close(out[0, row, changed_col], want)
    other = 3 - changed_col  # the other pixel of the pair keeps its colour
    torch.testing.assert_close(out[0, row, other], color[0, row, other])


def test_output_equals_input_away_from_id_changes():
    torch.manual_seed(0)
    rast, _ = rasterize_torch(QUAD_POS, QUAD_TRI, (48, 48))
    color = torch.rand(1, 48, 48, 3, dtype=torch.float64)
    out = antialias_torch(color, rast, QUAD_POS, QUAD_TRI)
    ids = rast[0, :, :, 3]
    touched = torch.zeros(48, 48, dtype=torch.bool)
    dx = ids[:, 1:] != ids[:, :-1]
    dy = ids[1:, :] != ids[:-1, :]
    touched[:, 1:] |= dx
    touched[:, :-1] |= dx
    touched[1:, :] |= dy
    touched[:-1, :] |= dy
    assert torch.equal(out[0][~touched], color[0][~touched])
    assert (out[0][touched] != color[0][touched]).any()  # the silhouette is antialiased


def _near_segment(pos, a, b, size, max_px):
    """[H, W] mask of pixel centres within max_px of the screen segment between vertices a, b."""
    xy = (pos[0, :, :2] / pos[0, :, 3:4] + 1) * size / 2 - 0.5
    yy, xx = torch.meshgrid(torch.arange(size, dtype=pos.dtype), torch.arange(size, dtype=pos.dtype),
                            indexing="ij")
    p = torch.stack([xx, yy], -1)
    d = xy[b] - xy[a]
    t = (((p - xy[a]) @ d) / (d @ d)).clamp(0, 1)
    return ((p - xy[a] - t[..., None] * d).norm(dim=-1) <= max_px)


@pytest.mark.parametrize("folded", [False, True])
def test_shared_edge_blends_only_when_it_is_a_silhouette(folded):
    # Colour = triangle id, so the colour jumps across the shared diagonal (0, 2).
    # Flat quad: the neighbour across the diagonal lies on the other side, so the
    # diagonal is no silhouette and is left alone. Folded quad (vertex 3 moved over the
    # diagonal, and nearer): triangle 1 now covers part of triangle 0 and the diagonal is
    # a silhouette of triangle 1, so it is blended.
    size = 48
    pos = QUAD_POS.clone()
    if folded:
        pos[0, 3] = torch.tensor([0.3, -0.2, -0.5, 1.0], dtype=torch.float64)
    rast, _ = rasterize_torch(pos, QUAD_TRI, (size, size))
    ids = rast[..., 3:4]
    out = antialias_torch(ids.clone(), rast, pos, QUAD_TRI)
    diagonal = _near_segment(pos, 0, 2, size, 1.0)
    others = torch.zeros_like(diagonal)
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 0)]:
        others |= _near_segment(pos, a, b, size, 2.5)
    probe = diagonal & ~others
    assert probe.sum() >= 10
    changed = (out != ids)[0, ..., 0]
    if folded:
        assert changed[probe].sum() >= 5
    else:
        assert not changed[probe].any()


@pytest.mark.parametrize("a_in_front, changed_col", [(True, 4), (False, 3)])
def test_the_nearer_triangle_edge_decides(a_in_front, changed_col):
    # Triangle A has a vertical right edge at x = 0.05, triangle B a vertical left edge at
    # x = -0.2; they overlap in between. Colour = id (A = 1, B = 2), 8 px wide, so pixel
    # centres of columns 2, 3, 4 are at x = -0.375, -0.125, 0.125.
    # A in front: the boundary is A's edge, 0.7 px right of column 3: column 4's footprint
    # is 0.2 A -> 0.2 * 1 + 0.8 * 2 = 1.8. B in front: the boundary is B's edge, 0.3 px
    # left of column 3: column 3's footprint is 0.2 A, 0.8 B -> 1.8 as well, in column 3.
    za, zb = (-0.5, 0.5) if a_in_front else (0.5, -0.5)
    pos = torch.tensor([[[-0.95, -0.95, za, 1.0], [0.05, -0.95, za, 1.0], [0.05, 0.95, za, 1.0],
                         [-0.2, -0.95, zb, 1.0], [0.95, 0.95, zb, 1.0], [-0.2, 0.95, zb, 1.0]]],
                       dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, _ = rasterize_torch(pos, tri, (8, 8))
    row = 3
    expected_ids = [1.0, 1.0, 2.0] if a_in_front else [1.0, 2.0, 2.0]
    assert rast[0, row, 2:5, 3].tolist() == expected_ids
    ids = rast[..., 3:4]
    out = antialias_torch(ids.clone(), rast, pos, tri)
    torch.testing.assert_close(out[0, row, changed_col, 0], torch.tensor(1.8, dtype=torch.float64))
    unchanged = [c for c in (2, 3, 4) if c != changed_col]
    torch.testing.assert_close(out[0, row, unchanged, 0], ids[0, row, unchanged, 0])


def test_range_mode_equals_instanced_mode():
    rast, _ = rasterize_torch(QUAD_POS, QUAD_TRI, (24, 24))
    color = torch.rand(1, 24, 24, 2, dtype=torch.float64)
    instanced = antialias_torch(color, rast, QUAD_POS, QUAD_TRI)
    ranged = antialias_torch(color, rast, QUAD_POS[0], QUAD_TRI)
    torch.testing.assert_close(instanced, ranged)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("vertex", [0, 1, 2, 3])
@pytest.mark.parametrize("axis", [0, 1])
def test_moving_vertex_finite_difference_correlates_with_autograd(vertex, axis):
    size = 64
    direction = torch.zeros_like(QUAD_POS)
    direction[0, vertex, axis] = 1.0

    def image(p):
        return silhouette_image(p, QUAD_TRI, (size, size))

    _, analytic = torch.autograd.functional.jvp(image, QUAD_POS, direction)
    assert analytic.abs().sum() > 1.0  # the vertex really moves the silhouette
    for step_px, min_corr, keep in [
        (0.05, 0.9, None),  # whole image, tiny step
        (0.1, 0.95, far_from_vertices(QUAD_POS, size, size, 2.0)),  # away from corners
    ]:
        h = step_px * 2 / size
        fd = (image(QUAD_POS + h * direction) - image(QUAD_POS - h * direction)) / (2 * h)
        if keep is None:
            corr = correlation(fd, analytic)
        else:
            corr = correlation(fd.flatten()[keep], analytic.flatten()[keep])
        assert corr > min_corr, (step_px, corr)


def test_sphere_silhouette_loss_gradient_matches_finite_difference():
    # A closed mesh: silhouettes come from the topology (front/back facing neighbours).
    torch.manual_seed(3)
    sphere = icosphere(1)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    v = sphere.verts.double() @ rot.T
    depth = 3.0 - v[:, 2]
    pos = torch.stack([1.7 * v[:, 0], 1.7 * v[:, 1], (depth - 2.0) / 2.0 * depth, depth], 1)[None]
    tri = sphere.faces.to(torch.int32)
    weights = torch.randn(1, 64, 64, 1, dtype=torch.float64)

    def loss(p):
        return (silhouette_image(p, tri, (64, 64)) * weights).sum()

    p = pos.clone().requires_grad_(True)
    loss(p).backward()
    grad = p.grad
    top = torch.argsort(grad[0, :, :2].norm(dim=1), descending=True)[:3]
    # A step far below a pixel: the test checks the derivative of the piecewise smooth
    # image. (Across pixel-centre crossings near tiny silhouette triangles the image
    # jumps, exactly as nvdiffrast's does: only the front pixel's triangle is examined.)
    h = 1e-6
    for vi in top.tolist():
        for axis in (0, 1):
            e = torch.zeros_like(pos)
            e[0, vi, axis] = 1.0
            fd = (loss(pos + h * e) - loss(pos - h * e)) / (2 * h)
            assert abs(fd - grad[0, vi, axis]) <= 0.05 * grad[0, vi, :2].norm() + 1e-6


def test_gradcheck_wrt_color_and_pos_with_fixed_rast():
    rast, _ = rasterize_torch(QUAD_POS, QUAD_TRI, (20, 20))
    gen = torch.Generator().manual_seed(4)
    color = torch.rand(1, 20, 20, 2, dtype=torch.float64, generator=gen).requires_grad_(True)
    pos = QUAD_POS.clone().requires_grad_(True)

    def f(c, p):
        return antialias_torch(c, rast, p, QUAD_TRI)

    # fast_mode compares random projections of the Jacobians (seconds instead of a minute).
    assert torch.autograd.gradcheck(f, (color, pos), eps=1e-7, atol=1e-5, fast_mode=True)
    assert torch.autograd.gradcheck(lambda p: f(color.detach(), p), (pos,), eps=1e-7, atol=1e-5)


def test_pos_gradient_boost_scales_pos_gradient_only():
    rast, _ = rasterize_torch(QUAD_POS, QUAD_TRI, (24, 24))
    color = torch.rand(1, 24, 24, 1, dtype=torch.float64)
    grads = []
    for boost in (1.0, 3.0):
        c = color.clone().requires_grad_(True)
        p = QUAD_POS.clone().requires_grad_(True)
        out = antialias_torch(c, rast, p, QUAD_TRI, pos_gradient_boost=boost)
        (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append((c.grad, p.grad, out.detach()))
    torch.testing.assert_close(grads[1][2], grads[0][2])
    torch.testing.assert_close(grads[1][0], grads[0][0])
    torch.testing.assert_close(grads[1][1], 3.0 * grads[0][1])
    assert grads[0][1].abs().sum() > 0


def test_precomputed_topology_gives_the_same_result():
    rast, _ = rasterize_torch(QUAD_POS, QUAD_TRI, (24, 24))
    color = torch.rand(1, 24, 24, 3, dtype=torch.float64)
    topo = antialias_construct_topology_hash_torch(QUAD_TRI)
    torch.testing.assert_close(antialias_torch(color, rast, QUAD_POS, QUAD_TRI, topology_hash=topo),
                               antialias_torch(color, rast, QUAD_POS, QUAD_TRI))


# ----------------------------------------------------------------------------- validation

def test_bad_inputs_raise_value_error_naming_the_argument():
    rast, _ = rasterize_torch(QUAD_POS, QUAD_TRI, (8, 8))
    color = torch.rand(1, 8, 8, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="color"):
        antialias_torch(color[0], rast, QUAD_POS, QUAD_TRI)
    with pytest.raises(ValueError, match="rast"):
        antialias_torch(color, rast[:, :4], QUAD_POS, QUAD_TRI)
    with pytest.raises(ValueError, match="pos"):
        antialias_torch(color, rast, QUAD_POS[..., :3], QUAD_TRI)
    with pytest.raises(ValueError, match="pos"):
        antialias_torch(color, rast, QUAD_POS.float(), QUAD_TRI)
    with pytest.raises(ValueError, match="tri"):
        antialias_torch(color, rast, QUAD_POS, QUAD_TRI.float())
    with pytest.raises(ValueError, match="tri"):
        antialias_torch(color, rast, QUAD_POS, QUAD_TRI + 10)
    with pytest.raises(ValueError, match="triangle ids"):
        antialias_torch(color, rast, QUAD_POS, QUAD_TRI[:1])
    with pytest.raises(ValueError, match="topology_hash"):
        antialias_torch(color, rast, QUAD_POS, QUAD_TRI, topology_hash=torch.zeros(5, 3))


def test_output_stays_in_the_graph_when_nothing_is_blended():
    # A 1x1 image has no pixel pairs: nvdiffrast still returns a differentiable result
    # (zero gradient), so a training step's backward() must not fail.
    from csmlab import dr
    pos = torch.tensor([[[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, 1]]], requires_grad=True)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = dr.rasterize(dr.RasterizeContext(), pos, tri, [1, 1])
    out = dr.antialias((rast[..., 3:4] > 0).float(), rast, pos, tri)
    assert out.requires_grad
    out.sum().backward()
    assert torch.equal(pos.grad, torch.zeros_like(pos))
