"""CSM's template UV map: the tabulated lookup, its exact counterpart and the inverse."""

import math

import pytest
import torch

from csmlab.geometry import Mesh, icosphere, sphere_to_uv
from csmlab.methods.csm.uvmap import TemplateUV, closest_point_on_mesh


@pytest.fixture(scope="module")
def template():
    s = icosphere(2)
    # An ellipsoid with a bump: a template that is not the sphere, so the map is not the identity.
    verts = s.verts * torch.tensor([0.5, 0.35, 1.0]) * (1 + 0.2 * s.verts[:, 1:2].clamp_min(0))
    return TemplateUV(Mesh(verts, s.faces), sphere_to_uv(s.verts), grid=(64, 128))


def _random_uv(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=g) * torch.tensor([1.0, 0.9]) + torch.tensor([0.0, 0.05])


def test_exact_lookup_hits_the_vertices(template):
    face, bary = template.uv_to_face_bary(template.vertex_uv)
    assert torch.allclose(template.face_bary_to_points(face, bary), template.verts, atol=1e-5)


def test_table_lookup_matches_the_exact_map(template):
    uv = _random_uv(500)
    exact = template.face_bary_to_points(*template.uv_to_face_bary(uv))
    table = template.uv_to_points(uv)
    err = (table - exact).norm(dim=-1)
    # Bilinear over a 64x128 table of a piecewise-flat surface: sub-percent of the template size.
    assert err.max() < 0.01 and err.mean() < 2e-3


def test_points_lie_on_the_template_and_round_trip_to_uv(template):
    uv = _random_uv(300, seed=1)
    pts = template.face_bary_to_points(*template.uv_to_face_bary(uv))
    _, _, dist = closest_point_on_mesh(pts, template.verts, template.faces)
    assert dist.max() < 1e-5
    back = template.points_to_uv(pts)
    du = torch.remainder(back[:, 0] - uv[:, 0] + 0.5, 1.0) - 0.5       # u is periodic
    assert du.abs().max() < 1e-4 and (back[:, 1] - uv[:, 1]).abs().max() < 1e-4


def test_the_seam_is_continuous(template):
    v = torch.linspace(0.1, 0.9, 9)
    left = template.uv_to_points(torch.stack([torch.full_like(v, 1e-4), v], -1))
    right = template.uv_to_points(torch.stack([torch.full_like(v, 1 - 1e-4), v], -1))
    assert (left - right).norm(dim=-1).max() < 0.01
    # u outside [0, 1) wraps around instead of clamping
    assert torch.allclose(template.uv_to_points(torch.tensor([[1.25, 0.5]])),
                          template.uv_to_points(torch.tensor([[0.25, 0.5]])), atol=1e-6)


def test_front_of_the_sphere_maps_to_the_front_of_the_template(template):
    # u = 0.5, v = 0.5 is the +z direction (sphere module convention): the template's front point.
    p = template.uv_to_points(torch.tensor([[0.5, 0.5]]))[0]
    assert float(p[2]) == pytest.approx(float(template.verts[:, 2].max()), rel=0.02) and abs(float(p[0])) < 1e-3


def test_lookup_is_differentiable(template):
    uv = _random_uv(50, seed=2).requires_grad_(True)
    template.uv_to_points(uv).sum().backward()
    assert torch.isfinite(uv.grad).all() and uv.grad.abs().sum() > 0


def test_closest_point_handles_points_off_the_surface():
    tri = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]))
    pts = torch.tensor([[0.2, 0.2, 0.5], [2.0, 0.0, 0.0], [-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]])
    face, bary, dist = closest_point_on_mesh(pts, tri.verts, tri.faces)
    closest = (bary[..., None] * tri.verts[tri.faces[face]]).sum(-2)
    expected = torch.tensor([[0.2, 0.2, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    assert torch.allclose(closest, expected, atol=1e-6)
    assert torch.allclose(dist, torch.tensor([0.5, 1.0, math.sqrt(2), math.sqrt(0.5)]), atol=1e-6)


def test_bad_inputs_raise_value_errors(template):
    s = icosphere(1)
    with pytest.raises(ValueError, match="vertex_uv"):
        TemplateUV(s, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="template"):
        TemplateUV("not a mesh", torch.zeros(5, 2))
    with pytest.raises(ValueError, match="grid"):
        TemplateUV(s, sphere_to_uv(s.verts), grid=(1, 8))
    with pytest.raises(ValueError, match="uv"):
        template.uv_to_points(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\[B,2,H,W\]"):
        template.uv_image_to_points(torch.zeros(2, 3, 4, 4))
