"""The template CSM maps pixels onto: a synthetic category's, or CUB's mean shape from CMR's SfM files.

``cfg['template']`` chooses: ``"category"`` (the synthetic category's template, the
default) or ``"cub_sfm"``. CSM trains on CUB with the mean bird of CMR, whose SfM
gives a mean shape ``S`` [3,15] of the keypoints and its convex hull
(``cachedir/cub/sfm/anno_train.mat``). CMR starts its mesh as a sphere pushed onto that
hull; :func:`sfm_template` does the same: each icosphere vertex moves along its ray
from the hull's centre until it meets the hull. Every vertex keeps its sphere
direction, so its sphere UV (``csmlab.geometry.sphere``) is the template's UV map.
The hull is recomputed from ``S`` (scipy), so the shipped ``conv_tri`` is not needed.

``cfg['template_pose']`` poses the synthetic template: ``"rest"`` (the category's
template, wings spread; the default) or ``"folded"`` (the typical perched bird of the
``"cub"`` articulation prior, ``folded_articulation``: wings folded back along the
body). CSM's own CUB template is a mean bird with folded wings, so rung B's birds
(85 % folded) are closer to it than to the spread-wing rest pose. The posed template
keeps the rest pose's topology, sphere UV and mirror twins; its rest vertices travel as
``canonical_verts``, so surface maps are still scored in the canonical frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csmlab.geometry import Mesh, icosphere, sphere_to_uv


@dataclass
class Template:
    """What training needs of a category: the mesh, its per-vertex sphere UV, each vertex's mirror twin."""

    name: str
    template: Mesh
    template_uv: torch.Tensor      # [V,2]
    vertex_flip: torch.Tensor      # [V] long
    canonical_verts: torch.Tensor | None = None   # [V,3] rest-pose vertices when ``template`` is posed


def hull_template(points: torch.Tensor, subdiv: int = 3, name: str = "hull") -> Template:
    """An icosphere pushed onto the convex hull of ``points`` [N,3] along rays from the hull's centre."""
    import numpy as np
    from scipy.spatial import ConvexHull

    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] != 3 or points.shape[0] < 4:
        raise ValueError(f"points must be a tensor [N,3] with N >= 4, got "
                         f"{list(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__}")
    p = points.double().numpy()
    hull = ConvexHull(p)
    normals, offsets = hull.equations[:, :3], hull.equations[:, 3]     # inside: n . x + offset <= 0
    centre = p[hull.vertices].mean(0)
    sphere = icosphere(subdiv)
    d = sphere.verts.double().numpy()                                  # unit directions [V,3]
    along = d @ normals.T                                              # [V,F]
    gap = -(offsets + normals @ centre)                                # > 0: the centre is inside every face
    t = np.where(along > 1e-12, gap[None] / np.where(along > 1e-12, along, 1.0), np.inf).min(1)
    verts = torch.as_tensor(centre[None] + t[:, None] * d, dtype=torch.float32)
    # The twin of a vertex is the one whose direction mirrors it across x = 0 (the icosphere is symmetric).
    mirrored = sphere.verts * torch.tensor([-1.0, 1.0, 1.0])
    flip = torch.cdist(mirrored, sphere.verts).argmin(1)
    return Template(name, Mesh(verts, sphere.faces), sphere_to_uv(sphere.verts), flip)


def sfm_template(root=None, cmr_dir=None, subdiv: int = 3) -> Template:
    """CUB's mean bird: CMR's SfM mean shape (csmlab's canonical frame), an icosphere pushed onto its hull."""
    from csmlab.data.real.cub import sfm_mean_shape

    keypoints, _ = sfm_mean_shape(root, cmr_dir)
    return hull_template(keypoints, subdiv, name="cub_sfm")


def posed_template(category, articulation: torch.Tensor, name: str) -> Template:
    """The synthetic ``category``'s template posed by joint angles ``articulation`` [J] (no deformation)."""
    from csmlab.data.synthetic import pose_vertices

    rest = category.template.verts.float()
    posed = pose_vertices(category, torch.zeros(1, category.basis.shape[0]), articulation[None].float())[0]
    return Template(name, Mesh(posed, category.template.faces), category.template_uv, category.vertex_flip, rest)


TEMPLATE_POSES = ("rest", "folded")


def load_template(cfg: dict, root=None):
    """The template of ``cfg``: ``cfg['template']`` is ``"category"`` (synthetic) or ``"cub_sfm"``;
    ``cfg['template_pose']`` (synthetic only) is ``"rest"`` or ``"folded"``."""
    choice, pose = cfg.get("template", "category"), cfg.get("template_pose", "rest")
    if pose not in TEMPLATE_POSES:
        raise ValueError(f"cfg['template_pose'] must be one of {TEMPLATE_POSES}, got {pose!r}")
    if choice == "category":
        from csmlab.data.synthetic import get_category

        category = get_category(cfg["category"])
        if pose == "rest":
            return category
        from csmlab.data.synthetic.birds_priors import folded_articulation

        return posed_template(category, folded_articulation(category), f"{category.name}_folded")
    if pose != "rest":
        raise ValueError(f"cfg['template_pose'] = {pose!r} poses the synthetic template only; "
                         f"cfg['template'] is {choice!r}")
    if choice == "cub_sfm":
        return sfm_template(root)
    raise ValueError(f"cfg['template'] must be 'category' or 'cub_sfm', got {choice!r}")
