"""Mipmapped texturing in the PyTorch twin, against a brute-force per-pixel reference.

The reference builds the pyramid texel by texel with loops, computes nvdiffrast's level of
detail per pixel with ``math``, and filters each level bilinearly with explicit indices; it
shares no code with ``csmlab.dr.mipmap``.
"""

import math

import pytest
import torch

from csmlab.dr import texture, texture_construct_mip
from csmlab.dr.texture_twin import texture_torch

torch.set_num_threads(1)


def ref_pyramid(tex, max_mip_level=None):
    """Levels of tex [Bt,H,W,C] as nested python loops (box filter, 2-tap once an extent is 1)."""
    levels = [tex.clone()]
    while True:
        t = levels[-1]
        bt, h, w, c = t.shape
        if (h == 1 and w == 1) or (max_mip_level is not None and len(levels) - 1 >= max_mip_level):
            return levels
        nh, nw = max(h // 2, 1), max(w // 2, 1)
        out = torch.zeros(bt, nh, nw, c, dtype=t.dtype)
        for b in range(bt):
            for y in range(nh):
                for x in range(nw):
                    if h == 1:
                        out[b, y, x] = 0.5 * (t[b, 0, 2 * x] + t[b, 0, 2 * x + 1])
                    elif w == 1:
                        out[b, y, x] = 0.5 * (t[b, 2 * y, 0] + t[b, 2 * y + 1, 0])
                    else:
                        out[b, y, x] = 0.25 * (t[b, 2 * y, 2 * x] + t[b, 2 * y, 2 * x + 1]
                                               + t[b, 2 * y + 1, 2 * x] + t[b, 2 * y + 1, 2 * x + 1])
        levels.append(out)


def ref_lod(da, bias, h, w, max_level):
    if da is None:
        lod = bias
    else:
        dsdx, dsdy, dtdx, dtdy = da[0] * w, da[1] * w, da[2] * h, da[3] * h
        a, b = dsdx ** 2 + dtdx ** 2, dsdy ** 2 + dtdy ** 2
        c = dsdx * dsdy + dtdx * dtdy
        major = 0.5 * (a + b) + math.sqrt(0.25 * (a - b) ** 2 + c * c)
        lod = 0.5 * math.log2(major) + (bias or 0.0)
    return min(max(lod, 0.0), float(max_level))


def ref_texel(level, b, iy, ix, boundary):
    _, h, w, c = level.shape
    if boundary == "wrap":
        iy, ix = iy % h, ix % w
    elif boundary == "clamp":
        iy, ix = min(max(iy, 0), h - 1), min(max(ix, 0), w - 1)
    elif not (0 <= iy < h and 0 <= ix < w):
        return torch.zeros(c, dtype=level.dtype)
    return level[b, iy, ix]


def ref_bilinear(level, b, u, v, boundary):
    _, h, w, _ = level.shape
    if boundary == "wrap":
        u, v = u - math.floor(u), v - math.floor(v)
    x, y = u * w - 0.5, v * h - 0.5
    if boundary == "clamp":
        x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    t = [[ref_texel(level, b, y0 + dy, x0 + dx, boundary) for dx in (0, 1)] for dy in (0, 1)]
    return (1 - fy) * ((1 - fx) * t[0][0] + fx * t[0][1]) + fy * ((1 - fx) * t[1][0] + fx * t[1][1])


def ref_texture(tex, uv, uv_da, bias, filter_mode, boundary, max_mip_level=None):
    levels = ref_pyramid(tex, max_mip_level)
    top = len(levels) - 1
    bn, hn, wn, _ = uv.shape
    out = torch.zeros(bn, hn, wn, tex.shape[-1], dtype=tex.dtype)
    for b in range(bn):
        tb = 0 if tex.shape[0] == 1 else b
        for y in range(hn):
            for x in range(wn):
                da = None if uv_da is None else uv_da[b, y, x].tolist()
                bi = None if bias is None else float(bias[b, y, x])
                lod = ref_lod(da, bi, tex.shape[1], tex.shape[2], top)
                u, v = float(uv[b, y, x, 0]), float(uv[b, y, x, 1])
                l0 = math.floor(lod)
                a = ref_bilinear(levels[l0], tb, u, v, boundary)
                if filter_mode == "linear-mipmap-linear":
                    l1 = min(l0 + 1, top)
                    a = a + (lod - l0) * (ref_bilinear(levels[l1], tb, u, v, boundary) - a)
                out[b, y, x] = a
    return out


def _inputs(seed, tex_shape=(2, 8, 16, 3), img=(2, 3, 4), dtype=torch.float64, spread=4.0):
    gen = torch.Generator().manual_seed(seed)
    tex = torch.rand(*tex_shape, dtype=dtype, generator=gen)
    uv = torch.rand(*img, 2, dtype=dtype, generator=gen) * 1.6 - 0.3
    # Footprints from magnification to beyond the coarsest level, anisotropic and rotated.
    scale = torch.exp2(torch.rand(*img, 1, dtype=dtype, generator=gen) * (spread + 2) - 2) / tex_shape[2]
    uv_da = (torch.rand(*img, 4, dtype=dtype, generator=gen) * 2 - 1) * scale
    bias = torch.rand(*img, dtype=dtype, generator=gen) * 2 - 1
    return tex, uv, uv_da, bias


@pytest.mark.parametrize("filter_mode", ["linear-mipmap-linear", "linear-mipmap-nearest"])
@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_mipmapped_values_match_the_brute_force_reference(filter_mode, boundary_mode):
    tex, uv, uv_da, bias = _inputs(0, dtype=torch.float32)
    for da, bi in ((uv_da, None), (uv_da, bias), (None, bias * 3 + 1.5)):
        got = texture_torch(tex, uv, uv_da=da, mip_level_bias=bi, filter_mode=filter_mode,
                            boundary_mode=boundary_mode)
        want = ref_texture(tex.double(), uv.double(), None if da is None else da.double(),
                           None if bi is None else bi.double(), filter_mode, boundary_mode)
        assert (got.double() - want).abs().max() < 1e-5


def test_non_square_pyramid_and_max_mip_level_match_the_reference():
    # 4 x 16 -> 2x8 -> 1x4 -> 1x2 -> 1x1: the 2-tap filter once the height is 1.
    tex, uv, uv_da, _ = _inputs(1, tex_shape=(1, 4, 16, 2), spread=6.0)
    for max_mip_level in (None, 2, 9):
        got = texture_torch(tex, uv, uv_da=uv_da, max_mip_level=max_mip_level)  # 'auto'
        want = ref_texture(tex, uv, uv_da, None, "linear-mipmap-linear", "wrap", max_mip_level)
        assert (got - want).abs().max() < 1e-12


def test_prebuilt_mip_is_reused_and_still_sends_gradients_to_tex():
    tex, uv, uv_da, _ = _inputs(2)
    tex = tex.requires_grad_(True)
    mip = texture_construct_mip(tex, max_mip_level=3)
    fresh = texture(tex, uv, uv_da=uv_da, max_mip_level=3)
    reused = texture(tex, uv, uv_da=uv_da, mip=mip)
    torch.testing.assert_close(reused, fresh)
    g_fresh, = torch.autograd.grad(fresh.square().sum(), tex)
    g_reused, = torch.autograd.grad(reused.square().sum(), tex)
    torch.testing.assert_close(g_reused, g_fresh)
    # A custom stack as a list of tensors: level 1 alone, its own gradient.
    level1 = torch.rand(2, 4, 8, 3, dtype=torch.float64, requires_grad=True)
    out = texture(tex, uv, mip_level_bias=torch.ones(2, 3, 4, dtype=torch.float64), mip=[level1])
    out.sum().backward()
    assert level1.grad.abs().sum() > 0


@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_mipmap_linear_gradcheck_every_input(boundary_mode):
    tex, uv, uv_da, bias = _inputs(3, tex_shape=(1, 4, 8, 2), img=(1, 2, 3), spread=3.0)
    inputs = tuple(x.requires_grad_(True) for x in (tex, uv, uv_da, bias))

    def f(t, c, d, b):
        return texture_torch(t, c, uv_da=d, mip_level_bias=b, filter_mode="linear-mipmap-linear",
                             boundary_mode=boundary_mode)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5)


def test_mipmap_nearest_gradcheck_and_no_level_gradient():
    tex, uv, uv_da, bias = _inputs(4, tex_shape=(1, 4, 8, 2), img=(1, 2, 3), spread=3.0)
    tex, uv = tex.requires_grad_(True), uv.requires_grad_(True)

    def f(t, c):
        return texture_torch(t, c, uv_da=uv_da, mip_level_bias=bias, filter_mode="linear-mipmap-nearest")

    assert torch.autograd.gradcheck(f, (tex, uv), eps=1e-7, atol=1e-5)
    bias = bias.clone().requires_grad_(True)
    out = texture_torch(tex, uv, mip_level_bias=bias, filter_mode="linear-mipmap-nearest")
    g, = torch.autograd.grad(out.sum(), bias, allow_unused=True)
    assert g is None or not g.any()


def test_bias_moves_the_level_and_max_mip_level_zero_is_linear():
    tex = torch.rand(1, 8, 8, 1, dtype=torch.float64)
    uv = torch.rand(1, 2, 2, 2, dtype=torch.float64)
    coarsest = texture_torch(tex, uv, mip_level_bias=torch.full((1, 2, 2), 10.0, dtype=torch.float64))
    torch.testing.assert_close(coarsest, tex.mean().expand(1, 2, 2, 1))  # 1x1 level = the mean
    capped = texture_torch(tex, uv, uv_da=torch.ones(1, 2, 2, 4, dtype=torch.float64), max_mip_level=0)
    torch.testing.assert_close(capped, texture_torch(tex, uv, filter_mode="linear"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(tex=torch.rand(1, 6, 8, 3), uv_da=torch.zeros(1, 2, 2, 4)), "max_mip_level"),  # odd 6 -> 3
    (dict(tex=torch.rand(1, 8, 8, 3), uv_da=torch.zeros(1, 2, 2, 2)), "uv_da"),
    (dict(tex=torch.rand(1, 8, 8, 3), uv_da=torch.zeros(1, 2, 3, 4)), "uv_da"),
    (dict(tex=torch.rand(1, 8, 8, 3), mip_level_bias=torch.zeros(1, 2, 2, 1)), "mip_level_bias"),
    (dict(tex=torch.rand(1, 8, 8, 3), uv_da=torch.zeros(1, 2, 2, 4), max_mip_level=-2), "max_mip_level"),
    (dict(tex=torch.rand(1, 8, 8, 3), uv_da=torch.zeros(1, 2, 2, 4), max_mip_level=1.5), "max_mip_level"),
    (dict(tex=torch.rand(1, 8, 8, 3), filter_mode="linear-mipmap-linear"), "uv_da or mip_level_bias"),
    (dict(tex=torch.rand(6, 8, 8, 3), uv_da=torch.zeros(1, 2, 2, 4)), "minibatch"),
    (dict(tex=torch.rand(1, 6, 8, 8, 3), uv_da=torch.zeros(1, 2, 2, 4)), "tex"),
    (dict(tex=torch.rand(1, 8, 8, 3), uv_da=torch.zeros(1, 2, 2, 4), mip="pyramid"), "mip"),
])
def test_bad_mip_inputs_raise_value_error_naming_the_argument(kwargs, match):
    kwargs.setdefault("uv", torch.rand(1, 2, 2, 2))
    with pytest.raises(ValueError, match=match):
        texture_torch(**kwargs)
    # an odd extent is fine once max_mip_level stops the pyramid before it
    texture_torch(torch.rand(1, 6, 8, 1), torch.rand(1, 2, 2, 2), uv_da=torch.ones(1, 2, 2, 4), max_mip_level=1)
