"""ARAP energy and Laplacian weights (csmlab.geometry.arap, csmlab.geometry.laplacian)."""

import importlib.util
import math

import pytest
import torch

from csmlab.geometry import arap_energy, icosphere, laplacian_energy, laplacian_weights, random_rotation
from csmlab.geometry.arap import nearest_rotations
from csmlab.geometry.laplacian import cotangents


def grid_mesh(n: int = 4, dtype=torch.float64):
    """An n x n vertex grid of unit squares in the z = 0 plane, each split along its (0,0)-(1,1) diagonal."""
    ys, xs = torch.meshgrid(torch.arange(n, dtype=dtype), torch.arange(n, dtype=dtype), indexing="ij")
    verts = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.zeros(n * n, dtype=dtype)], -1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            faces += [[a, b, e], [a, e, d]]
    return verts, torch.tensor(faces)


def bird():
    from csmlab.data.synthetic import get_category

    cat = get_category("birds")
    return cat, cat.template.verts.double(), cat.template.faces


def weight_of(nbrs, w, i, j):
    hit = (nbrs[i] == j).nonzero()
    return float(w[..., i, hit[0, 0]]) if hit.numel() else None


def test_cotangent_weights_of_a_regular_grid():
    verts, faces = grid_mesh(4)
    nbrs, w = laplacian_weights(verts, faces)
    n = 4
    idx = lambda r, c: r * n + c  # noqa: E731
    # an interior axis-aligned edge: two opposite 45-degree angles, cot = 1 each
    assert weight_of(nbrs, w, idx(1, 1), idx(1, 2)) == pytest.approx(2.0, abs=1e-12)
    assert weight_of(nbrs, w, idx(1, 1), idx(2, 1)) == pytest.approx(2.0, abs=1e-12)
    # a diagonal: two opposite right angles, cot = 0
    assert weight_of(nbrs, w, idx(1, 1), idx(2, 2)) == pytest.approx(0.0, abs=1e-12)
    # a boundary edge has one face: cot 45 = 1
    assert weight_of(nbrs, w, idx(0, 0), idx(0, 1)) == pytest.approx(1.0, abs=1e-12)
    # the anti-diagonal is no edge of this triangulation
    assert weight_of(nbrs, w, idx(1, 2), idx(2, 1)) is None
    # symmetric, and the uniform weights count the neighbours
    assert weight_of(nbrs, w, idx(1, 2), idx(1, 1)) == weight_of(nbrs, w, idx(1, 1), idx(1, 2))
    _, wu = laplacian_weights(verts, faces, "uniform")
    assert float(wu[idx(1, 1)].sum()) == 6.0


def test_obtuse_angles_are_clamped_at_zero():
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [1, 0.2, 0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    cot = cotangents(verts, faces)
    assert float(cot[0, 2]) < 0          # the obtuse corner
    nbrs, w = laplacian_weights(verts, faces)
    assert weight_of(nbrs, w, 0, 1) == 0.0
    assert weight_of(nbrs, w, 0, 2) == pytest.approx(float(cot[0, 1]))


@pytest.mark.parametrize("method", ["compiled", "newton", "svd"])
def test_arap_is_zero_for_rigid_motions(method):
    _, T, F = bird()
    g = torch.Generator().manual_seed(0)
    R = random_rotation(3, generator=g, dtype=torch.float64)
    V = torch.einsum("bij,nj->bni", R, T) + torch.randn(3, 1, 3, generator=g, dtype=torch.float64)
    e = arap_energy(V, T, F, method=method)
    assert e.shape == (3,) and float(e.abs().max()) < 1e-10


def test_arap_is_positive_for_a_bend_and_lets_a_rigid_rotation_go_where_the_laplacian_does_not():
    verts, faces = grid_mesh(6)
    bent = verts.clone()
    right = bent[:, 0] > 2.5                       # fold the right half up by 60 degrees about x = 2.5
    a = math.radians(60)
    x = bent[right, 0] - 2.5
    bent[right, 0], bent[right, 2] = 2.5 + x * math.cos(a), x * math.sin(a)
    assert float(arap_energy(bent[None], verts, faces)) > 1e-3
    rotated = verts @ random_rotation(1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)[0].T
    assert float(arap_energy(rotated[None], verts, faces)) < 1e-10
    assert float(laplacian_energy(rotated[None], verts, faces)) > 1e-3


def test_arap_is_invariant_to_a_global_rotation_and_agrees_with_the_svd():
    cat, T, F = bird()
    g = torch.Generator().manual_seed(2)
    V = T + 0.05 * torch.randn(4, *T.shape, generator=g, dtype=torch.float64)
    e = arap_energy(V, T, F)
    R = random_rotation(4, generator=g, dtype=torch.float64)
    e_rot = arap_energy(torch.einsum("bij,bnj->bni", R, V), T, F)
    assert float(e.min()) > 0
    torch.testing.assert_close(e_rot, e, rtol=1e-9, atol=0)
    torch.testing.assert_close(arap_energy(V, T, F, method="svd"), e, rtol=1e-9, atol=0)


def test_nearest_rotations_fix_reflections():
    S = torch.diag(torch.tensor([3.0, 2.0, -1.0], dtype=torch.float64))[None]   # its polar factor is a reflection
    R = nearest_rotations(S)
    assert float(torch.det(R)) == pytest.approx(1.0)
    torch.testing.assert_close(R[0], torch.diag(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)))
    U, _, Vh = torch.linalg.svd(S)
    assert float(torch.det(U @ Vh)) < 0                                       # what the fix prevents


needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba not installed")


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_arap_equals_the_reference_energy_and_gradient(dtype):
    """The fast path (numba, Horn's closed-form rotations) against the PyTorch SVD reference, on the
    benchmark birds' own deformations and articulations (bends that rotate whole wings)."""
    from csmlab.data.synthetic import pose_vertices, sample_bird_scenes

    cat, T, F = bird()
    scenes = sample_bird_scenes(cat, 6, 0)
    V = pose_vertices(cat, scenes["deform"], scenes["articulation"]).to(dtype)
    V = V + 0.01 * torch.randn(V.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
    T = T.to(dtype)
    grads, energies = [], []
    for method in ("compiled", "svd"):
        x = V.clone().requires_grad_(True)
        e = arap_energy(x, T, F, method=method)
        (e * torch.arange(1, 7, dtype=dtype)).sum().backward()    # a different weight per instance
        energies.append(e.detach())
        grads.append(x.grad)
    assert float(energies[1].min()) > 1e-4                        # a real deformation, not a rigid motion
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-6)
    torch.testing.assert_close(energies[0], energies[1], **tol)
    torch.testing.assert_close(grads[0], grads[1], **tol)


@needs_numba
def test_compiled_arap_gradcheck_in_both_meshes_and_the_reflection_case():
    mesh = icosphere(1)
    T = mesh.verts.double()
    g = torch.Generator().manual_seed(4)
    V = (T + 0.1 * torch.randn(2, *T.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    R = T.clone().requires_grad_(True)
    fixed = laplacian_weights(T, mesh.faces)        # weights held fixed, as they are in the energy's gradient
    assert torch.autograd.gradcheck(lambda v, r: arap_energy(v, r, mesh.faces, fixed, method="compiled"), (V, R),
                                    eps=1e-6, atol=1e-6)
    # a mirrored sphere: every local best orthogonal map is a reflection, which must not be used
    mirrored = (T * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))[None]
    e_c = arap_energy(mirrored, T, mesh.faces, method="compiled")
    torch.testing.assert_close(e_c, arap_energy(mirrored, T, mesh.faces, method="svd"), rtol=1e-9, atol=1e-12)
    assert float(e_c) > 1e-2


def test_compiled_arap_refuses_what_it_cannot_serve():
    _, T, F = bird()
    V = T[None].clone()
    nbrs, w = laplacian_weights(T, F)
    with pytest.raises(ValueError, match="compiled"):
        arap_energy(V, T, F, (nbrs, w.clone().requires_grad_(True)), method="compiled")
    with pytest.raises(ValueError, match="weights"):
        arap_energy(V, T, F, (nbrs, w[None].expand(3, -1, -1)), method="compiled")


def test_arap_gradcheck():
    mesh = icosphere(1)
    T = mesh.verts.double()
    g = torch.Generator().manual_seed(3)
    V = (T + 0.1 * torch.randn(2, *T.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: arap_energy(v, T, mesh.faces), (V,), eps=1e-6, atol=1e-6)


def test_arap_bad_inputs():
    _, T, F = bird()
    V = T[None].clone()
    with pytest.raises(ValueError, match="verts"):
        arap_energy(T, T, F)                                   # not batched
    with pytest.raises(ValueError, match="verts"):
        arap_energy(V[..., :2], T, F)
    with pytest.raises(ValueError, match="dtype"):
        arap_energy(V.long(), T, F)
    with pytest.raises(ValueError, match="dtype"):
        arap_energy(V.float(), T, F)
    with pytest.raises(ValueError, match="rest_verts"):
        arap_energy(V, T[:-1], F)
    with pytest.raises(ValueError, match="faces"):
        arap_energy(V, T, F + 1)                               # out of range
    with pytest.raises(ValueError, match="faces"):
        arap_energy(V, T, F.float())
    with pytest.raises(ValueError, match="device"):
        arap_energy(V, T, F.to("meta"))
    with pytest.raises(ValueError, match="method"):
        arap_energy(V, T, F, method="qr")
    with pytest.raises(ValueError, match="kind"):
        laplacian_weights(T, F, "harmonic")
