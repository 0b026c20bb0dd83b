"""The compiled (numba) CPU path of csmlab.dr against the brute-force reference, the PyTorch twin and
finite differences; and the twin's own test suites rerun with the compiled functions swapped in."""

import warnings

import numpy as np
import pytest
import torch
from dr_reference import compare_to_reference, random_clip_mesh, reference_rasterize

pytest.importorskip("numba")

import test_dr_antialias as aa_tests  # noqa: E402
import test_dr_interpolate as interp_tests  # noqa: E402
import test_dr_raster as raster_tests  # noqa: E402

import csmlab.dr as dr  # noqa: E402
from csmlab.dr.antialias_compiled import antialias_compiled  # noqa: E402
from csmlab.dr.antialias_twin import antialias_torch  # noqa: E402
from csmlab.dr.interpolate_compiled import interpolate_compiled  # noqa: E402
from csmlab.dr.interpolation import interpolate_torch  # noqa: E402
from csmlab.dr.raster import rasterize_torch  # noqa: E402
from csmlab.dr.raster_compiled import rasterize_compiled  # noqa: E402
from csmlab.geometry.mesh import icosphere  # noqa: E402

SCENES = [
    dict(seed=0),                                            # overlapping, partly off-screen, B=2
    dict(seed=1, spread=3.0, n_faces=80),                    # mostly off-screen, large triangles
    dict(seed=2, w_range=(-0.6, 1.5)),                       # vertices behind the eye (w <= 0)
    dict(seed=3, z_range=(-1.6, 1.6), n_images=3),           # near/far clipping, B=3
    dict(seed=8, n_images=4, n_faces=200),                   # many overlaps
]


@pytest.mark.parametrize("case", SCENES)
def test_parity_with_reference_and_twin_on_random_meshes(case):
    pos, tri = random_clip_mesh(**case)
    res = (37, 45)
    rast, db = rasterize_compiled(pos, tri, res)
    ref, ref_db = reference_rasterize(pos.numpy(), tri.numpy(), res)
    match, uv_err, z_err = compare_to_reference(rast.numpy(), ref)
    assert match >= 0.999 and uv_err < 1e-5 and z_err < 1e-5, (match, uv_err, z_err)
    both = (rast[..., 3].numpy() == ref[..., 3]) & (ref[..., 3] > 0)
    assert (np.abs(db.numpy() - ref_db)[both] / (1 + np.abs(ref_db[both]))).max() < 1e-3
    twin, twin_db = rasterize_torch(pos, tri, res)
    same = rast[..., 3] == twin[..., 3]
    assert same.float().mean() >= 0.999
    m = same & (twin[..., 3] > 0)
    assert (rast - twin)[m][:, :3].abs().max() < 1e-5 and (db - twin_db)[m].abs().max() < 1e-4


def test_range_mode_equals_instanced_and_ids_are_global():
    pos, tri = random_clip_mesh(seed=5, n_images=1)
    ranges = torch.tensor([[0, 30], [20, 40], [59, 1], [10, 0]], dtype=torch.int32)
    rast, db = rasterize_compiled(pos[0], tri, (24, 28), ranges=ranges)
    twin, twin_db = rasterize_torch(pos[0], tri, (24, 28), ranges=ranges)
    assert torch.equal(rast[..., 3], twin[..., 3]) and (rast[3] == 0).all()
    torch.testing.assert_close(rast, twin, atol=1e-5, rtol=0)
    inst, _ = rasterize_compiled(pos, tri[20:60], (24, 28))
    ids = inst[0, ..., 3]
    assert torch.equal(rast[1, ..., 3], torch.where(ids > 0, ids + 20, ids))


def test_gradcheck_rasterize_float64_instanced_and_range_mode():
    pos, tri, res, ref = raster_tests._gradcheck_scene()
    assert len(np.unique(ref[..., 3])) == 3

    def f(p):
        rast, db = rasterize_compiled(p, tri, res)
        return rast[..., :2], db

    assert torch.autograd.gradcheck(f, (pos.clone().requires_grad_(),), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda p: rasterize_compiled(p, tri, res, grad_db=False)[0][..., :2],
                                    (pos.clone().requires_grad_(),), eps=1e-6, atol=1e-6)
    ranges = torch.tensor([[0, 2], [1, 1]], dtype=torch.int32)   # vertices shared by two images

    def f_range(p):
        rast, db = rasterize_compiled(p, tri, res, ranges=ranges)
        return rast[..., :2], db

    assert torch.autograd.gradcheck(f_range, (pos[0].clone().requires_grad_(),), eps=1e-6, atol=1e-6)


def test_gradients_equal_the_twin_on_a_sphere():
    sphere = icosphere(2)
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    v = sphere.verts.double() @ rot.T
    pos = torch.cat([0.8 * v[:, :2], -0.1 * v[:, 2:], torch.ones_like(v[:, :1])], 1)[None].repeat(2, 1, 1)
    pos[1, :, 0] += 0.1
    tri = sphere.faces.to(torch.int32)
    col = torch.rand(2, v.shape[0], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = torch.randn(2, 48, 48, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads = []
    for rasterize, interpolate, antialias in [(rasterize_compiled, interpolate_compiled, antialias_compiled),
                                              (rasterize_torch, interpolate_torch, antialias_torch)]:
        p, c = pos.clone().requires_grad_(), col.clone().requires_grad_()
        rast, db = rasterize(p, tri, (48, 48))
        out = antialias(interpolate(c, rast, tri)[0], rast, p, tri)
        ((out * w).sum() + (db * w[..., :1]).sum()).backward()
        grads.append((out.detach(), p.grad, c.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_gradcheck_interpolate_float64_batched_and_shared_attributes():
    pos, tri = random_clip_mesh(seed=15, n_images=2, n_verts=12, n_faces=8, dtype=torch.float64)
    rast = rasterize_compiled(pos, tri, (6, 7))[0].detach()
    assert (rast[..., 3] > 0).float().mean() > 0.3
    uv = rast[..., :2].clone().requires_grad_()

    def f(a, u):
        return interpolate_compiled(a, torch.cat([u, rast[..., 2:]], -1), tri)[0]

    for attr in (torch.randn(2, 12, 3, dtype=torch.float64), torch.randn(12, 2, dtype=torch.float64),
                 torch.randn(1, 12, 2, dtype=torch.float64)):
        assert torch.autograd.gradcheck(f, (attr.requires_grad_(), uv), eps=1e-6, atol=1e-7)
        torch.testing.assert_close(f(attr, uv), interpolate_torch(attr, rast, tri)[0])


def test_gradcheck_antialias_float64_instanced_and_range_mode():
    pos = aa_tests.QUAD_POS
    rast, _ = rasterize_compiled(pos, aa_tests.QUAD_TRI, (20, 20))
    color = torch.rand(1, 20, 20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def f(c, p):
        return antialias_compiled(c, rast, p, aa_tests.QUAD_TRI)

    assert torch.autograd.gradcheck(f, (color.clone().requires_grad_(), pos.clone().requires_grad_()),
                                    eps=1e-7, atol=1e-5)
    assert torch.autograd.gradcheck(f, (color.clone().requires_grad_(), pos[0].clone().requires_grad_()),
                                    eps=1e-7, atol=1e-5)
    torch.testing.assert_close(f(color, pos), antialias_torch(color, rast, pos, aa_tests.QUAD_TRI))


def test_dispatch_sends_cpu_tensors_to_the_kernels_unless_switched_off(monkeypatch):
    monkeypatch.delenv("CSMLAB_DR_NUMBA", raising=False)
    monkeypatch.delenv("CSMLAB_DR_NO_NUMBA", raising=False)
    assert dr.numba_enabled() and dr.backend_for(torch.zeros(1)) == "numba", "the compiled path is the default"
    assert dr.RasterizeContext(device="cpu").backend == "numba"
    monkeypatch.setattr(dr, "_warned_no_numba", False)
    for var, value in (("CSMLAB_DR_NUMBA", "0"), ("CSMLAB_DR_NO_NUMBA", "1")):
        with monkeypatch.context() as m:
            m.setenv(var, value)
            with warnings.catch_warnings():
                warnings.simplefilter("error")   # a user's choice: no "install numba" warning
                assert dr.backend_for(torch.zeros(1)) == "torch"
                assert dr.RasterizeContext(device="cpu").backend == "torch"
    monkeypatch.setattr(dr, "numba_enabled", lambda: False)   # numba missing, not switched off: one warning
    with pytest.warns(RuntimeWarning, match="pip install numba"):
        assert dr.backend_for(torch.zeros(1)) == "torch"


@pytest.fixture(scope="module")
def quad_silhouette_jacobian():
    """d image / d pos of the antialiased quad silhouette (64 x 64), row by row: one backward pass
    per pixel next to an id change (only those can be blended; all other rows are exactly 0)."""
    size = 64
    pos = aa_tests.QUAD_POS.clone().requires_grad_()
    rast, _ = rasterize_compiled(pos, aa_tests.QUAD_TRI, (size, size))
    out = antialias_compiled((rast[..., 3:4] > 0).double(), rast, pos, aa_tests.QUAD_TRI).flatten()
    ids = rast[0, ..., 3]
    near = torch.zeros(size, size, dtype=torch.bool)
    near[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    near[:, 1:] |= ids[:, :-1] != ids[:, 1:]
    near[:-1] |= ids[:-1] != ids[1:]
    near[1:] |= ids[:-1] != ids[1:]
    jac = torch.zeros(size * size, *pos.shape[1:], dtype=torch.float64)
    for i in near.flatten().nonzero().squeeze(1).tolist():
        (jac[i],) = torch.autograd.grad(out[i], pos, retain_graph=True)
    return jac


@pytest.mark.parametrize("vertex", [0, 1, 2, 3])
@pytest.mark.parametrize("axis", [0, 1])
def test_antialias_finite_difference_correlates_with_the_compiled_gradient(quad_silhouette_jacobian, vertex, axis):
    """The twin's test_moving_vertex_finite_difference_correlates_with_autograd, for the compiled
    backward (whose vjp gives the Jacobian rows; the twin's test uses forward-mode jvp)."""
    size, pos = 64, aa_tests.QUAD_POS
    direction = torch.zeros_like(pos)
    direction[0, vertex, axis] = 1.0
    analytic = quad_silhouette_jacobian[:, vertex, axis]
    assert analytic.abs().sum() > 1.0

    def image(p):
        rast, _ = rasterize_compiled(p, aa_tests.QUAD_TRI, (size, size))
        return antialias_compiled((rast[..., 3:4] > 0).double(), rast, p, aa_tests.QUAD_TRI).flatten()

    for step_px, min_corr, keep in [(0.05, 0.9, None), (0.1, 0.95, aa_tests.far_from_vertices(pos, size, size, 2.0))]:
        h = step_px * 2 / size
        fd = (image(pos + h * direction) - image(pos - h * direction)) / (2 * h)
        keep = torch.ones_like(fd, dtype=torch.bool) if keep is None else keep
        assert aa_tests.correlation(fd[keep], analytic[keep]) > min_corr


def test_antialias_hit_buffers_grow_when_an_image_has_more_hits_than_reserved(monkeypatch):
    """The forward records its hits for the backward in buffers of a guessed size; with room for one hit
    it must retry, larger, and give the same image and gradients."""
    import csmlab.dr.antialias_compiled as aa_compiled

    sphere = icosphere(2)
    pos = torch.cat([0.8 * sphere.verts.double()[:, :2], -0.1 * sphere.verts.double()[:, 2:],
                     torch.ones(sphere.verts.shape[0], 1, dtype=torch.float64)], 1)[None].repeat(2, 1, 1)
    pos[1, :, 0] += 0.2
    tri = sphere.faces.to(torch.int32)
    color = torch.rand(2, 32, 32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    w = torch.randn(2, 32, 32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    rast, _ = rasterize_compiled(pos, tri, (32, 32))
    results = []
    for capacity in (None, 1):
        if capacity is not None:
            monkeypatch.setattr(aa_compiled, "_hit_capacity", lambda H, W, capacity=capacity: capacity)
        c, p = color.clone().requires_grad_(), pos.clone().requires_grad_()
        out = antialias_compiled(c, rast, p, tri)
        (out * w).sum().backward()
        results.append((out.detach(), c.grad, p.grad))
    assert (results[0][0] != color).any(), "the scene must have silhouette hits"
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("where", ["everywhere", "one pixel", "last pixel"])
def test_kernels_find_triangle_ids_beyond_tri_wherever_they_are(where):
    """interpolate and antialias check rast's ids inside their kernels (no separate pass over rast):
    an id > len(tri) must raise wherever it sits, also when it fills the whole image."""
    pos, tri = aa_tests.QUAD_POS, aa_tests.QUAD_TRI
    rast = rasterize_compiled(pos, tri, (6, 5))[0].clone()
    if where == "everywhere":
        rast[..., 3] = 3.0
    else:
        rast[0, 0 if where == "one pixel" else -1, 0 if where == "one pixel" else -1, 3] = 3.0
    color = torch.rand(1, 6, 5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="triangle ids up to 3"):
        antialias_compiled(color, rast, pos, tri)
    with pytest.raises(ValueError, match="triangle ids up to 3"):
        interpolate_compiled(torch.rand(pos.shape[1], 2, dtype=torch.float64), rast, tri)


def test_double_backward_raises_instead_of_returning_zeros():
    pos, tri = random_clip_mesh(seed=0, dtype=torch.float64)
    p = pos.clone().requires_grad_()
    rast, _ = rasterize_compiled(p, tri, (16, 16))
    (g,) = torch.autograd.grad(rast[..., :2].sum(), p, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


# The twin's own suites, rerun with the compiled functions in place of the twin's.
@pytest.fixture
def compiled(monkeypatch):
    for module in (raster_tests, interp_tests, aa_tests):
        if hasattr(module, "rasterize_torch"):
            monkeypatch.setattr(module, "rasterize_torch", rasterize_compiled)
    monkeypatch.setattr(interp_tests, "interpolate_torch", interpolate_compiled)
    monkeypatch.setattr(aa_tests, "antialias_torch", antialias_compiled)


RERUN = [
    (raster_tests, "test_w_crossing_zero_is_clipped_not_garbage", {}),
    (raster_tests, "test_degenerate_triangles_cover_nothing", {}),
    (raster_tests, "test_degenerate_mixed_into_random_mesh", {}),
    (raster_tests, "test_conventions_bottom_up_rows_and_barycentric_order", {}),
    (raster_tests, "test_depth_test_takes_smallest_z_regardless_of_order", {}),
    (raster_tests, "test_pixels_beyond_far_plane_are_clipped", {}),
    (raster_tests, "test_float64_and_int64_inputs", {}),
    (raster_tests, "test_depth_and_id_carry_no_gradient_and_grad_db_false_blocks_db", {}),
    (interp_tests, "test_values_match_reference_and_background_is_zero", {}),
    (interp_tests, "test_perspective_correct_interpolation_recovers_pixel_centres", {}),
    (interp_tests, "test_broadcast_and_range_mode_attributes", {}),
    (interp_tests, "test_rasterize_then_interpolate_gradient_reaches_pos", {}),
    (aa_tests, "test_output_equals_input_away_from_id_changes", {}),
    (aa_tests, "test_shared_edge_blends_only_when_it_is_a_silhouette", dict(folded=True)),
    (aa_tests, "test_shared_edge_blends_only_when_it_is_a_silhouette", dict(folded=False)),
    (aa_tests, "test_range_mode_equals_instanced_mode", {}),
    (aa_tests, "test_sphere_silhouette_loss_gradient_matches_finite_difference", {}),
    (aa_tests, "test_pos_gradient_boost_scales_pos_gradient_only", {}),
    (aa_tests, "test_precomputed_topology_gives_the_same_result", {}),
    (aa_tests, "test_output_stays_in_the_graph_when_nothing_is_blended", {}),
    (aa_tests, "test_bad_inputs_raise_value_error_naming_the_argument", {}),
]


@pytest.mark.parametrize("module, name, kwargs", RERUN, ids=[f"{n}-{k}" for _, n, k in RERUN])
def test_twin_suite_passes_with_compiled_kernels(compiled, module, name, kwargs):
    getattr(module, name)(**kwargs)
