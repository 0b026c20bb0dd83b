"""Synthetic categories with complete ground truth: the embedded dataset of the course.

Two categories, generated procedurally on a CPU in seconds and cached as npz:

- ``"birds"``: a deformable, articulated, textured, bilaterally symmetric bird
  (:mod:`.birds_shape`, :mod:`.birds_template`, :mod:`.birds_texture`,
  :mod:`.birds_render`), seen by a scaled-orthographic camera.
- ``"faces"``: symmetric height fields with face-like bumps, seen like Unsup3D's
  faces (:mod:`.faces`, :mod:`.faces_geometry`).

Entry points::

    ds = make_dataset("birds", n=500, resolution=64, seed=0)   # torch Dataset of sample dicts
    ds = make_dataset("birds", 500, 64, seed=0, views="cub", articulation="cub")  # priors: .birds_priors
    test = benchmark_split("birds", rung="B", resolution=64)  # the shared held-out split (.benchmark)
    ds.category                        # the category index (= get_category("birds"))
    ds.batch(range(16))                # batched fields without a DataLoader
    cat = get_category("birds")
    verts = pose_vertices(cat, deform, articulation)          # [B,V,3] canonical frame
    kps = pose_keypoints(cat, deform, articulation)           # [B,K,3]
    pts = pose_points(cat, template_points, deform, articulation)  # any template points (smooth fields)
    pix = pose_surface_points(cat, surface_xyz, surface_uv, deform, articulation)  # exact, surface points
    clouds = make_pointclouds(100, num_points=2048, seed=0)   # see .pointclouds

Bird samples (``csmlab.data.sample`` describes the common contract)
-------------------------------------------------------------------

=============  ============  ==============================================================
key            shape         meaning
=============  ============  ==============================================================
image          [3,H,W]       RGB in [0,1] (antialiased, multiples of 1/255), top row first
mask           [1,H,W]       {0,1}: pixel centre covered by the bird
depth          [1,H,W]       orthographic camera depth ``-(R X)_z`` (object units, nearer
                             is smaller, may be negative); 0 off the mask
surface_xyz    [3,H,W]       TEMPLATE coordinates (undeformed, unarticulated) of the visible
                             point: template vertices interpolated with the pixel's
                             barycentrics; 0 off the mask
surface_uv     [2,H,W]       sphere UV (``csmlab.geometry.sphere``) of the visible point: the
                             normalised barycentric blend of the vertices' sphere points
keypoints      [K,3]         x, y in pixels (x right, y down, centres at +0.5), visibility:
                             1 where an annotator could mark it: inside the image, not
                             occluded (exact depth test against every face, tolerance
                             0.01 object units) AND on the drawn object (a foreground
                             pixel centre within 1 px; see :mod:`.birds_render`).
                             Hidden keypoints keep their projected x, y.
camera         dict          scale [], quat [4] (w,x,y,z), trans [2]: ``u = s (R X)[:2] + t``
                             in NDC (``csmlab.geometry.OrthoCamera.from_dict``)
deform         [M]           deformation coefficients (``category.deform_names``)
articulation   [J]           joint angles in radians (``category.joint_names``)
viewpoint      [3]           azimuth, elevation, roll (radians) of the camera, as in
                             ``csmlab.geometry.azel_to_matrix``
light          dict          ambient [], diffuse [], direction [3] (camera frame, towards the
                             light): colour = albedo * (ambient + diffuse * max(0, n . l))
category       str           "birds"; index: int
=============  ============  ==============================================================

Ground-truth identities (checked by tests/test_synthetic_birds.py):
``ndc_to_pixel(ortho_project(pose_keypoints(cat, deform, articulation), s, R, t), H, W)``
gives the stored keypoints' x, y; and ``pose_surface_points`` of a foreground
pixel's ``surface_xyz`` and ``surface_uv``, projected by the camera, lands on that
pixel's centre (``pose_points``, the smooth fields, lands within about a pixel).

Face samples
------------

=================  ========  ===========================================================
key                shape     meaning
=================  ========  ===========================================================
image, mask        [3|1,H,W] the view: the canonical image warped to the view; background
                             a solid colour off the mask
depth              [1,H,W]   view depth ``-z`` of the visible surface; 0 off the mask
canonical_depth    [1,H,W]   ground-truth depth in the canonical (frontal) view, in
                             [0.9, 1.1] on ``canonical_mask``; it continues smoothly off the
                             mask (for finite differences); score SIDE/MAD on the mask
canonical_mask     [1,H,W]   the face region: pixels whose centre is inside the outline
                             (symmetric); the grid mesh over it covers all of it in the
                             canonical view but a one-pixel rim on the bottom and left
albedo             [3,H,W]   canonical albedo (symmetric unless ``asymmetric``)
canonical_image    [3,H,W]   albedo * shading in the canonical view (derived from the above)
light              dict      ambient [], diffuse [], direction [3] (canonical frame)
view               dict      rotation [3] = (yaw, pitch, roll) radians, trans [3]
                             (``faces_geometry.apply_view``)
asymmetric         [] bool   whether the albedo carries an asymmetric patch or fringe
category           str       "faces"; index: int
=================  ========  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from . import faces_geometry
from .benchmark import RUNGS, benchmark_split, mixed_rung_dataset, mixed_rung_parts, rung_mix, rung_priors
from .birds_pose import locate_on_template, pose_keypoints, pose_points, pose_surface_points, pose_vertices
from .birds_priors import ARTICULATIONS, VIEWS
from .birds_render import render_scenes as render_bird_scenes
from .birds_scenes import sample_scenes as sample_bird_scenes
from .birds_template import BirdCategory, build_birds
from .dataset import CATEGORIES, SyntheticDataset, make_dataset
from .pointclouds import make_pointclouds


@dataclass(frozen=True)
class FaceCategory:
    """The faces' fixed geometry (Unsup3D's camera) and scene prior; see :mod:`.faces`."""

    name: str = "faces"
    fov_deg: float = faces_geometry.FOV_DEG
    depth_min: float = faces_geometry.DEPTH_MIN
    depth_max: float = faces_geometry.DEPTH_MAX
    rot_center_depth: float = faces_geometry.ROT_CENTER_DEPTH


def get_category(name: str):
    """The category index: a :class:`BirdCategory` for "birds", a :class:`FaceCategory` for "faces".

    Built once per process and shared; treat its tensors as read-only.
    """
    if not isinstance(name, str) or name not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {name!r}")
    return _build_category(name)


@lru_cache(maxsize=None)
def _build_category(name: str):
    return build_birds() if name == "birds" else FaceCategory()


__all__ = ["make_dataset", "get_category", "pose_vertices", "pose_keypoints", "pose_points", "pose_surface_points",
           "locate_on_template", "sample_bird_scenes", "render_bird_scenes",
           "make_pointclouds", "BirdCategory", "FaceCategory", "SyntheticDataset", "CATEGORIES",
           "benchmark_split", "rung_priors", "rung_mix", "mixed_rung_parts", "mixed_rung_dataset",
           "RUNGS", "VIEWS", "ARTICULATIONS"]
