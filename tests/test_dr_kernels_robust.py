"""The compiled CPU path on the meshes that broke it: a depth grid (Unsup3D's renderer: many pixels per
vertex, sub-pixel and off-screen triangles), degenerate triangles, several numba threads, and stale memory.

The NaN that notebook 05's training hit with the kernels as default came from the rasterizer's backward
reading the setup rows of triangles it never drew (off-screen, zero-area, or a box holding no pixel
centre): those rows were ``np.empty`` bytes, and an inf there times a zero gradient is NaN. The
poisoned-allocator test reproduces that deterministically; the others pin the gradients to the twin's.
"""

import numpy as np
import pytest
import torch

numba = pytest.importorskip("numba")

from csmlab.dr import kernels  # noqa: E402
from csmlab.dr.antialias_compiled import antialias_compiled  # noqa: E402
from csmlab.dr.antialias_twin import antialias_torch  # noqa: E402
from csmlab.dr.interpolate_compiled import interpolate_compiled  # noqa: E402
from csmlab.dr.interpolation import interpolate_torch  # noqa: E402
from csmlab.dr.raster import rasterize_torch  # noqa: E402
from csmlab.dr.raster_compiled import rasterize_compiled  # noqa: E402


def depth_grid(n=24, n_images=3, seed=0):
    """A bumpy n x n depth grid in clip space (float64), one pose per image: the first fills the view,
    the second is half off-screen, the third is tilted nearly edge-on (sliver triangles); plus three
    degenerate triangles (repeated vertex, collinear, and one behind the eye)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-0.9, 0.9, n, dtype=torch.float64),
                            torch.linspace(-0.9, 0.9, n, dtype=torch.float64), indexing="ij")
    z = 0.2 * torch.sin(3 * xs) * torch.cos(2 * ys) + 0.02 * torch.randn(n, n, generator=g, dtype=torch.float64)
    grid = torch.stack([xs, ys, z, torch.ones_like(z)], -1).reshape(-1, 4)
    extra = torch.tensor([[0.1, 0.1, 0.0, 1.0], [0.3, 0.3, 0.0, 1.0], [0.5, 0.5, 0.0, 1.0],
                          [0.2, -0.2, 0.0, -0.5]], dtype=torch.float64)
    pos = torch.cat([grid, extra]).repeat(n_images, 1, 1)
    pos[1, :, 0] += 1.2 * pos[1, :, 3]                       # half off-screen
    pos[2, :, 1] = 0.03 * pos[2, :, 1] + pos[2, :, 2]        # nearly edge-on: slivers, sub-pixel boxes
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = (idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1), idx[1:, :-1].reshape(-1),
                  idx[1:, 1:].reshape(-1))
    e = n * n
    degenerate = torch.tensor([[e, e, e + 1], [e, e + 1, e + 2], [e, e + 1, e + 3]])
    tri = torch.cat([torch.stack([a, b, c], 1), torch.stack([b, d, c], 1), degenerate]).to(torch.int32)
    return pos, tri


def _raster_grads(fn, pos, tri, res, weights):
    p = pos.clone().requires_grad_(True)
    rast, db = fn(p, tri, res)
    ((rast[..., :2] * weights[0]).sum() + (db * weights[1]).sum()).backward()
    return rast.detach(), db.detach(), p.grad


@pytest.fixture
def threads(monkeypatch):
    """Run with as many numba threads as there are, even on these small images (the library gives small
    calls one thread, csmlab.dr.kernels.threads_for), so that two jobs race when the code lets them."""
    monkeypatch.setattr(kernels, "WORK_PER_THREAD", 1)
    before = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    yield numba.get_num_threads()
    numba.set_num_threads(before)


def test_small_calls_run_serially_and_no_thread_count_changes(threads):
    assert threads == numba.config.NUMBA_NUM_THREADS
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with kernels.threads_for(0) as n:
            assert n == 1   # the caller takes the *_serial kernels
        with kernels.threads_for(10**9) as n:
            assert n == threads
        assert numba.get_num_threads() == threads
        assert torch.get_num_threads() == 1, "starting numba's OpenMP pool must not leave torch's count changed"
    finally:
        torch.set_num_threads(before)


def test_raster_backward_equals_the_twin_on_a_depth_grid_repeatedly(threads):
    pos, tri = depth_grid()
    res = (40, 40)
    g = torch.Generator().manual_seed(1)
    # Where the two depth tests pick different owners (float64 against float32 z/w, a few near-ties on
    # the folded grid) the gradients differ by design; the loss weights only pixels with one owner.
    same = rasterize_compiled(pos, tri, res)[0][..., 3] == rasterize_torch(pos, tri, res)[0][..., 3]
    assert same.double().mean() >= 0.99, same.double().mean()
    weights = (torch.randn(3, *res, 2, generator=g, dtype=torch.float64) * same[..., None],
               torch.randn(3, *res, 4, generator=g, dtype=torch.float64) * same[..., None])
    rast_t, db_t, grad_t = _raster_grads(rasterize_torch, pos, tri, res, weights)
    first = None
    for _ in range(5):
        rast, db, grad = _raster_grads(rasterize_compiled, pos, tri, res, weights)
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, grad_t, rtol=1e-7, atol=1e-7 * grad_t.abs().max().item())
        if first is None:
            first = grad
        assert torch.equal(grad, first), f"not deterministic with {threads} numba threads: a write race"


@pytest.mark.parametrize("stale", [np.inf, np.nan])
def test_raster_backward_never_reads_stale_setup_memory(monkeypatch, stale):
    pos, tri = depth_grid(n=12)
    res = (16, 16)
    weights = (torch.ones(3, *res, 2, dtype=torch.float64), torch.ones(3, *res, 4, dtype=torch.float64))
    _, _, clean = _raster_grads(rasterize_compiled, pos, tri, res, weights)
    real_empty = np.empty

    def poisoned_empty(shape, dtype=float, *args, **kwargs):
        out = real_empty(shape, dtype, *args, **kwargs)
        if np.issubdtype(np.dtype(dtype), np.floating):
            out.fill(stale)
        return out

    monkeypatch.setattr(np, "empty", poisoned_empty)
    kernels.drop_scratch()   # the kernels' reused buffers too: every one is allocated (poisoned) afresh
    _, _, grad = _raster_grads(rasterize_compiled, pos, tri, res, weights)
    assert torch.isfinite(grad).all(), "the backward read a setup row that the forward never wrote"
    assert torch.equal(grad, clean)


def test_interpolate_and_antialias_backward_equal_the_twin_on_a_depth_grid(threads):
    pos, tri = depth_grid()
    res = (40, 40)
    rast, _ = rasterize_compiled(pos, tri, res)
    g = torch.Generator().manual_seed(2)
    attr = torch.randn(pos.shape[1], 3, generator=g, dtype=torch.float64)
    w = torch.randn(3, *res, 3, generator=g, dtype=torch.float64)
    grads = {}
    for name, interp, aa in (("twin", interpolate_torch, antialias_torch),
                             ("compiled", interpolate_compiled, antialias_compiled)):
        for _ in range(3 if name == "compiled" else 1):
            a, p = attr.clone().requires_grad_(True), pos.clone().requires_grad_(True)
            color, _ = interp(a, rast, tri)
            (aa(color, rast, p, tri) * w).sum().backward()
            assert torch.isfinite(a.grad).all() and torch.isfinite(p.grad).all()
            if name in grads:
                assert torch.equal(a.grad, grads[name][0]) and torch.equal(p.grad, grads[name][1])
            grads[name] = (a.grad, p.grad)
    for mine, ref in zip(grads["compiled"], grads["twin"]):
        torch.testing.assert_close(mine, ref, rtol=1e-7, atol=1e-9 * (1 + ref.abs().max().item()))



def _force_parallel_builds(monkeypatch):
    """Take the parallel (prange) builds of every kernel, however few numba threads there are. A parfor
    compiles and runs on one thread too, and its typing differs from the serial build's (the loop index is
    unsigned there), so this tests those builds even where NUMBA_NUM_THREADS=1 keeps ``threads`` serial."""
    from contextlib import contextmanager

    from csmlab.dr import antialias_compiled as aa_module
    from csmlab.dr import interpolate_compiled as interp_module
    from csmlab.dr import raster_compiled as raster_module

    @contextmanager
    def two_threads(work):
        yield 2

    for module in (aa_module, interp_module, raster_module):
        monkeypatch.setattr(module, "threads_for", two_threads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parallel_builds_equal_the_serial_builds(dtype, monkeypatch):
    """Regression: the parallel antialias build once failed to compile (an unsigned prange index unified
    with a signed one gave a float64 array index), and only calls of over 2^19 pixels reached it."""
    pos, tri = depth_grid()
    pos = pos.to(dtype)
    g = torch.Generator().manual_seed(5)
    attr = torch.randn(pos.shape[1], 3, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(3, 40, 40, 3, generator=g, dtype=torch.float64).to(dtype)

    def chain():
        a, p = attr.clone().requires_grad_(True), pos.clone().requires_grad_(True)
        rast, db = rasterize_compiled(p, tri, (40, 40))
        color, _ = interpolate_compiled(a, rast, tri)
        ((antialias_compiled(color, rast, p, tri) * w).sum() + (db * db).sum()).backward()
        return rast.detach(), color.detach(), a.grad, p.grad

    serial = chain()
    _force_parallel_builds(monkeypatch)
    parallel = chain()
    for mine, ref in zip(parallel, serial):
        torch.testing.assert_close(mine, ref, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6)


def test_pooled_outputs_kept_by_the_caller_are_never_overwritten():
    """The kernels reuse their output buffers between calls (no page faults), but only those nobody
    holds: a kept rast, a view of one, or a tensor saved by a live graph keeps its own values."""
    pos, tri = depth_grid(n=12)
    res = (16, 16)
    rast_a, db_a = rasterize_compiled(pos, tri, res)
    view = rast_a[..., 3]
    copy_a, copy_view = rast_a.clone(), view.clone()
    p = pos.clone().requires_grad_(True)
    rast_g, _ = rasterize_compiled(p, tri, res)
    color_g, _ = interpolate_compiled(p[..., :3].contiguous(), rast_g, tri)
    saved = color_g.detach().clone()
    pos_b = pos * 0.5
    pos_b[..., 3] = 1.0
    for _ in range(3):   # other scenes, same shapes: they must not land in the buffers held above
        rast_b, _ = rasterize_compiled(pos_b, tri, res)
        interpolate_compiled(pos_b[..., :3].contiguous(), rast_b, tri)
    assert not torch.equal(rast_b, copy_a)
    assert torch.equal(rast_a, copy_a) and torch.equal(view, copy_view)
    assert torch.equal(color_g, saved)
    color_g.sum().backward()   # the live graph's saved rast is intact: the gradient equals a fresh run's
    q = pos.clone().requires_grad_(True)
    rast_q, _ = rasterize_compiled(q, tri, res)
    interpolate_compiled(q[..., :3].contiguous(), rast_q, tri)[0].sum().backward()
    torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)
    del rast_a, db_a, view   # freed: the next call of this shape may take the buffer again
    again, _ = rasterize_compiled(pos, tri, res)
    assert torch.equal(again, copy_a)


def test_scratch_hands_out_a_free_array_again_and_never_a_held_one():
    """The pool's free test is calibrated on this interpreter (kernels._FREE_REFS): an array that
    nothing holds is reused, one still viewed is not."""
    from csmlab.dr.kernels import drop_scratch, scratch

    drop_scratch()
    first = scratch("probe", (1000,))
    second = scratch("probe", (1000,))          # first is still held: a new array
    assert not np.shares_memory(first, second)
    address = second.ctypes.data
    del first, second
    third = scratch("probe", (1000,))           # nothing holds the last one: it comes back
    assert third.ctypes.data == address
    drop_scratch()
