"""csmlab.dr.rasterize (PyTorch twin) against a brute-force reference and nvdiffrast's conventions."""

import warnings

import numpy as np
import pytest
import torch
from dr_reference import compare_to_reference, random_clip_mesh, reference_rasterize

import csmlab.dr as dr
from csmlab.dr.raster import rasterize_torch

CTX = dr.RasterizeCudaContext(device="cpu")


def _check_against_reference(pos, tri, res, ranges=None, **kw):
    rast, rast_db = rasterize_torch(pos, tri, res, ranges=ranges, **kw)
    ref, ref_db = reference_rasterize(pos.numpy(), tri.numpy(), res,
                                      None if ranges is None else ranges.numpy())
    match, uv_err, z_err = compare_to_reference(rast.numpy(), ref)
    assert match >= 0.999, f"triangle ids match on only {match:.4%} of pixels"
    assert uv_err < 1e-5 and z_err < 1e-5, (uv_err, z_err)
    both = (rast[..., 3].numpy() == ref[..., 3]) & (ref[..., 3] > 0)
    db_err = np.abs(rast_db.numpy() - ref_db)[both] / (1 + np.abs(ref_db[both]))
    assert db_err.max() < 1e-3, db_err.max()
    assert not torch.isnan(rast).any() and not torch.isnan(rast_db).any()
    return rast, ref


@pytest.mark.parametrize("case", [
    dict(seed=0),                                            # overlapping, partly off-screen, B=2
    dict(seed=1, spread=3.0, n_faces=80),                    # mostly off-screen, large triangles
    dict(seed=2, w_range=(-0.6, 1.5)),                       # vertices behind the eye (w <= 0)
    dict(seed=3, z_range=(-1.6, 1.6), n_images=3),           # near/far clipping, B=3
])
def test_matches_reference_on_random_meshes(case):
    pos, tri = random_clip_mesh(**case)
    rast, ref = _check_against_reference(pos, tri, (37, 45))
    assert (ref[..., 3] > 0).mean() > 0.2                    # the scene really covers pixels


def test_w_crossing_zero_is_clipped_not_garbage():
    # One vertex behind the eye: the visible part is the region where interpolated w > 0.
    pos = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.2, 0.6, 0.3, -0.5]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, ref = _check_against_reference(pos, tri, (32, 32))
    covered = rast[..., 3] > 0
    assert 0 < covered.float().mean() < 1
    # Every covered pixel has barycentrics inside the triangle and a finite depth.
    assert (rast[..., :2][covered] >= 0).all() and (rast[..., :2][covered].sum(-1) <= 1 + 1e-6).all()


def test_degenerate_triangles_cover_nothing():
    # Exactly collinear vertices whose line passes through pixel centres, and a repeated vertex.
    pos = torch.tensor([[[0.25, 0.5, 0.0, 1.0], [0.5, 0.75, 0.0, 1.0], [0.75, 1.0, 0.0, 1.0],
                         [-0.9, -0.9, 0.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2], [0, 0, 3], [3, 1, 3]], dtype=torch.int32)
    rast, _ = rasterize_torch(pos, tri, (32, 32))
    assert (rast == 0).all()


def test_degenerate_mixed_into_random_mesh():
    pos, tri = random_clip_mesh(seed=4)
    tri = torch.cat([tri, tri[:10, [0, 0, 1]], tri[10:20, [2, 1, 2]]])
    _check_against_reference(pos, tri, (33, 31))


def test_range_mode_matches_instanced():
    pos, tri = random_clip_mesh(seed=5, n_images=1)
    ranges = torch.tensor([[0, 30], [20, 40], [59, 1]], dtype=torch.int32)
    rast, _ = _check_against_reference(pos[0], tri, (24, 28), ranges=ranges)
    # Ids are global indices into tri, as in nvdiffrast.
    inst, _ = rasterize_torch(pos, tri[20:60], (24, 28))
    ids = inst[0, ..., 3]
    assert torch.equal(rast[1, ..., 3], torch.where(ids > 0, ids + 20, ids))


def test_conventions_bottom_up_rows_and_barycentric_order():
    # A triangle in the lower-left half: row 0 (y = -1) must be filled, the top row only at
    # column 0, whose centre (-7/8, 7/8) lies exactly on the hypotenuse x + y = 0.
    pos = torch.tensor([[[-1.0, -1.0, 0.5, 1.0], [1.0, -1.0, 0.5, 1.0], [-1.0, 1.0, 0.5, 1.0]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = dr.rasterize(CTX, pos, tri, resolution=(8, 8))
    ids = rast[0, ..., 3]
    assert ids[0].all() and ids[-1].tolist() == [1.0] + [0.0] * 7
    # Pixel (row 0, col 0) centre is (-7/8, -7/8): u (vertex 0 weight) = 1 - 1/16 - 1/16.
    assert torch.allclose(rast[0, 0, 0, :2], torch.tensor([0.875, 0.0625]), atol=1e-6)
    assert torch.allclose(rast[0, 0, 0, 2], torch.tensor(0.5))
    # Swapping the vertex order swaps u and v (no back-face culling either way).
    rast2, _ = dr.rasterize(CTX, pos, tri[:, [1, 0, 2]], resolution=(8, 8))
    assert torch.allclose(rast2[..., [1, 0]], rast[..., :2])


def test_depth_test_takes_smallest_z_regardless_of_order():
    near = [[-1.0, -1.0, -0.5, 1.0], [3.0, -1.0, -0.5, 1.0], [-1.0, 3.0, -0.5, 1.0]]
    far = [[-1.0, -1.0, 0.5, 1.0], [3.0, -1.0, 0.5, 1.0], [-1.0, 3.0, 0.5, 1.0]]
    pos = torch.tensor([near + far])
    for tri, winner in [([[0, 1, 2], [3, 4, 5]], 1), ([[3, 4, 5], [0, 1, 2]], 2)]:
        rast, _ = rasterize_torch(pos, torch.tensor(tri, dtype=torch.int32), (4, 4))
        assert (rast[..., 3] == winner).all() and torch.allclose(rast[..., 2], torch.tensor(-0.5))


def test_pixels_beyond_far_plane_are_clipped():
    # z/w goes from -0.5 (left) to 1.5 (right): the right part is beyond the far plane.
    pos = torch.tensor([[[-1.0, -3.0, -0.5, 1.0], [1.0, -3.0, 1.5, 1.0], [-1.0, 3.0, -0.5, 1.0],
                         [1.0, 3.0, 1.5, 1.0]]])
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)
    rast, _ = rasterize_torch(pos, tri, (4, 8))
    covered_cols = (rast[0, 0, :, 3] > 0).nonzero().squeeze(1).tolist()
    assert covered_cols == [0, 1, 2, 3, 4, 5]      # z/w at x=(2c+1)/8-1 is <= 1 for c <= 5


def test_chunking_and_tiny_resolutions_give_identical_output():
    pos, tri = random_clip_mesh(seed=6)
    full = rasterize_torch(pos, tri, (30, 34))[0]
    chunked = rasterize_torch(pos, tri, (30, 34), max_candidates=64)[0]
    assert torch.equal(full, chunked)
    for res in [(1, 1), (1, 7), (5, 3)]:
        _check_against_reference(pos, tri, res)


def test_float64_and_int64_inputs():
    pos, tri = random_clip_mesh(seed=7, dtype=torch.float64)
    rast, db = rasterize_torch(pos, tri.long(), (20, 20))
    assert rast.dtype == torch.float64 and db.dtype == torch.float64
    ref, _ = reference_rasterize(pos.numpy(), tri.numpy(), (20, 20))
    match, uv_err, _ = compare_to_reference(rast.numpy(), ref)
    assert match >= 0.999 and uv_err < 1e-10


def _gradcheck_scene():
    # Two overlapping triangles with perspective (w != 1); pixel centres stay > 1e-3 away
    # from every edge, so a 1e-6 finite-difference step never changes coverage.
    pos = torch.tensor([[[-0.7, -0.8, 0.1, 1.0], [0.9, -0.5, 0.2, 1.3], [-0.2, 0.9, 0.3, 0.8],
                         [-0.9, 0.3, -0.2, 1.1], [0.6, 0.7, 0.0, 0.9], [0.1, -0.9, -0.1, 1.2]]],
                       dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    res = (7, 9)
    ref, _ = reference_rasterize(pos.numpy(), tri.numpy(), res)
    return pos, tri, res, ref


def test_gradcheck_barycentrics_and_db_wrt_pos():
    pos, tri, res, ref = _gradcheck_scene()
    assert len(np.unique(ref[..., 3])) == 3                   # background and both triangles
    lam = np.concatenate([ref[..., :2], 1 - ref[..., :2].sum(-1, keepdims=True)], -1)
    assert lam[ref[..., 3] > 0].min() > 1e-3                  # no pixel centre near an edge

    def f(p):
        rast, db = rasterize_torch(p, tri, res)
        return rast[..., :2], db

    assert torch.autograd.gradcheck(f, (pos.requires_grad_(),), eps=1e-6, atol=1e-6)

    def f_no_db(p):
        return rasterize_torch(p, tri, res, grad_db=False)[0][..., :2]

    assert torch.autograd.gradcheck(f_no_db, (pos,), eps=1e-6, atol=1e-6)


def test_depth_and_id_carry_no_gradient_and_grad_db_false_blocks_db():
    pos, tri, res, _ = _gradcheck_scene()
    pos = pos.requires_grad_()
    rast, db = rasterize_torch(pos, tri, res, grad_db=False)
    (rast[..., 2:].sum() + db.sum()).backward()
    assert pos.grad is None or (pos.grad == 0).all()
    # With grad_db the db gradient is non-zero; u, v gradients never touch z.
    pos.grad = None
    rast, db = rasterize_torch(pos, tri, res)
    (rast[..., :2].sum() + db.sum()).backward()
    assert (pos.grad[..., 2] == 0).all() and pos.grad.abs().sum() > 0


@pytest.mark.parametrize("bad, match", [
    (dict(pos=torch.zeros(10, 3)), r"pos must have 4 values in its last dimension"),
    (dict(pos=torch.zeros(1, 2, 10, 4)), r"pos must be 2-D or 3-D"),
    (dict(pos=torch.zeros(1, 10, 4, dtype=torch.float16)), r"pos must have dtype float32 or float64"),
    (dict(tri=torch.zeros(5, 3)), r"tri must have dtype int32 or int64"),
    (dict(tri=torch.tensor([[0, 1, 10]], dtype=torch.int32)), r"tri must index vertices in \[0, 10\)"),
    (dict(pos=torch.full((1, 10, 4), float("nan"))), r"pos must hold finite values only"),
    (dict(resolution=(0, 8)), r"resolution must be a pair of positive ints"),
    (dict(pos=torch.zeros(10, 4)), r"ranges must be given in range mode"),
    (dict(pos=torch.zeros(10, 4), ranges=torch.tensor([[0, 9]])), r"ranges rows"),
    (dict(tri=torch.zeros(5, 3, dtype=torch.int32, device="meta")), r"one device"),
])
def test_bad_input_raises_value_error(bad, match):
    args = dict(pos=torch.zeros(1, 10, 4), tri=torch.zeros(5, 3, dtype=torch.int32), resolution=(8, 8))
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        dr.rasterize(CTX, **args)


def test_context_and_dispatch_on_cpu():
    cpu = "numba" if dr.numba_enabled() else "torch"
    assert dr.backend_for(torch.zeros(1)) == cpu
    assert dr.RasterizeCudaContext().backend == ("nvdiffrast" if dr.nvdiffrast_available() else cpu)
    with pytest.raises(ValueError, match="glctx must be"):
        dr.rasterize(None, torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.int32), (4, 4))


class _LooksLikeCuda(torch.Tensor):
    """A CPU tensor that claims to be on CUDA, to exercise the dispatch without a GPU."""

    @property
    def is_cuda(self):
        return True


def test_cuda_without_nvdiffrast_falls_back_to_twin_and_warns_once(monkeypatch):
    monkeypatch.setattr(dr, "_nvdr_module", False)      # as if `import nvdiffrast.torch` failed
    monkeypatch.setattr(dr, "_warned_missing", False)
    fake = torch.zeros(1).as_subclass(_LooksLikeCuda)
    with pytest.warns(RuntimeWarning, match="pip install diffrp-nvdiffrast"):
        assert dr.backend_for(fake) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # a second warning would raise here
        assert dr.backend_for(fake) == "torch"


@pytest.mark.parametrize("big", [1e7, 1e8, 1e9, 1e12])
def test_a_huge_screen_covering_triangle_covers_every_pixel(big):
    """Issue 20: at |x/w| >= 1e8 the degenerate-triangle test (scale-dependent then) culled it."""
    pos = torch.tensor([[[-big, -big, 0.0, 1.0], [big, -big, 0.0, 1.0], [0.0, big, 0.0, 1.0]]], dtype=torch.float64)
    rast, _ = rasterize_torch(pos, torch.tensor([[0, 1, 2]], dtype=torch.int32), (32, 32))
    assert bool((rast[..., 3] == 1).all())
    u, v = rast[0, 16, 16, 0], rast[0, 16, 16, 1]   # the image centre is the triangle's middle, almost
    assert abs(float(u) - 0.25) < 1e-3 and abs(float(v) - 0.25) < 1e-3
