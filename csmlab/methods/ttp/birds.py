"""Correspondence problems from the synthetic birds (the problem dict of :mod:`.problems`).

The 2D point of template vertex i is its ground-truth image: the vertex posed
with the sample's deformation (and articulation), projected by the sample's
scaled-orthographic camera, in pixels. Visibility comes from a depth test
against the rendered depth image (:func:`depth_test_visibility`).

Articulation (wing flaps, head turns...) is *not* part of TTP's linear model
``V = T + B c``: with it, even perfect correspondences cannot be fitted exactly.
``zero_articulation=True`` poses the sample's deformation and camera with every
joint angle at zero; the acceptance figures for noiseless correspondences use
such instances, and the notebook shows what articulation does to the fit.
"""

from __future__ import annotations

import torch

from ... import render
from ...geometry import ndc_to_pixel, ortho_clip, ortho_depth, ortho_project, quaternion_to_matrix

VISIBILITY_TOLERANCE = 0.03  # object units (the bird is about 1.2 long): depth slack of the test


def depth_test_visibility(verts: torch.Tensor, rotation: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor,
                          faces: torch.Tensor, image_size, tolerance: float = VISIBILITY_TOLERANCE) -> torch.Tensor:
    """[B,V] 1.0 where a vertex is seen: render the depth image, compare at the vertex's pixel.

    A vertex is visible when it is inside the image and the rendered surface at its
    pixel is not nearer than the vertex's depth minus ``tolerance`` (a pixel the mesh
    does not cover hides nothing: the vertex is on the silhouette). The slack covers
    the depth change between the vertex and its pixel's centre on slanted surfaces.
    At 128 px this agrees with an exact point-in-triangle depth test for about 94 %
    of the birds' vertices; the others are back-side vertices of thin parts (wings,
    tail) within a pixel's slack of the silhouette or of the front side.
    """
    if not (isinstance(verts, torch.Tensor) and verts.dim() == 3 and verts.shape[-1] == 3):
        raise ValueError(f"verts must be [B,V,3], got {getattr(verts, 'shape', type(verts))}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 (object units), got {tolerance}")
    H, W = image_size
    r = render.rasterize_mesh(ortho_clip(verts, scale, rotation, trans), faces, (H, W))
    vert_depth = ortho_depth(verts, rotation)
    depth = render.depth_image(r, vert_depth)[:, 0]                                  # [B,H,W] top row first
    covered = r.mask[:, 0] > 0
    xy = ndc_to_pixel(ortho_project(verts, scale, rotation, trans), H, W)            # [B,V,2]
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < W) & (xy[..., 1] >= 0) & (xy[..., 1] < H)
    index = torch.floor(xy[..., 1]).long().clamp(0, H - 1) * W + torch.floor(xy[..., 0]).long().clamp(0, W - 1)
    B = verts.shape[0]
    surface = torch.gather(depth.reshape(B, -1), 1, index)
    hit = torch.gather(covered.reshape(B, -1), 1, index)
    return (inside & (~hit | (surface >= vert_depth - tolerance))).to(verts.dtype)


def problem_from_batch(batch: dict, category, zero_articulation: bool = False,
                       dtype: torch.dtype = torch.float64) -> dict:
    """A problem dict from a batch of bird samples (``make_dataset("birds", ...).batch(indices)``).

    With ``zero_articulation`` the sample's image no longer shows the posed instance,
    so ``images`` is left out.
    """
    from ...data.synthetic import pose_vertices

    for key in ("camera", "deform", "articulation"):
        if key not in batch:
            raise ValueError(f"batch must hold the birds' ground truth {key!r}; it has {sorted(batch)}")
    cam = batch["camera"]
    R = quaternion_to_matrix(cam["quat"].to(dtype))
    s, t = cam["scale"].to(dtype), cam["trans"].to(dtype)
    deform = batch["deform"].to(dtype)
    art = batch["articulation"].to(dtype)
    if zero_articulation:
        art = torch.zeros_like(art)
    if "image" in batch:
        H, W = batch["image"].shape[-2:]
    elif "resolution" in batch:
        H = W = int(batch["resolution"])
    else:
        raise ValueError("batch needs 'image' (or 'resolution') to know the image size")
    verts = pose_vertices(category, deform, art)
    faces = category.template.faces
    problem = {
        "points": ndc_to_pixel(ortho_project(verts, s, R, t), H, W),
        "visibility": depth_test_visibility(verts, R, s, t, faces, (H, W)),
        "template": category.template.verts.to(dtype), "basis": category.basis.to(dtype), "faces": faces,
        "image_size": (int(H), int(W)), "camera": {"rotation": R, "scale": s, "trans": t},
        "deform": deform, "articulation": art, "verts": verts,
    }
    if "image" in batch and not zero_articulation:
        problem["images"] = batch["image"]
    return problem


def bird_problem(n: int, seed: int = 0, resolution: int = 128, zero_articulation: bool = False,
                 images: bool = False, dtype: torch.dtype = torch.float64) -> dict:
    """A problem of n synthetic birds: the scenes of ``make_dataset("birds", n, resolution, seed)``.

    The scene prior draws the same scenes for a seed whatever the resolution, so
    this equals :func:`problem_from_batch` on that dataset, without rendering the
    images unless ``images``; with ``zero_articulation`` the images (if asked for)
    are rendered with every joint at rest, so they match the correspondences.
    """
    from ...data.synthetic import get_category
    from ...data.synthetic import render_bird_scenes as render_scenes
    from ...data.synthetic import sample_bird_scenes as sample_scenes

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    category = get_category("birds")
    scenes = sample_scenes(category, n, seed)
    if zero_articulation:
        scenes["articulation"] = torch.zeros_like(scenes["articulation"])
    batch = {"camera": {k: scenes[k] for k in ("scale", "quat", "trans")}, "deform": scenes["deform"],
             "articulation": scenes["articulation"], "resolution": resolution}
    problem = problem_from_batch(batch, category, False, dtype)
    if images:
        problem["images"] = render_scenes(category, scenes, resolution)["image"]
    return problem
