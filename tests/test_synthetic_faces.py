"""Synthetic faces: symmetry, canonical depth, and re-rendering from the ground truth.

The re-rendering here is independent of the generator's warp: the generator
samples the canonical image at each view pixel's reprojection (Unsup3D's
grid_sample warp), while this test shades per-vertex colours of the grid mesh
and lets the rasterizer interpolate them in the view.
"""

from __future__ import annotations

import math

import pytest
import torch

from csmlab import render
from csmlab.data.synthetic import get_category, make_dataset
from csmlab.data.synthetic.faces import mesh_points
from csmlab.data.synthetic.faces_geometry import FAR, NEAR, ROT_CENTER_DEPTH, apply_view, grid_mesh_faces
from csmlab.geometry import perspective_clip

N = 48
S = 64


@pytest.fixture(scope="module")
def data():
    ds = make_dataset("faces", N, S, seed=5, cache=False, progress=False)
    return ds, ds.batch(slice(None))


def _normals(depth):
    """Central-difference normals of the depth map's 3D points (written out again, independently)."""
    k = math.tan(math.radians(get_category("faces").fov_deg) / 2)
    H = depth.shape[-1]
    c = (2 * torch.arange(H) + 1) / H - 1
    x, y = c[None, :].expand(H, H), -c[:, None].expand(H, H)
    P = torch.stack([depth[:, 0] * x * k, depth[:, 0] * y * k, -depth[:, 0]], -1)    # [B,H,W,3]
    tu = P[:, 1:-1, 2:] - P[:, 1:-1, :-2]
    tv = P[:, :-2, 1:-1] - P[:, 2:, 1:-1]
    n = torch.zeros_like(P)
    n[..., 2] = 1
    n[:, 1:-1, 1:-1] = torch.nn.functional.normalize(torch.linalg.cross(tu, tv, dim=-1), dim=-1)
    return n.permute(0, 3, 1, 2)


def test_category_and_ranges(data):
    cat = get_category("faces")
    assert (cat.fov_deg, cat.depth_min, cat.depth_max) == (10.0, 0.9, 1.1)
    _, b = data
    m = b["canonical_mask"] > 0
    d = b["canonical_depth"][m]
    assert 0.9 <= d.min() and d.max() <= 1.1
    assert b["view"]["rotation"][:, 0].abs().max() <= math.radians(60) + 1e-6
    assert b["view"]["trans"].abs().max() <= 0.1
    assert 0.2 < b["asymmetric"].float().mean() < 0.8


def test_depth_map_is_centred_on_the_rotation_centre(data):
    """Unsup3D's depth net centres its whole map (mean-subtracted tanh) on the rotation centre, depth 1.

    With the outline at 1.05 the mean was 1.054 and the medium model learned the mirrored yaw.
    """
    _, b = data
    mean = b["canonical_depth"].mean().item()
    print(f"whole-image mean canonical depth {mean:.4f} (rotation centre {ROT_CENTER_DEPTH})")
    assert abs(mean - ROT_CENTER_DEPTH) < 0.01


def test_shape_and_albedo_are_symmetric(data):
    _, b = data
    assert torch.equal(b["canonical_mask"], b["canonical_mask"].flip(-1))
    m = (b["canonical_mask"] * b["canonical_mask"].flip(-1)) > 0
    assert (b["canonical_depth"] - b["canonical_depth"].flip(-1))[m.expand_as(b["canonical_depth"])].abs().max() < 1e-5
    sym = ~b["asymmetric"]
    diff = (b["albedo"] - b["albedo"].flip(-1)).abs()[sym]
    assert diff.max() <= 1 / 255 + 1e-6                     # uint8 storage only
    assert (b["albedo"] - b["albedo"].flip(-1)).abs()[~sym].flatten(1).max(1).values.min() > 0.1


def test_canonical_depth_renders_back(data):
    _, b = data
    pts = mesh_points(b["canonical_depth"])
    worst, covered = 0.0, 0.0
    for i in range(N):
        faces = grid_mesh_faces(b["canonical_mask"][i, 0] > 0)
        r = render.rasterize_mesh(perspective_clip(pts[i:i + 1], 10.0, NEAR, FAR), faces, (S, S))
        depth = render.depth_image(r, -pts[i:i + 1, :, 2])
        # The mesh covers the face region but its bottom and left rims (pixel centres on the outline).
        assert (r.mask <= b["canonical_mask"][i:i + 1]).all() and r.mask.sum() > 0.93 * b["canonical_mask"][i].sum()
        worst = max(worst, (depth - b["canonical_depth"][i:i + 1])[r.mask > 0].abs().max().item())
        covered += r.mask.sum().item() / b["canonical_mask"][i].sum().item() / N
    print(f"canonical depth re-rendered: max error {worst:.2e} (rendered mask covers {100 * covered:.1f}% of it)")
    assert worst < 1e-4


def test_image_rerenders_from_ground_truth(data):
    _, b = data
    light = b["light"]
    cos = (_normals(b["canonical_depth"]) * light["direction"][:, :, None, None]).sum(1, keepdim=True).clamp_min(0)
    canonical = b["albedo"] * (light["ambient"][:, None, None, None] + light["diffuse"][:, None, None, None] * cos)
    view_pts = apply_view(mesh_points(b["canonical_depth"]), b["view"]["rotation"], b["view"]["trans"])
    se, count, worst_psnr = 0.0, 0, float("inf")
    for i in range(N):
        faces = grid_mesh_faces(b["canonical_mask"][i, 0] > 0)
        r = render.rasterize_mesh(perspective_clip(view_pts[i:i + 1], 10.0, NEAR, FAR), faces, (S, S))
        image = render.interpolate_image(r, canonical[i].flatten(1).T[None])
        assert (r.mask != b["mask"][i:i + 1]).float().mean() < 0.002
        m = ((r.mask > 0) & (b["mask"][i:i + 1] > 0)).expand(-1, 3, -1, -1)
        err = ((image - b["image"][i:i + 1])[m] ** 2)
        worst_psnr = min(worst_psnr, -10 * math.log10(err.mean().item()))
        se, count = se + err.sum().item(), count + err.numel()
    psnr = -10 * math.log10(se / count)
    print(f"re-rendered image PSNR on the mask: {psnr:.1f} dB overall, worst image {worst_psnr:.1f} dB")
    assert psnr >= 40


def test_deterministic():
    a = make_dataset("faces", 3, 32, seed=9, cache=False, progress=False)
    b = make_dataset("faces", 3, 32, seed=9, cache=False, progress=False)
    c = make_dataset("faces", 3, 32, seed=10, cache=False, progress=False)
    assert torch.equal(a[2]["image"], b[2]["image"]) and torch.equal(a[2]["canonical_depth"], b[2]["canonical_depth"])
    assert not torch.equal(a[2]["canonical_depth"], c[2]["canonical_depth"])
    assert a[0]["category"] == "faces" and set(a[0]["light"]) == {"ambient", "diffuse", "direction"}
