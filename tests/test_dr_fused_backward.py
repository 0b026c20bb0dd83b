"""The fused backward of the compiled path: ``interpolate``'s backward runs the rasterizer's per-pixel
step when it is the only consumer of ``rast``'s gradient (csmlab.dr.raster_compiled). The gradients
must be those of the unfused path, bit for bit, and ``rast``'s gradient must stay whatever autograd
delivers (other consumers, hooks, a second interpolate)."""

import pytest
import torch
from dr_reference import random_clip_mesh

pytest.importorskip("numba")

from csmlab.dr import interpolate_compiled as IC  # noqa: E402
from csmlab.dr import kernels_bary as KB  # noqa: E402
from csmlab.dr.interpolate_compiled import interpolate_compiled  # noqa: E402
from csmlab.dr.raster_compiled import rasterize_compiled  # noqa: E402
from csmlab.geometry.mesh import icosphere  # noqa: E402


def _sphere_scene(n_img=2, channels=3, dtype=torch.float32):
    sphere = icosphere(2)
    g = torch.Generator().manual_seed(0)
    rot = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    v = sphere.verts.double() @ rot.T
    pos = torch.cat([0.8 * v[:, :2], -0.1 * v[:, 2:], torch.ones_like(v[:, :1])], 1)[None].repeat(n_img, 1, 1)
    pos[1:, :, 0] += 0.1
    col = torch.rand(n_img, v.shape[0], channels, dtype=torch.float64, generator=g)
    w = torch.randn(n_img, 40, 40, channels, dtype=torch.float64, generator=g)
    return pos.to(dtype), sphere.faces.to(torch.int32), col.to(dtype), w.to(dtype)


def _grads(pos, tri, col, w, extra=None, ranges=None, hook=None):
    p, c = pos.clone().requires_grad_(), col.clone().requires_grad_()
    rast, _ = rasterize_compiled(p, tri, (40, 40), ranges=ranges)
    if hook is not None:
        rast.register_hook(hook)
    out = interpolate_compiled(c, rast, tri)[0]
    loss = (out * w).sum()
    if extra is not None:
        loss = loss + extra(rast)
    loss.backward()
    return p.grad, c.grad


def _count_calls(monkeypatch):
    calls = {"pixels": 0, "triangles": 0}
    for name, key in (("bary_backward_serial", "pixels"), ("bary_backward", "pixels"),
                      ("bary_triangles_serial", "triangles"), ("bary_triangles", "triangles")):
        kernel = getattr(KB, name)

        def counted(*args, _k=kernel, _key=key):
            calls[_key] += 1
            return _k(*args)
        monkeypatch.setattr(KB, name, counted)
    return calls


def _unfused(monkeypatch):
    monkeypatch.setattr(IC, "fusion_target", lambda rast: None)


@pytest.mark.parametrize("channels", [3, 6])   # one channel group, two groups (GROUP = 4)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_gradients_equal_the_unfused_ones_bit_for_bit(monkeypatch, channels, dtype):
    scene = _sphere_scene(channels=channels, dtype=dtype)
    calls = _count_calls(monkeypatch)
    fused = _grads(*scene)
    assert calls == {"pixels": 0, "triangles": 1}
    with monkeypatch.context() as m:
        _unfused(m)
        plain = _grads(*scene)
    assert calls == {"pixels": 1, "triangles": 1}
    for a, b in zip(fused, plain):
        assert torch.equal(a, b)


def test_fused_gradients_in_range_mode(monkeypatch):
    pos, tri, col, w = _sphere_scene(n_img=1)
    ranges = torch.tensor([[0, 200], [100, 220], [300, 0]], dtype=torch.int32)
    col, w = col.expand(3, -1, -1), w.expand(3, -1, -1, -1)
    calls = _count_calls(monkeypatch)
    fused = _grads(pos[0], tri, col, w, ranges=ranges)
    assert calls["triangles"] == 1 and calls["pixels"] == 0
    with monkeypatch.context() as m:
        _unfused(m)
        plain = _grads(pos[0], tri, col, w, ranges=ranges)
    for a, b in zip(fused, plain):
        assert torch.equal(a, b)


@pytest.mark.parametrize("extra, hook", [
    (lambda rast: (rast[..., :2] ** 2).sum(), None),                        # rast also used elsewhere
    (None, lambda g: g * 2.0),                                              # a hook replaces the gradient
    (lambda rast: 0.5 * (interpolate_compiled(torch.ones(1, 162, 2), rast,  # a second interpolate
                                              icosphere(2).faces.to(torch.int32))[0]).sum(), None),
])
def test_other_consumers_of_rast_get_the_unfused_gradient(monkeypatch, extra, hook):
    scene = _sphere_scene()
    calls = _count_calls(monkeypatch)
    got = _grads(*scene, extra=extra, hook=hook)
    assert calls["pixels"] == 1 and calls["triangles"] == 0
    with monkeypatch.context() as m:
        _unfused(m)
        want = _grads(*scene, extra=extra, hook=hook)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_gradcheck_through_the_fused_backward_float64():
    pos, tri = random_clip_mesh(seed=15, n_images=2, n_verts=12, n_faces=8, dtype=torch.float64)
    attr = torch.randn(2, 12, 3, dtype=torch.float64)

    def f(p):
        return interpolate_compiled(attr, rasterize_compiled(p, tri, (6, 7), grad_db=False)[0], tri)[0]

    assert torch.autograd.gradcheck(f, (pos.clone().requires_grad_(),), eps=1e-6, atol=1e-6)
    ranges = torch.tensor([[0, 5], [3, 5]], dtype=torch.int32)

    def f_range(p):
        return interpolate_compiled(attr, rasterize_compiled(p, tri, (6, 7), ranges=ranges)[0], tri)[0]

    assert torch.autograd.gradcheck(f_range, (pos[0].clone().requires_grad_(),), eps=1e-6, atol=1e-6)


def test_fused_gradients_with_the_parallel_kernels(monkeypatch):
    """The parallel builds (every call on all of numba's threads) give the serial builds' bits."""
    import numba

    from csmlab.dr import kernels

    scene = _sphere_scene(n_img=3, channels=6)
    serial = _grads(*scene)
    monkeypatch.setattr(kernels, "WORK_PER_THREAD", 1)
    before = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        calls = _count_calls(monkeypatch)
        parallel = _grads(*scene)
        assert calls["triangles"] == 1 and calls["pixels"] == 0
    finally:
        numba.set_num_threads(before)
    for a, b in zip(serial, parallel):
        assert torch.equal(a, b)
