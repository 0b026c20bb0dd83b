"""Round-trip and convention tests for csmlab.geometry (docs/design.md, section 2)."""

import math

import pytest
import torch

from csmlab import geometry as G


def _rand_quat(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=torch.float64), dim=-1)


def _is_rotation(R, atol=1e-9):
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    return torch.allclose(R @ R.transpose(-1, -2), eye, atol=atol) and \
        torch.allclose(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol)


# ---------------------------------------------------------------- rotations

def test_quaternion_matrix_round_trip():
    q = _rand_quat(500)
    R = G.quaternion_to_matrix(q)
    assert _is_rotation(R)
    q2 = G.matrix_to_quaternion(R)
    assert (q2[:, 0] >= 0).all()
    # q and -q are the same rotation: compare up to sign, then the matrices exactly.
    same = torch.minimum((q2 - q).abs().amax(-1), (q2 + q).abs().amax(-1))
    assert same.max() < 1e-9
    assert torch.allclose(G.quaternion_to_matrix(q2), R, atol=1e-12)


def test_quaternion_to_matrix_known_rotation():
    # 90 degrees about +z maps x to y (column-vector convention X_cam = R X).
    half = math.pi / 4
    q = torch.tensor([math.cos(half), 0.0, 0.0, math.sin(half)], dtype=torch.float64)
    R = G.quaternion_to_matrix(q)
    assert torch.allclose(R @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                          torch.tensor([0.0, 1, 0], dtype=torch.float64), atol=1e-12)


def test_matrix_to_quaternion_near_pi_rotations():
    # Rotations by ~pi make 1 + trace ~ 0: Shepperd's method must pick another denominator.
    axes = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64,
                                                     generator=torch.Generator().manual_seed(1)), dim=-1)
    for angle in (math.pi, math.pi - 1e-6):
        R = G.axis_angle_to_matrix(axes * angle)
        assert torch.allclose(G.quaternion_to_matrix(G.matrix_to_quaternion(R)), R, atol=1e-9)


def test_quaternion_multiply_composes_matrices():
    a, b = _rand_quat(20, 1), _rand_quat(20, 2)
    assert torch.allclose(G.quaternion_to_matrix(G.quaternion_multiply(a, b)),
                          G.quaternion_to_matrix(a) @ G.quaternion_to_matrix(b), atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-10, 1e-5, 0.3, 2.0, math.pi - 1e-4, math.pi])
def test_axis_angle_matrix_round_trip(angle):
    g = torch.Generator().manual_seed(3)
    axes = torch.nn.functional.normalize(torch.randn(40, 3, generator=g, dtype=torch.float64), dim=-1)
    aa = axes * angle
    R = G.axis_angle_to_matrix(aa)
    assert _is_rotation(R)
    aa2 = G.matrix_to_axis_angle(R)
    assert torch.isfinite(aa2).all()
    assert torch.allclose(G.axis_angle_to_matrix(aa2), R, atol=1e-9)
    if angle < math.pi - 1e-3:
        # Away from pi the axis-angle vector is unique.
        assert torch.allclose(aa2, aa, atol=1e-8)
    else:
        # At pi, axis and -axis are the same rotation.
        assert torch.allclose(aa2.norm(dim=-1), torch.full((40,), angle, dtype=torch.float64), atol=1e-6)


def test_axis_angle_matches_quaternion_path():
    aa = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(G.quaternion_to_matrix(G.axis_angle_to_quaternion(aa)), G.axis_angle_to_matrix(aa),
                          atol=1e-10)


def test_axis_angle_gradient_finite_at_zero():
    aa = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    G.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_azel_matrix_round_trip():
    g = torch.Generator().manual_seed(5)
    az = (torch.rand(200, generator=g, dtype=torch.float64) * 2 - 1) * math.pi * 0.999
    el = (torch.rand(200, generator=g, dtype=torch.float64) * 2 - 1) * math.pi / 2 * 0.99
    roll = (torch.rand(200, generator=g, dtype=torch.float64) * 2 - 1) * math.pi * 0.999
    R = G.azel_to_matrix(az, el, roll)
    assert _is_rotation(R)
    az2, el2, roll2 = G.matrix_to_azel(R)
    assert torch.allclose(az2, az, atol=1e-8)
    assert torch.allclose(el2, el, atol=1e-8)
    assert torch.allclose(roll2, roll, atol=1e-8)


def test_azel_documented_directions():
    x, y = torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0])
    # Azimuth 90 deg: the object's right side (+x) faces the viewer (+z).
    assert torch.allclose(G.azel_to_matrix(math.pi / 2, 0.0) @ x, torch.tensor([0.0, 0, 1]), atol=1e-6)
    # Positive elevation: the top (+y) tilts towards the viewer.
    assert (G.azel_to_matrix(0.0, 0.3) @ y)[2] > 0.2


def test_rotation_angle_deg():
    R1 = G.azel_to_matrix(torch.tensor(0.2), torch.tensor(0.0))
    R2 = G.azel_to_matrix(torch.tensor(0.2 + math.radians(30)), torch.tensor(0.0))
    assert abs(float(G.rotation_angle_deg(R1, R2)) - 30.0) < 1e-3
    assert float(G.rotation_angle_deg(R1, R1)) < 0.1


def test_random_rotation_is_rotation():
    R = G.random_rotation(100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert R.shape == (100, 3, 3) and _is_rotation(R)


def test_angle_bins_round_trip_and_wrap():
    n = 8
    idx = torch.arange(n)
    assert torch.equal(G.angle_to_bin(G.bin_to_angle(idx, n), n), idx)
    width = 2 * math.pi / n
    # Angles just inside the low edge of each bin map to that bin.
    edges = -math.pi + idx.double() * width + 1e-6
    assert torch.equal(G.angle_to_bin(edges, n), idx)
    # The range wraps: +pi is the same angle as -pi, one full turn later is the same bin.
    assert int(G.angle_to_bin(torch.tensor(math.pi), n)) == 0
    assert torch.equal(G.angle_to_bin(G.bin_to_angle(idx, n) + 2 * math.pi, n), idx)
    with pytest.raises(ValueError, match="n_bins"):
        G.angle_to_bin(torch.tensor(0.0), 0)


# ---------------------------------------------------------------- sphere UV

def test_sphere_uv_round_trip():
    p = torch.nn.functional.normalize(torch.randn(1000, 3, dtype=torch.float64,
                                                  generator=torch.Generator().manual_seed(6)), dim=-1)
    uv = G.sphere_to_uv(p)
    assert (uv >= 0).all() and (uv <= 1).all()
    assert torch.allclose(G.uv_to_sphere(uv), p, atol=1e-6)
    uv_grid = torch.rand(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 0.98 + 0.01
    assert torch.allclose(G.sphere_to_uv(G.uv_to_sphere(uv_grid)), uv_grid, atol=1e-9)


def test_sphere_uv_landmarks():
    pts = torch.tensor([[0.0, 0, 1], [1.0, 0, 0], [0.0, 1, 0]])
    uv = G.sphere_to_uv(pts)
    assert torch.allclose(uv[0], torch.tensor([0.5, 0.5]))        # front
    assert torch.allclose(uv[1], torch.tensor([0.75, 0.5]))       # right side
    assert abs(float(uv[2, 1]) - 1.0) < 1e-3                      # top is v = 1


# ---------------------------------------------------------------- pixels, NDC, cameras

def test_pixel_ndc_round_trip_and_pixel_centres():
    H, W = 6, 10
    xy = torch.rand(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(8)) * torch.tensor(
        [W, H], dtype=torch.float64)
    assert torch.allclose(G.ndc_to_pixel(G.pixel_to_ndc(xy, H, W), H, W), xy, atol=1e-12)
    # Pixel centre (j + 0.5, i + 0.5) is NDC x = (2j+1)/W - 1 (nvdiffrast) and y = 1 - (2i+1)/H (y up).
    j, i = torch.meshgrid(torch.arange(W, dtype=torch.float64), torch.arange(H, dtype=torch.float64), indexing="xy")
    centres = torch.stack([j + 0.5, i + 0.5], dim=-1)
    ndc = G.pixel_to_ndc(centres, H, W)
    assert torch.allclose(ndc[..., 0], (2 * j + 1) / W - 1)
    assert torch.allclose(ndc[..., 1], 1 - (2 * i + 1) / H)
    # nvdiffrast's row r sits at y = (2r+1)/H - 1 counted bottom-up, so image row i is nvdiffrast row H-1-i.
    assert torch.allclose(ndc[..., 1], (2 * (H - 1 - i) + 1) / H - 1)
    # Image corners.
    assert torch.allclose(G.pixel_to_ndc(torch.tensor([0.0, 0.0]), H, W), torch.tensor([-1.0, 1.0]))
    assert torch.allclose(G.pixel_to_ndc(torch.tensor([float(W), float(H)]), H, W), torch.tensor([1.0, -1.0]))


def test_ortho_project_and_clip():
    X = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, -1.0]]])
    s = torch.tensor([0.5])
    t = torch.tensor([[0.1, -0.2]])
    R = torch.eye(3)[None]
    uv = G.ortho_project(X, s, R, t)
    assert torch.allclose(uv, torch.tensor([[[0.6, 0.8], [0.1, -0.2]]]))
    clip = G.ortho_clip(X, s, R, t)
    assert clip.shape == (1, 2, 4) and clip.is_contiguous()
    assert torch.allclose(clip[..., :2], uv) and torch.all(clip[..., 3] == 1)
    # Nearer (larger object z at identity pose) means smaller z/w, an affine map of depth.
    assert torch.allclose(clip[..., 2], -G.ORTHO_Z_SCALE * X[..., 2])
    assert torch.allclose(G.ortho_depth(X, R), -X[..., 2])
    # A rotation is applied before the projection: azimuth 90 deg brings +x to the viewer.
    R90 = G.azel_to_matrix(torch.tensor([math.pi / 2]), torch.tensor([0.0]))
    xs = torch.tensor([[[1.0, 0.0, 0.0]]])
    assert torch.allclose(G.ortho_project(xs, torch.ones(1), R90, torch.zeros(1, 2)), torch.zeros(1, 1, 2), atol=1e-6)
    assert float(G.ortho_depth(xs, R90)) == pytest.approx(-1.0, abs=1e-6)


def test_ortho_camera_dataclass_matches_functions():
    q = _rand_quat(3, 9).float()
    cam = G.OrthoCamera(torch.tensor([0.5, 0.7, 0.9]), q, torch.zeros(3, 2))
    X = torch.randn(3, 5, 3, generator=torch.Generator().manual_seed(10))
    assert torch.allclose(cam.clip(X), G.ortho_clip(X, cam.scale, G.quaternion_to_matrix(q), cam.trans))
    single = G.OrthoCamera.from_dict({"scale": torch.tensor(0.5), "quat": q[0], "trans": torch.zeros(2)})
    assert single.quat.shape == (1, 4)


def test_perspective_clip_depth_range():
    X = torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.0, -10.0], [1.0, 0.5, -2.0]]])
    clip = G.perspective_clip(X, fov_deg=90.0, near=1.0, far=10.0)
    ndc_z = clip[..., 2] / clip[..., 3]
    assert torch.allclose(ndc_z[0, :2], torch.tensor([-1.0, 1.0]), atol=1e-6)
    assert torch.allclose(clip[0, 2, :2] / clip[0, 2, 3], torch.tensor([0.5, 0.25]), atol=1e-6)  # tan(45)=1
    with pytest.raises(ValueError, match="near"):
        G.perspective_clip(X, 60.0, near=2.0, far=1.0)


# ---------------------------------------------------------------- meshes

@pytest.mark.parametrize("subdiv,nv,nf", [(0, 12, 20), (3, 642, 1280), (4, 2562, 5120)])
def test_icosphere_counts_and_closedness(subdiv, nv, nf):
    m = G.icosphere(subdiv)
    assert (m.num_verts, m.num_faces) == (nv, nf)
    assert torch.allclose(m.verts.norm(dim=-1), torch.ones(nv), atol=1e-6)
    E = G.edges(m.faces)
    assert E.shape == (3 * nf // 2, 2)                 # closed triangle mesh: E = 3F/2
    assert nv - E.shape[0] + nf == 2                   # Euler characteristic of a sphere
    assert (E[:, 0] < E[:, 1]).all()


def test_normals_point_outward_on_sphere():
    m = G.icosphere(3)
    vn = G.vertex_normals(m.verts, m.faces)
    assert torch.allclose(vn.norm(dim=-1), torch.ones(m.num_verts), atol=1e-5)
    assert (vn * m.verts).sum(-1).min() > 0.99
    fn = G.face_normals(m.verts, m.faces)
    centroids = m.verts[m.faces].mean(1)
    assert ((fn * centroids).sum(-1) > 0).all()
    # Batched input gives per-item results.
    vb = torch.stack([m.verts, 2 * m.verts])
    assert torch.allclose(G.vertex_normals(vb, m.faces)[1], vn, atol=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda: G.quaternion_to_matrix(torch.zeros(2, 3)), "q"),
    (lambda: G.matrix_to_quaternion(torch.zeros(3, 4)), "R"),
    (lambda: G.axis_angle_to_matrix(torch.zeros(4)), "axis_angle"),
    (lambda: G.quaternion_to_matrix(torch.zeros(2, 4, dtype=torch.int64)), "q"),
    (lambda: G.sphere_to_uv(torch.zeros(5, 2)), "p"),
    (lambda: G.uv_to_sphere(torch.zeros(5, 3)), "uv"),
    (lambda: G.pixel_to_ndc(torch.zeros(5, 3), 4, 4), "xy"),
    (lambda: G.ndc_to_pixel(torch.zeros(5), 4, 4), "ndc"),
    (lambda: G.ortho_project(torch.zeros(2, 5, 2), torch.ones(2), torch.eye(3).expand(2, 3, 3), torch.zeros(2, 2)),
     "X"),
    (lambda: G.ortho_project(torch.zeros(2, 5, 3), torch.ones(3), torch.eye(3).expand(2, 3, 3), torch.zeros(2, 2)),
     "scale"),
    (lambda: G.ortho_project(torch.zeros(2, 5, 3), torch.ones(2), torch.eye(3), torch.zeros(2, 2)), "R"),
    (lambda: G.ortho_clip(torch.zeros(2, 5, 3), torch.ones(2), torch.eye(3).expand(2, 3, 3), torch.zeros(2)),
     "trans"),
    (lambda: G.Mesh(torch.zeros(4, 2), torch.zeros(1, 3, dtype=torch.long)), "verts"),
    (lambda: G.Mesh(torch.zeros(4, 3), torch.zeros(1, 4, dtype=torch.long)), "faces"),
    (lambda: G.Mesh(torch.zeros(4, 3), torch.tensor([[0, 1, 4]])), "faces"),
    (lambda: G.Mesh(torch.zeros(4, 3), torch.zeros(1, 3)), "faces"),
    (lambda: G.icosphere(-1), "subdiv"),
    (lambda: G.edges(torch.zeros(3, 2, dtype=torch.long)), "faces"),
])
def test_bad_shapes_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
