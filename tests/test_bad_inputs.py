"""Bad input to metrics, geometry and render raises ValueError naming the argument (issue 20).

Every entry is one bad call as a careless or hostile user would make it: a wrong
shape, dtype, device-free cross-argument mismatch (batch, dtype), NaN, an empty
mask, a zero quaternion, float faces. None may return a number or surface as a
torch error.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from csmlab import geometry as G
from csmlab import metrics as M
from csmlab import render as R

NAN = float("nan")
B, K, H, W = 2, 5, 8, 8


def kp(*shape, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0)).to(dtype) * 8


def vis(shape=(B, K)):
    return torch.ones(shape, dtype=torch.bool)


def img(c=1, b=B, value=None, dtype=torch.float32):
    x = torch.rand(b, c, H, W, generator=torch.Generator().manual_seed(1)).to(dtype) + 0.5
    return x if value is None else torch.full_like(x, value)


def with_nan(x, index=(0,)):
    x = x.clone()
    x.view(-1)[index[0]] = NAN
    return x


def mask(b=B, value=1.0):
    return torch.full((b, 1, H, W), value)


def empty_second():
    m = mask()
    m[1] = 0
    return m


def eye(b=B, dtype=torch.float32):
    return torch.eye(3, dtype=dtype).expand(b, 3, 3).clone()


def pts(b=B, n=6, dtype=torch.float32):
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(2)).to(dtype) - 0.5


_RASTER = {}


def raster():
    """A small rendered icosphere (2 views), built once."""
    if not _RASTER:
        mesh = G.icosphere(1)
        pos = G.ortho_clip(mesh.verts.expand(B, -1, -1), torch.full((B,), 0.8), eye(), torch.zeros(B, 2))
        _RASTER["mesh"], _RASTER["r"] = mesh, R.rasterize_mesh(pos, mesh.faces, (H, W))
    return _RASTER["r"]


def clip():
    mesh = G.icosphere(1)
    return G.ortho_clip(mesh.verts.expand(B, -1, -1), torch.full((B,), 0.8), eye(), torch.zeros(B, 2)), mesh.faces


def nv():
    return raster().pos.shape[1]


METRICS = [
    ("pred", lambda: M.pck(kp(B, K, 3), kp(B, K, 3), vis(), 0.1, 8.0)),
    ("gt", lambda: M.pck(kp(B, K, 2), kp(B, K + 1, 2), vis(), 0.1, 8.0)),
    ("visible", lambda: M.pck(kp(B, K, 2), kp(B, K, 2), vis((B, K + 1)), 0.1, 8.0)),
    ("visible", lambda: M.pck(kp(B, K, 2), kp(B, K, 2), torch.full((B, K), 0.5), 0.1, 8.0)),
    ("pred", lambda: M.pck(kp(B, K, 2, dtype=torch.int64), kp(B, K, 2), vis(), 0.1, 8.0)),
    ("gt", lambda: M.pck(kp(B, K, 2), kp(B, K, 2, dtype=torch.float64), vis(), 0.1, 8.0)),
    ("pred", lambda: M.pck(with_nan(kp(B, K, 2)), kp(B, K, 2), vis(), 0.1, 8.0)),
    ("gt", lambda: M.pck(kp(B, K, 2), with_nan(kp(B, K, 2)), vis(), 0.1, 8.0)),
    ("threshold", lambda: M.pck(kp(B, K, 2), kp(B, K, 2), vis(), -0.1, 8.0)),
    ("threshold", lambda: M.pck(kp(B, K, 2), kp(B, K, 2), vis(), NAN, 8.0)),
    ("normalizer", lambda: M.pck(kp(B, K, 2), kp(B, K, 2), vis(), 0.1, torch.ones(3))),
    ("normalizer", lambda: M.pck(kp(B, K, 2), kp(B, K, 2), vis(), 0.1, 0.0)),
    ("normalizer", lambda: M.pck(kp(B, K, 2), kp(B, K, 2), vis(), 0.1, torch.tensor([8.0, -1.0]))),
    ("pred", lambda: M.pck([[1.0, 2.0]], kp(1, 2), vis((1,)), 0.1, 8.0)),
    ("gt", lambda: M.mask_iou(mask(), mask(b=3))),
    ("pred", lambda: M.mask_iou(mask()[:, 0], mask()[:, 0])),
    ("pred", lambda: M.mask_iou(mask().long(), mask())),
    ("gt", lambda: M.mask_iou(mask(), with_nan(mask()))),
    ("threshold", lambda: M.mask_iou(mask(), mask(), "0.5")),
    ("mask", lambda: M.scale_invariant_depth_error(img(), img(), mask()[:, 0])),
    ("pred", lambda: M.scale_invariant_depth_error(-img(), img(), mask())),
    ("gt", lambda: M.scale_invariant_depth_error(img(), with_nan(img()), mask())),
    ("mask", lambda: M.scale_invariant_depth_error(img(), img(), empty_second())),
    ("mask", lambda: M.scale_invariant_depth_error(img(), img(), mask(value=0.5))),
    ("pred", lambda: M.scale_invariant_depth_error(img().long(), img(), mask())),
    ("gt", lambda: M.scale_invariant_depth_error(img(), img(dtype=torch.float64), mask())),
    ("mask", lambda: M.mean_angle_deviation(img(3), img(3), mask()[:, 0])),        # the audit's 744 degrees
    ("pred_normals", lambda: M.mean_angle_deviation(img(2), img(2), mask())),      # the audit's 90.6 degrees
    ("gt_normals", lambda: M.mean_angle_deviation(img(3), img(3, b=3), mask())),
    ("pred_normals", lambda: M.mean_angle_deviation(img(3, value=0.0), img(3), mask())),
    ("gt_normals", lambda: M.mean_angle_deviation(img(3), with_nan(img(3)), mask())),
    ("mask", lambda: M.mean_angle_deviation(img(3), img(3), mask(b=3))),
    ("confidence", lambda: M.apk(torch.rand(6), with_nan(torch.rand(6)), 0.1)),     # NaN used to rank first
    ("confidence", lambda: M.apk(torch.rand(6), torch.rand(5), 0.1)),
    ("errors", lambda: M.apk(torch.rand(2, 3), torch.rand(2, 3), 0.1)),
    ("errors", lambda: M.apk(torch.arange(6), torch.rand(6), 0.1)),
    ("threshold", lambda: M.apk(torch.rand(6), torch.rand(6), NAN)),
    ("errors", lambda: M.apk(-torch.rand(6), torch.rand(6), 0.1)),
]

GEOMETRY = [
    ("angle", lambda: G.angle_to_bin(torch.tensor([0.1, NAN]), 8)),                # was INT64_MIN
    ("n_bins", lambda: G.angle_to_bin(torch.tensor([0.1]), 0)),
    ("n_bins", lambda: G.angle_to_bin(torch.tensor([0.1]), 2.5)),
    ("high", lambda: G.angle_to_bin(torch.tensor([0.1]), 4, low=1.0, high=1.0)),
    ("index", lambda: G.bin_to_angle(torch.tensor([8]), 8)),
    ("index", lambda: G.bin_to_angle(torch.tensor([1.0]), 8)),
    ("height", lambda: G.pixel_to_ndc(torch.ones(3, 2), 0, 4)),                    # was inf
    ("width", lambda: G.ndc_to_pixel(torch.ones(3, 2), 4, -1)),
    ("xy", lambda: G.pixel_to_ndc(torch.ones(3, 2, dtype=torch.long), 4, 4)),
    ("q", lambda: G.quaternion_to_matrix(torch.zeros(2, 4))),                       # was the identity
    ("q", lambda: G.quaternion_to_matrix(torch.tensor([[1.0, NAN, 0, 0]]))),
    ("q", lambda: G.quaternion_to_matrix(torch.ones(2, 3))),
    ("q", lambda: G.quaternion_to_axis_angle(torch.zeros(4))),
    ("b", lambda: G.quaternion_multiply(torch.ones(2, 4), torch.ones(3, 4))),
    ("b", lambda: G.quaternion_multiply(torch.ones(2, 4), torch.ones(2, 4, dtype=torch.float64))),
    ("R2", lambda: G.rotation_angle_deg(eye(2), eye(3))),
    ("R", lambda: G.matrix_to_quaternion(torch.ones(2, 3))),
    ("axis_angle", lambda: G.axis_angle_to_matrix(torch.ones(2, 4))),
    ("scale", lambda: G.ortho_project(pts(), torch.ones(3), eye(), torch.zeros(2, 2))),   # batch 2 against 3
    ("R", lambda: G.ortho_project(pts(), torch.ones(2), eye()[:, :2], torch.zeros(2, 2))),  # R [B,2,3]
    ("R", lambda: G.ortho_project(pts(), torch.ones(2), eye(dtype=torch.float64), torch.zeros(2, 2))),
    ("trans", lambda: G.ortho_project(pts(), torch.ones(2), eye(), torch.zeros(3, 2))),
    ("R", lambda: G.ortho_depth(pts(), eye(3))),
    ("X", lambda: G.ortho_clip(pts().long(), torch.ones(2), eye(), torch.zeros(2, 2))),
    ("fov_deg", lambda: G.perspective_clip(pts(), 180.0, 1.0, 10.0)),
    ("near", lambda: G.perspective_clip(pts(), 60.0, NAN, 10.0)),
    ("X_cam", lambda: G.perspective_clip(pts()[..., :2], 60.0, 1.0, 10.0)),
    ("quat", lambda: G.OrthoCamera(torch.ones(2), torch.ones(3, 4), torch.zeros(2, 2))),
    ("trans", lambda: G.OrthoCamera(torch.ones(2), torch.ones(2, 4), torch.zeros(2, 2, dtype=torch.float64))),
    ("faces", lambda: G.Mesh(torch.rand(4, 3), torch.tensor([[0.0, 1.7, 2.2]]))),  # float faces
    ("verts", lambda: G.Mesh(with_nan(torch.rand(4, 3)), torch.tensor([[0, 1, 2]]))),
    ("faces", lambda: G.face_normals(torch.rand(4, 3), torch.tensor([[0, 1, 4]]))),
    ("faces", lambda: G.edges(torch.tensor([[0.0, 1.0, 2.0]]))),
    ("p", lambda: G.sphere_to_uv(with_nan(torch.ones(2, 3)))),
    ("uv", lambda: G.uv_to_sphere(torch.ones(2, 3))),
    ("azimuth", lambda: G.azel_to_matrix(torch.zeros(2), torch.zeros(3))),
    ("elevation", lambda: G.azel_to_matrix(0.0, NAN)),
    ("n", lambda: G.random_rotation(-1)),
    ("radius", lambda: G.icosphere(1, radius=-1.0)),
    ("u", lambda: G.fit_scale_translation(pts(), torch.rand(3, 6, 2), eye())),
    ("weights", lambda: G.procrustes_init(pts(), torch.rand(2, 6, 2), torch.ones(2, 5))),
    ("R", lambda: G.mirror_rotation(eye(3), pts())),
]

RENDER = [
    ("faces", lambda: R.rasterize_mesh(clip()[0], clip()[1].float(), (H, W))),    # was truncated
    ("faces", lambda: R.rasterize_mesh(clip()[0], clip()[1] + 1000, (H, W))),     # was reported as 'tri'
    ("faces", lambda: R.rasterize_mesh(clip()[0], torch.zeros(4, 4, dtype=torch.long), (H, W))),
    ("pos", lambda: R.rasterize_mesh(clip()[0][0], clip()[1], (H, W))),
    ("pos", lambda: R.rasterize_mesh(with_nan(clip()[0]), clip()[1], (H, W))),
    ("pos", lambda: R.rasterize_mesh(clip()[0].long(), clip()[1], (H, W))),
    ("resolution", lambda: R.rasterize_mesh(*clip(), 0)),
    ("resolution", lambda: R.rasterize_mesh(*clip(), (8.5, 8))),
    ("resolution", lambda: R.rasterize_mesh(*clip(), (8,))),
    ("attr", lambda: R.interpolate_image(raster(), torch.rand(B, nv() + 1, 3))),
    ("attr", lambda: R.interpolate_image(raster(), with_nan(torch.rand(nv(), 3)))),
    ("r", lambda: R.interpolate_image(raster().rast, torch.rand(nv(), 3))),
    ("depth", lambda: R.depth_image(raster(), torch.rand(B, nv() - 1))),
    ("texture_img", lambda: R.textured_image(raster(), torch.rand(nv(), 2), torch.rand(3, 3, 4, 4))),
    ("uv", lambda: R.textured_image(raster(), torch.rand(nv() + 2, 2), torch.rand(3, 4, 4))),
    ("uv_faces", lambda: R.textured_image(raster(), torch.rand(nv(), 2), torch.rand(3, 4, 4),
                                          uv_faces=raster().tri.float())),
    ("normals", lambda: R.lambertian(img(3), img(2), torch.tensor([0.0, 0, 1]))),
    ("normals", lambda: R.lambertian(img(3), img(3, b=3), torch.tensor([0.0, 0, 1]))),
    ("light_dir", lambda: R.lambertian(img(3), img(3), torch.zeros(3))),
    ("ambient", lambda: R.lambertian(img(3), img(3), [0.0, 0, 1], ambient=NAN)),
    ("normals", lambda: R.lambertian(img(3), img(3, dtype=torch.float64), [0.0, 0, 1])),
    ("diffuse", lambda: R.lambertian(img(3), img(3), [0.0, 0, 1], diffuse=-1.0)),
    ("x", lambda: R.flip_rows(torch.rand(2, 8, 8))),
    ("r", lambda: R.silhouette(raster().rast)),
]

CASES = [("metrics", *c) for c in METRICS] + [("geometry", *c) for c in GEOMETRY] + [("render", *c) for c in RENDER]


def test_at_least_sixty_bad_calls():
    assert len(CASES) >= 60
    assert {area for area, _, _ in CASES} == {"metrics", "geometry", "render"}


@pytest.mark.parametrize("area, name, call", CASES, ids=[f"{a}-{i}-{n}" for i, (a, n, _) in enumerate(CASES)])
def test_bad_call_raises_value_error_naming_the_argument(area, name, call):
    with pytest.raises(ValueError) as info:
        call()
    assert re.search(rf"(^|[^A-Za-z0-9_]){re.escape(name)}([^A-Za-z0-9_]|$)", str(info.value)), str(info.value)


def test_good_calls_still_work_and_the_helpers_that_were_silent_now_behave():
    r = raster()
    assert R.silhouette(r).shape == (B, 1, H, W)
    empty = R.rasterize_mesh(clip()[0], torch.zeros(0, 3, dtype=torch.long), (H, W))
    assert torch.equal(R.silhouette(empty), torch.zeros(B, 1, H, W))  # 0 triangles: antialias is the identity
    assert float(M.pck(kp(B, K, 2), kp(B, K, 2), vis(), 0.1, torch.tensor([8.0, 8.0]))) == 1.0
    gt = kp(B, K, 2)
    gt[0, 0] = NAN   # an invisible keypoint may hold anything (datasets store NaN or 0 there)
    v = vis()
    v[0, 0] = False
    assert float(M.pck(gt.nan_to_num(), gt, v, 0.1, 8.0)) == 1.0
    assert M.mean_angle_deviation(img(3), img(3), mask()).abs().max() < 1e-2
    assert int(G.angle_to_bin(torch.tensor(math.pi), 4)) == 0
    assert torch.equal(G.sphere_to_uv(torch.zeros(2, 3)), torch.full((2, 2), 0.5))  # image zeros off the mask
    assert torch.allclose(G.azel_to_matrix(torch.zeros(2, dtype=torch.float64), 0.0).sum(), torch.tensor(6.0,
                          dtype=torch.float64))
