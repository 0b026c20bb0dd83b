"""Point clouds of bird instances with keypoint indices (for the 3D keypoint-embedding notebook).

``make_pointclouds(n, num_points=2048, seed=0, articulation="full")`` samples n birds from the
category's shape prior (deformation and articulation, as in the images; ``articulation`` names
the prior of :mod:`.birds_priors`, so ``"cub"`` gives the shapes of rung B's images, and with the
benchmark's seed the very birds of ``benchmark_split``) and
``num_points`` points on each posed surface, area-uniformly. The K keypoints
are *in* the cloud: K of the points are exactly the keypoints, at random
positions, and ``keypoint_index`` says which (as in KeypointNet, whose
annotations are indices into the cloud). The clouds are in the canonical frame
(x right, y up, z forward), not rotated.

Returned dict (n = number of clouds, N = num_points, K = keypoints):

==================  ===============  ==================================================
key                 shape, dtype     meaning
==================  ===============  ==================================================
points              [n,N,3] float    posed surface points
normals             [n,N,3] float    unit normals of the faces they lie on
template_points     [n,N,3] float    the same surface points on the template (dense
                                     correspondence across instances)
surface_uv          [n,N,2] float    their sphere UV, as in the images' ``surface_uv``;
                                     ``pose_surface_points(cat, template_points,
                                     surface_uv, deform, articulation)`` gives ``points``
parts               [n,N] long       skinning part of the nearest face corner
                                     (index into ``category.part_names``)
keypoint_index      [n,K] long       row of each keypoint in ``points``
keypoints           [n,K,3] float    the keypoints (= points[keypoint_index])
deform              [n,M] float      deformation coefficients
articulation        [n,J] float      joint angles, radians
keypoint_names      list[str]        the category's keypoint names
keypoint_flip       [K] long         left/right swap permutation
category            str              "birds"
==================  ===============  ==================================================
"""

from __future__ import annotations

import torch

from csmlab.geometry import face_normals, sphere_to_uv, vertex_normals

from .birds_pose import pose_vertices
from .birds_scenes import sample_scenes
from .meshops import sample_surface


def make_pointclouds(n: int, num_points: int = 2048, seed: int = 0, articulation: str = "full") -> dict:
    """n bird point clouds with num_points points each; deterministic in ``seed`` (see the module docstring)."""
    from . import get_category  # local: the package imports this module

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    category = get_category("birds")
    K = len(category.keypoint_names)
    if not isinstance(num_points, int) or isinstance(num_points, bool) or num_points <= K:
        raise ValueError(f"num_points must be an int > {K} (the number of keypoints), got {num_points!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    # The same shapes as the images of this seed and articulation prior (the views prior does not change them).
    scenes = sample_scenes(category, n, seed, "full", articulation)
    deform, articulation = scenes["deform"], scenes["articulation"]
    faces = category.template.faces
    verts = pose_vertices(category, deform, articulation)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + 104729)
    face_index, bary = sample_surface(verts, faces, num_points - K, g)
    corners = faces[face_index]                                            # [n,N-K,3]

    def at(values):  # [n,V,3] or [V,3] -> surface points [n,N-K,3]
        values = values.expand(n, -1, -1)
        picked = torch.gather(values, 1, corners.reshape(n, -1, 1).expand(-1, -1, 3)).reshape(n, -1, 3, 3)
        return (bary[..., None] * picked).sum(2)

    points = at(verts)
    template_points = at(category.template.verts[None])
    surface_uv = sphere_to_uv(at(category.template_sphere[None]))
    normals = torch.gather(face_normals(verts, faces), 1, face_index[..., None].expand(-1, -1, 3))
    parts = category.vertex_parts[corners.gather(2, bary.argmax(-1, keepdim=True))[..., 0]]

    # Keypoints join the cloud at random rows.
    W = category.keypoint_weights
    kp = torch.einsum("kv,bvc->bkc", W, verts)
    kp_template = (W @ category.template.verts)[None].expand(n, -1, -1)
    kp_uv = sphere_to_uv(W @ category.template_sphere)[None].expand(n, -1, -1)
    kp_normals = torch.nn.functional.normalize(torch.einsum("kv,bvc->bkc", W, vertex_normals(verts, faces)), dim=-1)
    kp_parts = category.vertex_parts[W.argmax(1)][None].expand(n, -1)
    order = torch.argsort(torch.rand(n, num_points, generator=g), dim=1)  # random permutation per cloud

    def merge(a, b):
        full = torch.cat([a, b], 1)
        idx = order if full.dim() == 2 else order[..., None].expand(-1, -1, full.shape[-1])
        return torch.gather(full, 1, idx)

    inverse = torch.argsort(order, dim=1)             # new row of each old row
    keypoint_index = inverse[:, num_points - K:]
    return {
        "points": merge(points, kp), "normals": merge(normals, kp_normals),
        "template_points": merge(template_points, kp_template), "surface_uv": merge(surface_uv, kp_uv),
        "parts": merge(parts, kp_parts),
        "keypoint_index": keypoint_index, "keypoints": kp, "deform": deform, "articulation": articulation,
        "keypoint_names": list(category.keypoint_names), "keypoint_flip": category.keypoint_flip.clone(),
        "category": "birds",
    }

