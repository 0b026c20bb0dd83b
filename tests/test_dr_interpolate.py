"""csmlab.dr.interpolate (PyTorch twin): values, derivatives, broadcasting, gradients, errors."""

import numpy as np
import pytest
import torch
from dr_reference import random_clip_mesh, reference_rasterize

import csmlab.dr as dr
from csmlab.dr.interpolation import interpolate_torch
from csmlab.dr.raster import rasterize_torch


def _reference_interpolate(attr, ref, tri):
    """numpy: sum of barycentrics times vertex attributes; zero on the background."""
    attr = np.asarray(attr, dtype=np.float64)
    out = np.zeros(ref.shape[:3] + (attr.shape[-1],))
    for b in range(ref.shape[0]):
        a = attr[b] if attr.ndim == 3 and attr.shape[0] > 1 else attr.reshape(-1, attr.shape[-1])
        ids = ref[b, ..., 3].astype(int) - 1
        m = ids >= 0
        t = np.asarray(tri)[ids[m]]
        u, v = ref[b, ..., 0][m], ref[b, ..., 1][m]
        out[b][m] = u[:, None] * a[t[:, 0]] + v[:, None] * a[t[:, 1]] + (1 - u - v)[:, None] * a[t[:, 2]]
    return out


def test_values_match_reference_and_background_is_zero():
    pos, tri = random_clip_mesh(seed=11, n_images=2)
    attr = torch.randn(2, pos.shape[1], 5)
    rast, _ = rasterize_torch(pos, tri, (26, 30))
    out, out_da = dr.interpolate(attr, rast, tri)
    assert out.shape == (2, 26, 30, 5) and out_da.shape == (2, 26, 30, 0)
    expected = _reference_interpolate(attr.numpy(), rast.numpy().astype(np.float64), tri.numpy())
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    assert (out[rast[..., 3] == 0] == 0).all()


def test_perspective_correct_interpolation_recovers_pixel_centres():
    # Interpolating the clip-space (x, y, w) of the vertices gives a point whose x/w, y/w
    # is exactly the pixel centre: the barycentrics are perspective-correct.
    pos, tri = random_clip_mesh(seed=12, n_images=1, w_range=(0.3, 3.0), dtype=torch.float64)
    H, W = 20, 24
    rast, rast_db = rasterize_torch(pos, tri, (H, W))
    out, _ = interpolate_torch(pos[..., [0, 1, 3]], rast, tri)
    m = rast[0, ..., 3] > 0
    X = ((2 * torch.arange(W, dtype=torch.float64) + 1) / W - 1).expand(H, W)
    Y = ((2 * torch.arange(H, dtype=torch.float64) + 1) / H - 1)[:, None].expand(H, W)
    assert torch.allclose((out[0, ..., 0] / out[0, ..., 2])[m], X[m], atol=1e-9)
    assert torch.allclose((out[0, ..., 1] / out[0, ..., 2])[m], Y[m], atol=1e-9)


def test_broadcast_and_range_mode_attributes():
    pos, tri = random_clip_mesh(seed=13, n_images=3)
    shared = torch.randn(pos.shape[1], 4)
    rast, _ = rasterize_torch(pos, tri, (16, 16))
    a, _ = interpolate_torch(shared, rast, tri)
    b, _ = interpolate_torch(shared[None], rast, tri)
    c, _ = interpolate_torch(shared[None].expand(3, -1, -1).contiguous(), rast, tri)
    assert torch.equal(a, b) and torch.allclose(a, c)
    # Range mode: attr [V, C] indexed by the global triangle ids in rast.
    ranges = torch.tensor([[0, 25], [25, 35]], dtype=torch.int32)
    rast_r, _ = rasterize_torch(pos[0], tri, (16, 16), ranges=ranges)
    out_r, _ = interpolate_torch(shared, rast_r, tri)
    expected = _reference_interpolate(shared.numpy(), rast_r.numpy().astype(np.float64), tri.numpy())
    np.testing.assert_allclose(out_r.numpy(), expected, atol=1e-5)


def test_out_da_matches_finite_differences_of_the_attribute_plane():
    pos, tri = random_clip_mesh(seed=14, n_images=1, dtype=torch.float64)
    attr = torch.randn(1, pos.shape[1], 3, dtype=torch.float64)
    res = (22, 18)
    rast, rast_db = rasterize_torch(pos, tri, res)
    _, da_all = interpolate_torch(attr, rast, tri, rast_db, diff_attrs="all")
    _, da_sel = interpolate_torch(attr, rast, tri, rast_db, diff_attrs=[2, -3])
    assert da_all.shape == (1, 22, 18, 6)
    assert torch.equal(da_sel, torch.cat([da_all[..., 4:6], da_all[..., 0:2]], -1))
    # d attr / dX by central differences of u, v from the reference's barycentric derivatives.
    _, ref_db = reference_rasterize(pos.numpy(), tri.numpy(), res)
    ids = rast[0, ..., 3].long() - 1
    m = ids >= 0
    t = tri.long()[ids[m]]
    a = attr[0].numpy()
    dsdu, dsdv = a[t[:, 0]] - a[t[:, 2]], a[t[:, 1]] - a[t[:, 2]]
    db = ref_db[0][m.numpy()]
    expected_dx = db[:, 0:1] * dsdu + db[:, 2:3] * dsdv
    expected_dy = db[:, 1:2] * dsdu + db[:, 3:4] * dsdv
    np.testing.assert_allclose(da_all[0][m][:, 0::2].numpy(), expected_dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(da_all[0][m][:, 1::2].numpy(), expected_dy, rtol=1e-4, atol=1e-5)


def test_gradcheck_wrt_attr_rast_and_rast_db():
    pos, tri = random_clip_mesh(seed=15, n_images=2, n_verts=12, n_faces=8, dtype=torch.float64)
    rast, rast_db = rasterize_torch(pos, tri, (6, 7))
    rast, rast_db = rast.detach(), rast_db.detach()
    assert (rast[..., 3] > 0).float().mean() > 0.3
    attr = torch.randn(2, 12, 3, dtype=torch.float64, requires_grad=True)
    uv = rast[..., :2].clone().requires_grad_()
    db = rast_db.clone().requires_grad_()

    def f(attr, uv, db):
        r = torch.cat([uv, rast[..., 2:]], -1)
        return interpolate_torch(attr, r, tri, db, diff_attrs=[0, 2])

    assert torch.autograd.gradcheck(f, (attr, uv, db), eps=1e-6, atol=1e-7)
    shared = torch.randn(12, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, u: interpolate_torch(a, torch.cat([u, rast[..., 2:]], -1), tri)[0],
                                    (shared, uv), eps=1e-6, atol=1e-7)


def test_rasterize_then_interpolate_gradient_reaches_pos():
    pos, tri = random_clip_mesh(seed=16, n_images=1, n_verts=10, n_faces=6, dtype=torch.float64)
    pos.requires_grad_()
    rast, _ = rasterize_torch(pos, tri, (12, 12))
    out, _ = interpolate_torch(torch.randn(10, 2, dtype=torch.float64), rast, tri)
    out.square().sum().backward()
    assert pos.grad.abs().sum() > 0 and (pos.grad[..., 2] == 0).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(attr=torch.zeros(5)), r"attr must be 2-D or 3-D"),
    (dict(attr=torch.zeros(3, 10, 2)), r"attr must be \[1 or 2, V, C\]"),
    (dict(attr=torch.zeros(10, 2, dtype=torch.float64)), r"attr and rast must share a dtype"),
    (dict(rast=torch.zeros(2, 4, 4, 3)), r"rast must have 4 values in its last dimension"),
    (dict(tri=torch.full((5, 3), 10, dtype=torch.int32)), r"tri must index vertices in \[0, 10\)"),
    (dict(diff_attrs=[0]), r"rast_db .* is required"),
    (dict(diff_attrs=[5], rast_db=torch.zeros(2, 4, 4, 4)), r"diff_attrs entries must lie in"),
    (dict(diff_attrs="some"), r"diff_attrs must be 'all'"),
    (dict(rast=torch.full((2, 4, 4, 4), 9.0)), r"rast holds triangle ids up to 9"),
])
def test_bad_input_raises_value_error(kwargs, match):
    args = dict(attr=torch.zeros(10, 2), rast=torch.zeros(2, 4, 4, 4), tri=torch.zeros(5, 3, dtype=torch.int32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        dr.interpolate(**args)
