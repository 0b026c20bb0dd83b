"""The bird point clouds (:mod:`.pointclouds`) in KeypointNet's annotation layout, and clouds of given shapes.

``keypointnet_records(clouds)`` writes one KeypointNet record per cloud
(:mod:`csmlab.data.kpnet_layout`): the semantic id of a keypoint is its index
in ``category.keypoint_names`` and the reflection groups pair each right
keypoint with its left twin (``keypoint_flip``). ``shape_clouds`` samples
clouds on posed birds of given deformation and articulation (the template at
zeros): the shapes behind images, for the template and oracle rows of notebook 07.
"""

from __future__ import annotations

import torch

from csmlab.data.kpnet_layout import make_record

from .birds_pose import pose_vertices
from .meshops import sample_surface


def keypointnet_records(clouds: dict, prefix: str = "bird") -> list[dict]:
    """One KeypointNet record per cloud of ``make_pointclouds`` (model ids ``<prefix><i:05d>``)."""
    flip = clouds["keypoint_flip"].tolist()
    pairs = [(k, j) for k, j in enumerate(flip) if j > k]
    K = len(flip)
    return [make_record(clouds["category"], f"{prefix}{i:05d}", clouds["keypoints"][i], range(K),
                        clouds["keypoint_index"][i], pairs)
            for i in range(clouds["points"].shape[0])]


def shape_clouds(deform: torch.Tensor, articulation: torch.Tensor, num_points: int = 2048, seed: int = 0) -> dict:
    """Area-uniform clouds on the birds posed by ``deform`` [B,M] and ``articulation`` [B,J].

    Returns ``points`` [B,N,3], ``verts`` [B,V,3] and ``faces`` [F,3] (the posed meshes).
    """
    from . import get_category  # local: the package imports this module

    cat = get_category("birds")
    if deform.dim() != 2 or deform.shape[1] != cat.num_deform or articulation.shape != (len(deform), cat.num_joints):
        raise ValueError(f"deform must be [B,{cat.num_deform}] and articulation [B,{cat.num_joints}], got "
                         f"{list(deform.shape)} and {list(articulation.shape)}")
    if not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"num_points must be a positive int, got {num_points!r}")
    verts = pose_vertices(cat, deform.float(), articulation.float())
    faces = cat.template.faces
    g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    face_index, bary = sample_surface(verts, faces, num_points, g)
    corners = faces[face_index]                                           # [B,N,3]
    picked = torch.gather(verts, 1, corners.reshape(len(verts), -1, 1).expand(-1, -1, 3))
    points = (bary[..., None] * picked.reshape(len(verts), num_points, 3, 3)).sum(2)
    return {"points": points, "verts": verts, "faces": faces}
