"""The call patterns of nvdiffrast's own samples ``earth.py`` and ``envphong.py`` on CPU.

These are minimal copies of the *calls* (our own code, nothing fetched): earth renders a
sphere with a mipmapped 2-D texture, ``uv_da`` from ``interpolate(..., diff_attrs='all')``
and ``max_mip_level=9``, and fits the texture; envphong looks a cube environment map up
along per-pixel reflection vectors with their pixel derivatives ('linear-mipmap-linear',
``boundary_mode='cube'``) and fits the environment map. Each fit must lower its loss.
"""

import math

import pytest
import torch

import csmlab.dr as dr
from csmlab.geometry.mesh import icosphere

torch.set_num_threads(1)


def _projection(x=0.6, n=1.0, f=10.0):
    return torch.tensor([[n / x, 0, 0, 0], [0, n / x, 0, 0],
                         [0, 0, -(f + n) / (f - n), -(2 * f * n) / (f - n)], [0, 0, -1, 0]])


def _clip(verts, angle):
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    v = verts @ rot.T + torch.tensor([0.0, 0.0, -3.0])
    v = torch.cat([v, torch.ones(v.shape[0], 1)], 1)
    return (v @ _projection().T)[None]


def test_earth_call_pattern_mipmapped_texture_fit():
    mesh = icosphere(2)
    verts, tri = mesh.verts.float(), mesh.faces.int()
    uv = torch.stack([torch.atan2(verts[:, 0], verts[:, 2]) / (2 * math.pi) + 0.5,
                      torch.acos(verts[:, 1].clamp(-1, 1)) / math.pi], 1)
    gen = torch.Generator().manual_seed(0)
    # A generated texture in earth.npz's layout ([H, W, 3], sizes that allow 9 mip levels).
    tex_ref = torch.rand(512, 512, 3, generator=gen)
    tex = torch.full_like(tex_ref, 0.5).requires_grad_(True)
    ctx = dr.RasterizeCudaContext(device="cpu")
    opt = torch.optim.Adam([tex], lr=0.05)
    losses = []
    for it in range(6):
        pos = _clip(verts, 0.7 * it)
        rast, rast_db = dr.rasterize(ctx, pos, tri, resolution=[32, 32])
        texc, texd = dr.interpolate(uv[None], rast, tri, rast_db=rast_db, diff_attrs="all")
        target = dr.texture(tex_ref[None], texc, texd, filter_mode="linear-mipmap-linear", max_mip_level=9)
        color = dr.texture(tex[None], texc, texd, filter_mode="linear-mipmap-linear", max_mip_level=9)
        color = color * (rast[..., -1:] > 0)
        target = target * (rast[..., -1:] > 0)
        loss = ((color - target) ** 2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert texd.shape == (1, 32, 32, 4) and torch.isfinite(tex.grad).all()
    # Minification: the 32x32 view of a 512x512 texture samples coarse levels (lod > 2).
    assert losses[-1] < 0.8 * losses[0], losses


def test_envphong_call_pattern_cube_env_map_fit():
    mesh = icosphere(2)
    verts, tri = mesh.verts.float(), mesh.faces.int()
    gen = torch.Generator().manual_seed(1)
    env_ref = torch.rand(6, 16, 16, 3, generator=gen)
    env = torch.full_like(env_ref, 0.5).requires_grad_(True)
    ctx = dr.RasterizeCudaContext(device="cpu")
    opt = torch.optim.Adam([env], lr=0.05)
    losses = []
    for it in range(6):
        angle = 0.9 * it
        pos = _clip(verts, angle)
        rast, rast_db = dr.rasterize(ctx, pos, tri, resolution=[32, 32])
        # Reflection of the view direction about the normal, in object space, per vertex.
        eye = torch.tensor([3.0 * math.sin(-angle), 0.0, 3.0 * math.cos(angle)])
        view = torch.nn.functional.normalize(verts - eye, dim=1)
        refl = view - 2 * (view * verts).sum(1, keepdim=True) * verts
        refl_px, refl_da = dr.interpolate(refl[None], rast, tri, rast_db=rast_db, diff_attrs="all")
        target = dr.texture(env_ref[None], refl_px, uv_da=refl_da, filter_mode="linear-mipmap-linear",
                            boundary_mode="cube")
        color = dr.texture(env[None], refl_px, uv_da=refl_da, filter_mode="linear-mipmap-linear",
                           boundary_mode="cube")
        mask = rast[..., -1:] > 0
        loss = (((color - target) * mask) ** 2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert refl_da.shape == (1, 32, 32, 6) and torch.isfinite(env.grad).all()
    assert losses[-1] < 0.8 * losses[0], losses


def test_earth_atlas_layout_positional_uv_da_and_both_branches():
    """earth.py's texture is a 4x3 atlas of square maps with ``max_mip_level`` stopping at one
    texel per map (not at 1x1); it passes ``uv_da`` positionally and has a no-mip branch."""
    gen = torch.Generator().manual_seed(2)
    tile = 16
    tex = torch.rand(1, 3 * tile, 4 * tile, 3, generator=gen)            # 48 x 64: level 4 is 3 x 4
    # Level 4 sampled at its texel centres (bias far above the clamp) is the mean of each map.
    j, i = torch.meshgrid(torch.arange(4), torch.arange(3), indexing="xy")
    uv = torch.stack([(j + 0.5) / 4, (i + 0.5) / 3], -1)[None].float()  # [1, 3, 4, 2]
    top = dr.texture(tex, uv, None, torch.full((1, 3, 4), 50.0), filter_mode="linear-mipmap-linear",
                     max_mip_level=4)
    tile_means = tex[0].reshape(3, tile, 4, tile, 3).mean((1, 3))
    assert torch.allclose(top[0], tile_means, atol=1e-6)
    # Positional uv_da is the keyword uv_da; the no-mip branch ('linear', no uv_da) has tex gradients.
    mesh = icosphere(1)
    verts, tri = mesh.verts.float(), mesh.faces.int()
    ctx = dr.RasterizeCudaContext()
    rast, rast_db = dr.rasterize(ctx, _clip(verts, 0.3), tri, resolution=[24, 24])
    vuv = (verts[:, :2] * 0.45 + 0.5)[None]
    texc, texd = dr.interpolate(vuv, rast, tri, rast_db=rast_db, diff_attrs="all")
    pos_arg = dr.texture(tex, texc, texd, filter_mode="linear-mipmap-linear", max_mip_level=4)
    kw_arg = dr.texture(tex, texc, uv_da=texd, filter_mode="linear-mipmap-linear", max_mip_level=4)
    assert torch.equal(pos_arg, kw_arg)
    opt = tex.clone().requires_grad_(True)
    texc, _ = dr.interpolate(vuv, rast, tri)
    color = dr.texture(opt, texc, filter_mode="linear") * torch.clamp(rast[..., -1:], 0, 1)
    color.sum().backward()
    assert torch.isfinite(opt.grad).all() and opt.grad.abs().sum() > 0


def test_envphong_background_zero_directions_and_white_background():
    """envphong.py looks up normalised reflection vectors that are exactly 0 on the background
    (interpolate writes zeros there), then replaces the background by white with torch.where;
    the cube lookup must read 0 there and keep every gradient finite (env map and Phong exponent)."""
    mesh = icosphere(2)
    verts, tri = mesh.verts.float(), mesh.faces.int()
    gen = torch.Generator().manual_seed(3)
    env = torch.rand(6, 8, 8, 3, generator=gen).requires_grad_(True)
    phong_exp = torch.tensor(5.0, requires_grad=True)
    ctx = dr.RasterizeCudaContext()
    rast, rast_db = dr.rasterize(ctx, _clip(verts, 0.4), tri, [24, 24])
    refl, refld = dr.interpolate(verts[None], rast, tri, rast_db=rast_db, diff_attrs="all")
    refl = refl / (torch.sum(refl ** 2, -1, keepdim=True) + 1e-8) ** 0.5
    background = rast[..., -1:] == 0
    assert background.any() and (~background).any()
    color = dr.texture(env[None], refl, uv_da=refld, filter_mode="linear-mipmap-linear", boundary_mode="cube")
    assert torch.equal(color[background.expand_as(color)], torch.zeros(int(background.sum()) * 3))
    ldotr = torch.sum(-torch.tensor([0.0, 0.0, 1.0]) * refl, -1, keepdim=True)
    color = color + torch.max(torch.tensor(0.0), ldotr) ** phong_exp
    color = torch.where(background, torch.tensor(1.0), color)
    ((color - 0.5) ** 2).mean().backward()
    assert torch.isfinite(env.grad).all() and env.grad.abs().sum() > 0
    assert torch.isfinite(phong_exp.grad)


def test_nvdiffrast_0_3_samples_gl_context_with_and_without_db():
    """nvdiffrast 0.3's samples pick ``dr.RasterizeGLContext()`` (``--opengl``); its ``output_db=False``
    empties rast_db to [B, H, W, 0] (rasterize and DepthPeeler); ``mode`` is checked."""
    mesh = icosphere(1)
    verts, tri = mesh.verts.float(), mesh.faces.int()
    pos = _clip(verts, 0.2)
    rast, db = dr.rasterize(dr.RasterizeCudaContext(), pos, tri, [16, 16])
    gl_rast, gl_db = dr.rasterize(dr.RasterizeGLContext(), pos, tri, [16, 16])
    assert torch.equal(rast, gl_rast) and torch.equal(db, gl_db) and db.shape == (1, 16, 16, 4)
    ctx = dr.RasterizeGLContext(output_db=False)
    no_rast, no_db = dr.rasterize(ctx, pos, tri, [16, 16])
    assert torch.equal(no_rast, rast) and no_db.shape == (1, 16, 16, 0)
    with dr.DepthPeeler(ctx, pos, tri, [16, 16]) as peeler:
        layers = [peeler.rasterize_next_layer() for _ in range(2)]
    assert torch.equal(layers[0][0], rast) and all(layer[1].shape == (1, 16, 16, 0) for layer in layers)
    assert (layers[1][0][..., 3] > 0).any()               # the sphere's back faces
    with pytest.raises(ValueError, match="mode"):
        dr.RasterizeGLContext(mode="gl")
    with pytest.raises(ValueError, match="mode='manual'"):
        ctx.set_context()
    dr.RasterizeGLContext(mode="manual").set_context()
