"""Tests of csmlab.render: row order, silhouettes, depth, textures, shading, gradients.

All scenes are tiny and analytic, so every expected pixel can be written down.
"""

import math
from pathlib import Path

import pytest
import torch

from csmlab import geometry as G
from csmlab import render

QUAD_FACES = torch.tensor([[0, 1, 2], [0, 2, 3]])  # counter-clockwise seen from +z


def quad(x0, x1, y0, y1, z=0.0):
    """[4,3] corners of an axis-aligned rectangle in the plane z (counter-clockwise from +z)."""
    return torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=torch.float32)


def ortho_pos(verts, scale=1.0, R=None):
    """[V,3] object points -> [1,V,4] clip space, identity pose unless R is given."""
    R = torch.eye(3)[None] if R is None else R
    return G.ortho_clip(verts[None], torch.tensor([float(scale)]), R, torch.zeros(1, 2))


def pixel_centres_ndc(H, W):
    """[H,W] NDC x and y of each pixel centre of a top-row-first image."""
    i, j = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    ndc = G.pixel_to_ndc(torch.stack([j + 0.5, i + 0.5], dim=-1), H, W)
    return ndc[..., 0], ndc[..., 1]


# ---------------------------------------------------------------- row order

def test_flip_rows_round_trips_and_reverses_rows():
    x = torch.randn(2, 5, 7, 3)  # nvdiffrast layout [B,H,W,C], row 0 = bottom
    img = render.flip_rows(x)
    assert img.shape == (2, 3, 5, 7)
    assert torch.equal(img[:, :, 0], x[:, 4].permute(0, 2, 1))   # top image row = last nvdiffrast row
    assert torch.equal(render.image_to_nv(img), x)
    y = torch.randn(2, 3, 5, 7)
    assert torch.equal(render.flip_rows(render.image_to_nv(y)), y)


def test_flip_rows_is_the_only_row_flip():
    """Only render.py may flip rows (docs/design.md, section 2): other modules call flip_rows/image_to_nv."""
    root = Path(render.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "render.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (".flip(1)", ".flip(dims=(1,))", ".flip(-3)", "flipud("):
            if pattern in text:
                offenders.append(f"{path.relative_to(root)}: {pattern}")
    assert not offenders, f"row flips outside render.flip_rows: {offenders}"


# ---------------------------------------------------------------- silhouettes

def test_silhouette_of_orthographic_rectangle_is_top_row_first():
    # A rectangle in the upper half of the view: x in [-0.5, 0.5], y in [0, 0.75] (NDC, y up).
    # At 8x8 the pixel centres are at +-0.125, +-0.375, ... so columns 2..5 and rows 1..3 (from the top) are in.
    H = W = 8
    r = render.rasterize_mesh(ortho_pos(quad(-0.5, 0.5, 0.0, 0.75)), QUAD_FACES, (H, W))
    expected = torch.zeros(H, W)
    expected[1:4, 2:6] = 1
    assert torch.equal(r.mask[0, 0], expected)
    assert torch.equal(render.silhouette(r, antialias=False)[0, 0], expected)
    # Antialiasing only touches pixels next to the silhouette; it never changes far-away ones.
    aa = render.silhouette(r, antialias=True)[0, 0]
    assert aa.shape == (H, W)
    assert torch.all(aa[6:] == 0) and torch.all(aa[:, :1] == 0)
    assert torch.all((aa >= 0) & (aa <= 1))
    # Face ids: -1 off the mask; one of the two triangles inside.
    ids = r.face_ids[0]
    assert torch.equal(ids == -1, expected == 0)
    assert set(ids[expected > 0].tolist()) == {0, 1}


def test_silhouette_follows_rotation_and_scale():
    # Azimuth 90 deg turns the object's +x side to the viewer: a thin slab in the y-z plane at x = 0.5 becomes
    # a rectangle whose image-x extent is its z extent.
    slab = torch.tensor([[0.5, -0.5, 0.0], [0.5, -0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.0]])
    R = G.azel_to_matrix(torch.tensor([math.pi / 2]), torch.tensor([0.0]))
    r = render.rasterize_mesh(ortho_pos(slab, scale=1.0, R=R), QUAD_FACES, (8, 8))
    fx, fy = pixel_centres_ndc(8, 8)
    # Camera x of object point (x, y, z) is -z at azimuth 90 (the right side faces the viewer, the front goes left).
    inside = (fx > -0.5) & (fx < 0.0) & (fy.abs() < 0.5)
    assert torch.equal(r.mask[0, 0] > 0, inside)


# ---------------------------------------------------------------- depth

def test_depth_image_matches_analytic_plane():
    # Plane z = 0.2 x - 0.3 y + 0.1 seen at identity pose with scale s: pixel (fx, fy) sees x = fx/s, y = fy/s.
    s = 0.8
    a, b, c = 0.2, -0.3, 0.1
    xy = torch.tensor([[-2.0, -2.0], [2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]])
    verts = torch.cat([xy, (a * xy[:, :1] + b * xy[:, 1:] + c)], dim=1)
    pos = ortho_pos(verts, scale=s)
    r = render.rasterize_mesh(pos, QUAD_FACES, (12, 16))
    depth = render.depth_image(r, G.ortho_depth(verts[None], torch.eye(3)[None]))
    fx, fy = pixel_centres_ndc(12, 16)
    expected = -(a * fx / s + b * fy / s + c)
    assert r.mask.min() == 1
    assert torch.allclose(depth[0, 0], expected, atol=1e-5)


def test_depth_test_keeps_the_nearer_surface():
    # Two overlapping squares; the one with larger object z is nearer the viewer and must win.
    far_sq, near_sq = quad(-0.8, 0.4, -0.8, 0.4, z=-0.5), quad(-0.4, 0.8, -0.4, 0.8, z=0.3)
    verts = torch.cat([far_sq, near_sq])
    faces = torch.cat([QUAD_FACES, QUAD_FACES + 4])
    r = render.rasterize_mesh(ortho_pos(verts), faces, (16, 16))
    depth = render.depth_image(r, G.ortho_depth(verts[None], torch.eye(3)[None]))[0, 0]
    fx, fy = pixel_centres_ndc(16, 16)
    in_near = (fx > -0.4) & (fx < 0.8) & (fy > -0.4) & (fy < 0.8)
    in_far = (fx > -0.8) & (fx < 0.4) & (fy > -0.8) & (fy < 0.4)
    assert torch.allclose(depth[in_near], torch.full_like(depth[in_near], -0.3))
    assert torch.allclose(depth[in_far & ~in_near], torch.full_like(depth[in_far & ~in_near], 0.5))
    assert torch.all(depth[~in_far & ~in_near] == 0)


def test_perspective_depth_is_perspective_correct():
    # A plane tilted away from a pinhole camera: z_cam = -(d0 + k y_cam). Along the ray through NDC (fx, fy),
    # X_cam = d (fx/f, fy/f, -1), so the depth there is d = d0 / (1 - k fy / f). Screen-linear
    # interpolation would be wrong by up to ~10% here; perspective-correct barycentrics get it exactly.
    fov, d0, k = 60.0, 3.0, 0.5
    f = 1.0 / math.tan(math.radians(fov) / 2)
    ys = torch.tensor([-2.0, -2.0, 2.0, 2.0])
    xs = torch.tensor([-2.0, 2.0, 2.0, -2.0])
    X_cam = torch.stack([xs, ys, -(d0 + k * ys)], dim=-1)[None]
    pos = G.perspective_clip(X_cam, fov, near=0.5, far=20.0)
    r = render.rasterize_mesh(pos, QUAD_FACES, (16, 16))
    depth = render.depth_image(r, -X_cam[..., 2])[0, 0]
    _, fy = pixel_centres_ndc(16, 16)
    expected = d0 / (1 - k * fy / f)
    on = r.mask[0, 0] > 0
    assert on.sum() > 100
    assert torch.allclose(depth[on], expected[on], rtol=1e-4)


# ---------------------------------------------------------------- textures and attributes

def _full_screen_uv_quad():
    """A quad beyond the screen with uv = ((x+1)/2, (y+1)/2): the top of the screen has v = 1."""
    verts = quad(-1.5, 1.5, -1.5, 1.5)
    uv = (verts[:, :2] + 1) / 2
    return ortho_pos(verts), uv


def test_textured_image_reproduces_texture_with_v1_at_top():
    H = W = 4
    tex = torch.arange(3 * H * W, dtype=torch.float32).reshape(3, H, W) / (3 * H * W)  # all texels differ
    pos, uv = _full_screen_uv_quad()
    r = render.rasterize_mesh(pos, QUAD_FACES, (H, W))
    img = render.textured_image(r, uv, tex, filter_mode="nearest", antialias=False)
    # Pixel (i, j) samples uv = ((j+0.5)/W, 1 - (i+0.5)/H): exactly texel (i, j) of the top-row-first texture.
    assert torch.allclose(img[0], tex)
    lin = render.textured_image(r, uv, tex, filter_mode="linear", antialias=True)
    assert torch.allclose(lin[0], tex, atol=1e-5)  # texel centres: bilinear weights are exactly one-hot


def test_textured_image_samples_top_left_texel_for_high_v():
    tex = torch.zeros(3, 4, 4)
    tex[:, 0, 0] = torch.tensor([1.0, 0.0, 0.0])    # top-left texel: red
    tex[:, 3, 0] = torch.tensor([0.0, 0.0, 1.0])    # bottom-left texel: blue
    pos, _ = _full_screen_uv_quad()
    r = render.rasterize_mesh(pos, QUAD_FACES, (3, 3))
    near_top = torch.tensor([0.1, 0.9]).expand(4, 2)
    img = render.textured_image(r, near_top, tex, filter_mode="nearest", antialias=False)
    assert torch.allclose(img[0], torch.tensor([1.0, 0, 0])[:, None, None].expand(3, 3, 3))
    near_bottom = torch.tensor([0.1, 0.1]).expand(4, 2)
    img = render.textured_image(r, near_bottom, tex, filter_mode="nearest", antialias=False)
    assert torch.allclose(img[0], torch.tensor([0.0, 0, 1])[:, None, None].expand(3, 3, 3))


def test_interpolate_image_is_linear_in_screen_space_for_ortho():
    pos, _ = _full_screen_uv_quad()
    r = render.rasterize_mesh(pos, QUAD_FACES, (6, 10))
    ndc_xy = pos[0, :, :2]
    for attr in (ndc_xy, ndc_xy[None], ndc_xy[None, :, 1]):   # [V,C], [B,V,C] and [B,V] forms
        out = render.interpolate_image(r, attr)
        fx, fy = pixel_centres_ndc(6, 10)
        assert torch.allclose(out[0, -1], fy, atol=1e-5)       # the y channel is y-up NDC, row 0 at the top
    assert torch.allclose(render.interpolate_image(r, ndc_xy)[0, 0], fx, atol=1e-5)
    with pytest.raises(ValueError, match="attr"):
        render.interpolate_image(r, torch.zeros(5, 2))


# ---------------------------------------------------------------- shading

def test_lambertian_values():
    albedo = torch.full((2, 3, 1, 1), 0.8)
    n = torch.tensor([0.0, 0.0, 1.0])[None, :, None, None].expand(2, 3, 1, 1)
    out = render.lambertian(albedo, n, torch.tensor([0.0, 0.0, 2.0]))      # unnormalised light: normalised
    assert torch.allclose(out, torch.full_like(out, 0.8))                   # 0.8 * (0.5 + 0.5 * 1)
    out = render.lambertian(albedo, n, torch.tensor([1.0, 0.0, 0.0]))      # grazing light: ambient only
    assert torch.allclose(out, torch.full_like(out, 0.4))
    out = render.lambertian(albedo, n, torch.tensor([0.0, 0.0, -1.0]))     # light from behind: clamped at 0
    assert torch.allclose(out, torch.full_like(out, 0.4))
    light = torch.tensor([[0.0, math.sin(math.pi / 3), 0.5], [0.0, 0.0, 1.0]])  # 60 deg and 0 deg, per item
    out = render.lambertian(albedo, n, light, ambient=0.2, diffuse=0.6)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([0.8 * (0.2 + 0.3), 0.8 * 0.8]))
    with pytest.raises(ValueError, match="normals"):
        render.lambertian(albedo, n[:, :2], light)


# ---------------------------------------------------------------- gradients

def test_antialiased_silhouette_has_vertex_gradients():
    size = torch.tensor(1.0, requires_grad=True)
    H = W = 32
    # Edges at NDC +-0.45 fall between pixel centres (an edge exactly half-way between two centres blends
    # by 0 and, as in nvdiffrast, passes no gradient).
    verts = quad(-0.45, 0.45, -0.45, 0.45) * size
    r = render.rasterize_mesh(ortho_pos(verts), QUAD_FACES, (H, W))
    area_px = render.silhouette(r, antialias=True).sum()
    area_px.backward()
    # The square is 0.9 * 16 * size = 14.4 * size pixels wide: d(area)/d(size) = 2 * 14.4^2 = 414.72 at size 1.
    expected = 2 * 14.4 ** 2
    assert size.grad is not None and 0.7 * expected < float(size.grad) < 1.3 * expected

    pos = ortho_pos(quad(-0.45, 0.45, -0.45, 0.45)).requires_grad_(True)
    r = render.rasterize_mesh(pos, QUAD_FACES, (H, W))
    render.silhouette(r, antialias=True).sum().backward()
    g = pos.grad[0, :, :2]
    assert torch.all(g.norm(dim=-1) > 0)
    # Pushing every corner outwards grows the area: the gradient points away from the centre.
    assert torch.all((g * pos[0, :, :2].detach()).sum(-1) > 0)


def test_hard_silhouette_has_no_vertex_gradient():
    pos = ortho_pos(quad(-0.5, 0.5, -0.5, 0.5)).requires_grad_(True)
    r = render.rasterize_mesh(pos, QUAD_FACES, (16, 16))
    hard = render.silhouette(r, antialias=False)
    assert not hard.requires_grad  # coverage is a step function of the vertices: no gradient at all


def test_rasterize_mesh_rejects_bad_input():
    with pytest.raises(ValueError, match="pos"):
        render.rasterize_mesh(torch.zeros(1, 4, 3), QUAD_FACES, (8, 8))
    with pytest.raises(ValueError, match="resolution"):
        render.rasterize_mesh(torch.zeros(1, 4, 4), QUAD_FACES, (8, 0))


def test_lambertian_keeps_the_normals_device():
    # Python-number coefficients and a CPU light must follow the normals (CUDA in practice; 'meta' here,
    # which raises on any cross-device op just as CUDA would).
    albedo = torch.rand(2, 3, 4, 4, device="meta")
    normals = torch.rand(2, 3, 4, 4, device="meta")
    out = render.lambertian(albedo, normals, torch.tensor([0.0, 0.0, 1.0]), ambient=0.3, diffuse=0.7)
    assert out.device.type == "meta" and out.shape == (2, 3, 4, 4)
