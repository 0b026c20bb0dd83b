"""``csmlab.dr.DepthPeeler`` (the twin on CPU): nvdiffrast's depth-peeling semantics."""

import pytest
import torch

import csmlab.dr as dr
from csmlab.dr.raster import rasterize_torch

torch.set_num_threads(1)
RES = (16, 20)


def _quad(x0, x1, y0, y1, z):
    return [[x0, y0, z, 1.0], [x1, y0, z, 1.0], [x1, y1, z, 1.0], [x0, y1, z, 1.0]]


QUAD_TRI = [[0, 1, 2], [0, 2, 3]]


def test_second_layer_of_two_overlapping_quads_is_the_far_quad():
    near, far = _quad(-0.8, 0.6, -0.7, 0.5, 0.1), _quad(-0.5, 0.9, -0.9, 0.8, 0.5)
    pos = torch.tensor([near + far], dtype=torch.float64, requires_grad=True)
    tri = torch.tensor(QUAD_TRI + [[a + 4, b + 4, c + 4] for a, b, c in QUAD_TRI], dtype=torch.int32)
    ctx = dr.RasterizeCudaContext(device="cpu")
    with dr.DepthPeeler(ctx, pos, tri, RES) as peeler:
        layers = [peeler.rasterize_next_layer() for _ in range(3)]
    far_alone, far_db = rasterize_torch(pos[:, 4:], tri[:2], RES)
    near_alone, _ = rasterize_torch(pos[:, :4], tri[:2], RES)
    both = (near_alone[..., 3] > 0) & (far_alone[..., 3] > 0)
    assert both.sum() > 20 and (far_alone[..., 3] > 0).sum() > both.sum()
    # layer 0 is rasterize itself
    full, _ = rasterize_torch(pos, tri, RES)
    torch.testing.assert_close(layers[0][0], full)
    # layer 1: the far quad where the near one covered it, ids shifted by the near quad's 2
    rast1, db1 = layers[1]
    expected = far_alone.clone()
    expected[..., 3] = torch.where(far_alone[..., 3] > 0, far_alone[..., 3] + 2, 0.0)
    expected = expected * both.unsqueeze(-1)
    torch.testing.assert_close(rast1, expected)
    torch.testing.assert_close(db1, far_db * both.unsqueeze(-1))
    assert not layers[2][0].any()  # nothing behind the far quad
    # gradients of the peeled layer reach the far quad's vertices only
    g, = torch.autograd.grad((rast1[..., :2] * torch.rand_like(rast1[..., :2])).sum(), pos)
    assert g[0, 4:].abs().sum() > 0 and not g[0, :4].any()


def _soup(seed, n_tri=12, batch=2):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, 3 * n_tri, 2, generator=gen, dtype=torch.float64) * 2.2 - 1.1
    z = torch.rand(batch, 3 * n_tri, 1, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    w = 1.0 + torch.rand(batch, 3 * n_tri, 1, generator=gen, dtype=torch.float64) * 0.5
    pos = torch.cat([xy * w, z * w, w], -1)
    tri = torch.arange(3 * n_tri, dtype=torch.int32).view(n_tri, 3)
    return pos, tri


@pytest.mark.parametrize("seed", [0, 1])
def test_peeling_order_on_random_soups_matches_sorted_fragments(seed):
    pos, tri = _soup(seed)
    ctx = dr.RasterizeContext("cpu")
    n_layers = tri.shape[0] + 1
    with dr.DepthPeeler(ctx, pos, tri, RES) as peeler:
        layers = [peeler.rasterize_next_layer()[0] for _ in range(n_layers)]
    # Reference: every triangle alone, then per pixel its fragments sorted by (z, id).
    alone = torch.stack([rasterize_torch(pos, tri[i:i + 1], RES)[0] for i in range(tri.shape[0])])
    covered = alone[..., 3] > 0                                         # [F, B, H, W]
    z = torch.where(covered, alone[..., 2], torch.inf)
    ids = torch.arange(tri.shape[0], dtype=torch.float64).view(-1, 1, 1, 1).expand_as(z)
    order = torch.argsort(z + ids * 1e-12, dim=0)  # z ties (none here) to the lower id
    depth_complexity = covered.sum(0)
    assert depth_complexity.max() >= 3  # the soup really overlaps
    for k, rast in enumerate(layers):
        pick = order[k:k + 1] if k < tri.shape[0] else None
        has = depth_complexity > k
        assert torch.equal(rast[..., 3] > 0, has)
        if pick is None:
            continue
        want_id = (pick[0] + 1).to(rast.dtype)
        assert torch.equal(rast[..., 3][has], want_id[has])
        want = torch.gather(alone, 0, pick.unsqueeze(-1).expand(1, *alone.shape[1:]))[0]
        torch.testing.assert_close(rast[..., :3][has], want[..., :3][has])
        if k:
            assert bool((rast[..., 2][has] > layers[k - 1][..., 2][has]).all())


def test_range_mode_and_misuse():
    pos, tri = _soup(3, batch=1)
    ranges = torch.tensor([[0, 7], [5, 7]], dtype=torch.int32)
    ctx = dr.RasterizeContext("cpu")
    with dr.DepthPeeler(ctx, pos[0], tri, RES, ranges=ranges) as peeler:
        first = peeler.rasterize_next_layer()[0]
        second = peeler.rasterize_next_layer()[0]
        with pytest.raises(RuntimeError, match="multiple"):
            dr.DepthPeeler(ctx, pos[0], tri, RES, ranges=ranges).__enter__()
    torch.testing.assert_close(first, rasterize_torch(pos[0], tri, RES, ranges=ranges)[0])
    assert second[..., 3].max() <= 12 and second[1][..., 3][second[1][..., 3] > 0].min() >= 6
    assert bool((second[..., 2][second[..., 3] > 0] > first[..., 2][second[..., 3] > 0]).all())
    peeler = dr.DepthPeeler(ctx, pos, tri, RES)
    with pytest.raises(RuntimeError, match="inside"):
        peeler.rasterize_next_layer()
    with pytest.raises(ValueError, match="glctx"):
        dr.DepthPeeler("ctx", pos, tri, RES)
