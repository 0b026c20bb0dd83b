"""Cube maps in the PyTorch twin against a brute-force reference.

The reference picks the face by the largest axis with plain Python, and finds the texel that
a bilinear tap beyond a face edge reads as the texel (of another face) whose centre
direction is nearest in angle to the tap's point on the extended face plane; the level of
detail comes from finite differences of its own face coordinates. It shares no code with
``csmlab.dr.cube``.
"""

import math

import pytest
import torch

from csmlab.dr import texture
from csmlab.dr.texture_twin import texture_torch
from tests.test_dr_mipmap import ref_pyramid

torch.set_num_threads(1)

# (major axis, sign) -> (s component, s sign, t component, t sign), as nvdiffrast documents
# its faces: +x, -x, +y, -y, +z, -z.
FACES = [(0, 1, 2, -1, 1, -1), (0, -1, 2, 1, 1, -1), (1, 1, 0, 1, 2, 1),
         (1, -1, 0, 1, 2, -1), (2, 1, 0, 1, 1, -1), (2, -1, 0, -1, 1, -1)]


def ref_face_st(d):
    ax, ay, az = (abs(c) for c in d)
    axis = 2 if az > max(ax, ay) else (1 if ay > ax else 0)
    face = 2 * axis + (1 if d[axis] < 0 else 0)
    _, _, sa, ks, ta, kt = FACES[face]
    m = 0.5 / abs(d[axis])
    s, t = 0.5 + ks * d[sa] * m, 0.5 + kt * d[ta] * m
    return face, min(max(s, 0.0), 1.0), min(max(t, 0.0), 1.0)


def ref_point(face, s, t):
    axis, sign, sa, ks, ta, kt = FACES[face]
    p = [0.0, 0.0, 0.0]
    p[axis], p[sa], p[ta] = float(sign), (2 * s - 1) * ks, (2 * t - 1) * kt
    return p


def texel_directions(size):
    dirs = torch.zeros(6, size, size, 3, dtype=torch.float64)
    for f in range(6):
        for iy in range(size):
            for ix in range(size):
                dirs[f, iy, ix] = torch.tensor(ref_point(f, (ix + 0.5) / size, (iy + 0.5) / size))
    return dirs / dirs.norm(dim=-1, keepdim=True)


def ref_bilinear_cube(level, b, face, s, t, dirs):
    size = level.shape[2]
    x, y = s * size - 0.5, t * size - 0.5
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    taps, corner = [], None
    for k, (ix, iy) in enumerate(((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1))):
        out_x, out_y = not 0 <= ix < size, not 0 <= iy < size
        if out_x and out_y:
            corner = k
            taps.append(None)
        elif out_x or out_y:
            q = torch.tensor(ref_point(face, (ix + 0.5) / size, (iy + 0.5) / size), dtype=torch.float64)
            cos = dirs @ (q / q.norm())
            cos[face] = -2.0  # another face's texel
            f, jy, jx = (int(i) for i in torch.unravel_index(cos.argmax(), cos.shape))
            taps.append(level[b, f, jy, jx])
        else:
            taps.append(level[b, face, iy, ix])
    if corner is not None:
        taps[corner] = sum(tp for tp in taps if tp is not None) / 3.0
    a00, a10, a01, a11 = taps
    return (1 - fy) * ((1 - fx) * a00 + fx * a10) + fy * ((1 - fx) * a01 + fx * a11)


def ref_lod(d, da, bias, size, top):
    if da is None:
        lod = bias
    else:
        h = 1e-6
        grads = []
        for axis in (0, 1):  # X, Y
            step = [da[2 * c + axis] for c in range(3)]
            hi = ref_face_st([d[c] + h * step[c] for c in range(3)])
            lo = ref_face_st([d[c] - h * step[c] for c in range(3)])
            grads.append(((hi[1] - lo[1]) / (2 * h) * size, (hi[2] - lo[2]) / (2 * h) * size))
        (dsdx, dtdx), (dsdy, dtdy) = grads
        a, b = dsdx ** 2 + dtdx ** 2, dsdy ** 2 + dtdy ** 2
        c = dsdx * dsdy + dtdx * dtdy
        lod = 0.5 * math.log2(0.5 * (a + b) + math.sqrt(0.25 * (a - b) ** 2 + c * c)) + (bias or 0.0)
    return min(max(lod, 0.0), float(top))


def ref_cube(tex, uv, uv_da=None, bias=None, filter_mode="linear"):
    levels = [lv.view(tex.shape[0], 6, *lv.shape[1:])
              for lv in ref_pyramid(tex.reshape(-1, *tex.shape[2:]))]
    if filter_mode == "linear":
        levels = levels[:1]
    top = len(levels) - 1
    all_dirs = [texel_directions(lv.shape[2]) for lv in levels]
    bn, hn, wn, _ = uv.shape
    out = torch.zeros(bn, hn, wn, tex.shape[-1], dtype=tex.dtype)
    for b in range(bn):
        tb = 0 if tex.shape[0] == 1 else b
        for y in range(hn):
            for x in range(wn):
                d = uv[b, y, x].tolist()
                face, s, t = ref_face_st(d)
                if filter_mode == "nearest":
                    size = tex.shape[2]
                    out[b, y, x] = tex[tb, face, min(int(t * size), size - 1), min(int(s * size), size - 1)]
                    continue
                lod = 0.0 if filter_mode == "linear" else ref_lod(
                    d, None if uv_da is None else uv_da[b, y, x].tolist(),
                    None if bias is None else float(bias[b, y, x]), tex.shape[2], top)
                l0 = math.floor(lod)
                a = ref_bilinear_cube(levels[l0], tb, face, s, t, all_dirs[l0])
                if filter_mode == "linear-mipmap-linear" and lod > l0:
                    l1 = min(l0 + 1, top)
                    a = a + (lod - l0) * (ref_bilinear_cube(levels[l1], tb, face, s, t, all_dirs[l1]) - a)
                out[b, y, x] = a
    return out


def _cube_inputs(seed, size=4, img=(2, 4, 5), dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    tex = torch.rand(2, 6, size, size, 3, dtype=dtype, generator=gen)
    uv = torch.randn(*img, 3, dtype=dtype, generator=gen) * (0.5 + torch.rand(*img, 1, dtype=dtype, generator=gen))
    scale = torch.exp2(torch.rand(*img, 1, dtype=dtype, generator=gen) * 4 - 2) / size
    uv_da = torch.randn(*img, 6, dtype=dtype, generator=gen) * scale * uv.norm(dim=-1, keepdim=True)
    bias = torch.rand(*img, dtype=dtype, generator=gen) - 0.5
    return tex, uv, uv_da, bias


@pytest.mark.parametrize("filter_mode", ["nearest", "linear"])
def test_cube_values_match_the_brute_force_reference(filter_mode):
    tex, uv, _, _ = _cube_inputs(0, dtype=torch.float32)
    got = texture_torch(tex, uv, filter_mode=filter_mode, boundary_mode="cube")
    want = ref_cube(tex.double(), uv.double(), filter_mode=filter_mode)
    assert (got.double() - want).abs().max() < 1e-5


def test_cube_edges_and_corners_match_the_reference():
    # Directions right next to face edges and cube corners: every tap kind is exercised.
    tex, _, _, _ = _cube_inputs(1, dtype=torch.float32)
    gen = torch.Generator().manual_seed(5)
    signs = torch.randint(0, 2, (2, 3, 4, 3), generator=gen).float() * 2 - 1
    uv = signs * (1.0 - torch.rand(2, 3, 4, 3, generator=gen) * 0.3)
    got = texture_torch(tex, uv, boundary_mode="cube")
    want = ref_cube(tex.double(), uv.double())
    assert (got.double() - want).abs().max() < 1e-5


@pytest.mark.parametrize("filter_mode", ["linear-mipmap-linear", "linear-mipmap-nearest"])
def test_mipmapped_cube_matches_the_reference(filter_mode):
    tex, uv, uv_da, bias = _cube_inputs(2, size=8, img=(2, 3, 4), dtype=torch.float32)
    got = texture(tex, uv, uv_da=uv_da, mip_level_bias=bias, filter_mode=filter_mode, boundary_mode="cube")
    want = ref_cube(tex.double(), uv.double(), uv_da.double(), bias.double(), filter_mode)
    assert (got.double() - want).abs().max() < 1e-5


def test_cube_gradcheck_every_input():
    tex, uv, uv_da, bias = _cube_inputs(3, size=4, img=(1, 2, 3))
    inputs = tuple(x.requires_grad_(True) for x in (tex[:1], uv, uv_da, bias))

    def f(t, c, d, b):
        return texture_torch(t, c, uv_da=d, mip_level_bias=b, boundary_mode="cube")

    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5)
    assert torch.autograd.gradcheck(lambda t, c: texture_torch(t, c, boundary_mode="cube"),
                                    inputs[:2], eps=1e-7, atol=1e-5)


def test_zero_direction_reads_zero_without_gradient():
    tex = torch.rand(1, 6, 4, 4, 2, dtype=torch.float64, requires_grad=True)
    uv = torch.zeros(1, 1, 1, 3, dtype=torch.float64, requires_grad=True)
    out = texture_torch(tex, uv, boundary_mode="cube")
    assert not out.any()
    out.sum().backward()
    assert not tex.grad.any() and not uv.grad.any()


@pytest.mark.parametrize("filter_mode", ["nearest", "linear", "linear-mipmap-linear"])
def test_background_zero_directions_among_valid_ones(filter_mode):
    # envphong.py's lookups: zero directions (background) mixed with valid ones, per-image maps.
    # The valid pixels read what the brute-force reference reads; the rest 0, with no gradient.
    tex, uv, uv_da, bias = _cube_inputs(4, size=8, img=(2, 3, 4))
    background = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(6)) < 0.4
    mip = "mipmap" in filter_mode
    # The reference (no zero directions) at the original inputs; the twin with the background zeroed.
    want = ref_cube(tex, uv, uv_da if mip else None, bias if mip else None, filter_mode)
    uv = torch.where(background.unsqueeze(-1), torch.zeros_like(uv), uv)
    uv_da = torch.where(background.unsqueeze(-1), torch.zeros_like(uv_da), uv_da)
    kw = dict(uv_da=uv_da, mip_level_bias=bias) if mip else {}
    got = texture_torch(tex, uv, filter_mode=filter_mode, boundary_mode="cube", **kw)
    assert background.any() and (~background).any()
    assert (got - want)[~background].abs().max() < 1e-10 and not got[background].any()
    if filter_mode == "linear-mipmap-linear":
        # Not with respect to uv: a zero direction is a discontinuity (any nudge makes it valid).
        inputs = tuple(x.clone().requires_grad_(True) for x in (tex, uv_da, bias))
        assert torch.autograd.gradcheck(
            lambda t, d, b: texture_torch(t, uv, uv_da=d, mip_level_bias=b, boundary_mode="cube"),
            inputs, eps=1e-7, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tex=torch.rand(1, 4, 4, 3)), "tex"),
    (dict(tex=torch.rand(1, 5, 4, 4, 3)), "tex"),
    (dict(tex=torch.rand(1, 6, 4, 8, 3)), "tex"),
    (dict(tex=torch.rand(1, 6, 4, 4, 3), uv_da=torch.zeros(1, 2, 2, 4)), "uv_da"),
    (dict(tex=torch.rand(1, 6, 4, 4, 3), uv=torch.rand(1, 2, 2, 2)), "uv"),
    (dict(tex=torch.rand(1, 6, 6, 6, 3), uv_da=torch.zeros(1, 2, 2, 6)), "max_mip_level"),
])
def test_bad_cube_inputs_raise_value_error_naming_the_argument(kwargs, match):
    kwargs.setdefault("uv", torch.rand(1, 2, 2, 3))
    with pytest.raises(ValueError, match=match):
        texture_torch(boundary_mode="cube", **kwargs)
