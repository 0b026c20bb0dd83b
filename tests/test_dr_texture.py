"""Tests for ``csmlab.dr.texture_twin.texture_torch`` (the nvdiffrast ``texture`` twin).

Reference values are worked out by hand from nvdiffrast's conventions: u indexes
the width, v the height, texel centres at (i + 0.5) / size, so the continuous
texel coordinate is u * W - 0.5; 'nearest' takes texel floor(u * W).
"""

import pytest
import torch

from csmlab.dr.texture_twin import texture_torch


def _uv(*pairs, dtype=torch.float64):
    """A [1, 1, N, 2] uv tensor from (u, v) pairs."""
    return torch.tensor(pairs, dtype=dtype).view(1, 1, -1, 2)


# One row of two texels [4, 10] (Ht = 1, Wt = 2): texel centres at u = 0.25 and 0.75.
ROW = torch.tensor([4.0, 10.0], dtype=torch.float64).view(1, 1, 2, 1)
# u = 0.0 sits half-way between the virtual texel -1 and texel 0; u = 1.0 half-way
# between texel 1 and the virtual texel 2.
U_PROBES = (0.0, 0.25, 0.5, 0.75, 1.0, -0.25, 1.25)
LINEAR_EXPECTED = {
    # wrap: u -> u - floor(u); texel -1 is texel 1 and texel 2 is texel 0.
    "wrap": [7.0, 4.0, 7.0, 10.0, 7.0, 10.0, 4.0],
    # clamp: the texel coordinate clamps to [0, W - 1] = [0, 1].
    "clamp": [4.0, 4.0, 7.0, 10.0, 10.0, 4.0, 10.0],
    # zero: texels outside the texture read 0.
    "zero": [2.0, 4.0, 7.0, 10.0, 5.0, 0.0, 0.0],
}
NEAREST_EXPECTED = {
    # texel floor(u * 2) after wrapping / then clamped or zeroed.
    "wrap": [4.0, 4.0, 10.0, 10.0, 4.0, 10.0, 4.0],
    "clamp": [4.0, 4.0, 10.0, 10.0, 10.0, 4.0, 10.0],
    "zero": [4.0, 4.0, 10.0, 10.0, 0.0, 0.0, 0.0],
}


@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_linear_along_u_matches_hand_values(boundary_mode):
    uv = _uv(*[(u, 0.5) for u in U_PROBES])
    out = texture_torch(ROW, uv, filter_mode="linear", boundary_mode=boundary_mode)
    assert out.shape == (1, 1, len(U_PROBES), 1)
    expected = torch.tensor(LINEAR_EXPECTED[boundary_mode], dtype=torch.float64)
    # v = 0.5 is the centre of the only row, except in 'zero' mode where the row above
    # and below are zero: v * 1 - 0.5 = 0 sits exactly on the row, so weight 1.
    torch.testing.assert_close(out.flatten(), expected)


@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_nearest_along_u_matches_hand_values(boundary_mode):
    uv = _uv(*[(u, 0.5) for u in U_PROBES])
    out = texture_torch(ROW, uv, filter_mode="nearest", boundary_mode=boundary_mode)
    expected = torch.tensor(NEAREST_EXPECTED[boundary_mode], dtype=torch.float64)
    torch.testing.assert_close(out.flatten(), expected)


@pytest.mark.parametrize("filter_mode", ["nearest", "linear"])
@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_v_axis_indexes_rows_like_u_indexes_columns(filter_mode, boundary_mode):
    # The same two texels as a column (Ht = 2, Wt = 1): v must behave like u did.
    column = ROW.view(1, 2, 1, 1)
    uv = _uv(*[(0.5, v) for v in U_PROBES])
    out = texture_torch(column, uv, filter_mode=filter_mode, boundary_mode=boundary_mode)
    table = LINEAR_EXPECTED if filter_mode == "linear" else NEAREST_EXPECTED
    torch.testing.assert_close(out.flatten(), torch.tensor(table[boundary_mode], dtype=torch.float64))


def test_bilinear_2d_weights_and_row_order():
    # tex[row, col]: row 0 is v ~ 0. At the centre of the four texels of a 2x2
    # texture, bilinear is their mean; at (u, v) = (0.25, 0.75) it is texel [1, 0].
    tex = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=torch.float64).view(1, 2, 2, 1)
    uv = _uv((0.5, 0.5), (0.25, 0.75), (0.375, 0.25))
    out = texture_torch(tex, uv, filter_mode="linear", boundary_mode="clamp").flatten()
    # (0.375, 0.25): x = 0.25 between columns 0 and 1 on row 0 -> 1 + 0.25 * (2 - 1).
    torch.testing.assert_close(out, torch.tensor([2.75, 3.0, 1.25], dtype=torch.float64))


def test_auto_is_linear_without_mip_information():
    torch.manual_seed(0)
    tex = torch.rand(1, 5, 7, 3)
    uv = torch.rand(2, 4, 6, 2) * 1.4 - 0.2
    torch.testing.assert_close(texture_torch(tex, uv), texture_torch(tex, uv, filter_mode="linear"))


def test_texture_minibatch_broadcasts_or_matches():
    torch.manual_seed(1)
    tex = torch.rand(3, 4, 5, 2)
    uv = torch.rand(3, 6, 6, 2)
    shared = texture_torch(tex[:1], uv)
    torch.testing.assert_close(shared, texture_torch(tex[:1].expand(3, -1, -1, -1).contiguous(), uv))
    per_item = texture_torch(tex, uv)
    for b in range(3):
        torch.testing.assert_close(per_item[b:b + 1], texture_torch(tex[b:b + 1], uv[b:b + 1]))
    assert not torch.allclose(per_item, shared)


@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_linear_gradcheck_wrt_tex_and_uv(boundary_mode):
    gen = torch.Generator().manual_seed(2)
    tex = torch.rand(2, 3, 4, 2, dtype=torch.float64, generator=gen).requires_grad_(True)
    # uv spread outside [0, 1] so that wrapping, clamping and zero taps are all exercised.
    uv = (torch.rand(2, 3, 5, 2, dtype=torch.float64, generator=gen) * 1.6 - 0.3).requires_grad_(True)

    def f(t, c):
        return texture_torch(t, c, filter_mode="linear", boundary_mode=boundary_mode)

    assert torch.autograd.gradcheck(f, (tex, uv), eps=1e-6, atol=1e-6)


def test_nearest_gradient_reaches_tex_only():
    tex = torch.zeros(1, 2, 2, 1, dtype=torch.float64, requires_grad=True)
    uv = _uv((0.1, 0.1), (0.2, 0.2), (0.9, 0.1)).requires_grad_(True)
    texture_torch(tex, uv, filter_mode="nearest").sum().backward()
    # Two lookups hit texel [0, 0], one hits texel [0, 1] (u = 0.9 -> column 1, row 0).
    torch.testing.assert_close(tex.grad.flatten(), torch.tensor([2.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    assert uv.grad is None or not uv.grad.any()


def test_clamp_has_no_uv_gradient_outside_the_texture():
    tex = torch.rand(1, 3, 3, 1, dtype=torch.float64)
    uv = _uv((-0.5, 0.5), (1.5, 0.5)).requires_grad_(True)
    texture_torch(tex, uv, filter_mode="linear", boundary_mode="clamp").sum().backward()
    assert not uv.grad[..., 0].any()


def test_max_mip_level_zero_is_plain_linear():
    tex = torch.rand(1, 4, 4, 3)
    uv = torch.rand(1, 2, 2, 2)
    uv_da = torch.zeros(1, 2, 2, 4)
    # nvdiffrast's shortcut: mipmapping capped at level 0 is plain linear filtering
    # (mipmapped modes themselves are tested in tests/test_dr_mipmap.py).
    capped = texture_torch(tex, uv, uv_da=uv_da, filter_mode="linear-mipmap-linear", max_mip_level=0)
    torch.testing.assert_close(capped, texture_torch(tex, uv, filter_mode="linear"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(tex=torch.rand(4, 4, 3), uv=torch.rand(1, 2, 2, 2)), "tex"),
    (dict(tex=torch.rand(1, 4, 4, 3), uv=torch.rand(1, 2, 2, 3)), "uv"),
    (dict(tex=torch.rand(2, 4, 4, 3), uv=torch.rand(3, 2, 2, 2)), "minibatch"),
    (dict(tex=torch.rand(1, 4, 4, 3), uv=torch.rand(1, 2, 2, 2, dtype=torch.float64)), "dtype"),
    (dict(tex=torch.rand(1, 4, 4, 3), uv=torch.rand(1, 2, 2, 2), filter_mode="bicubic"), "filter_mode"),
    (dict(tex=torch.rand(1, 4, 4, 3), uv=torch.rand(1, 2, 2, 2), boundary_mode="mirror"), "boundary_mode"),
    (dict(tex=torch.rand(1, 4, 4, 3), uv=torch.rand(1, 2, 2, 2), max_mip_level=-1), "max_mip_level"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        texture_torch(**kwargs)
