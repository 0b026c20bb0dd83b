"""Rendering bird scenes (from :mod:`.birds_scenes`) with full ground truth.

One rasterization per batch gives everything: the mask, the orthographic depth,
the template coordinates and sphere points of the visible surface (for
``surface_xyz`` and ``surface_uv``), the shading normals and the material
weights of the solid texture. Colour is computed on foreground pixels only,
composited over the background and antialiased analytically
(``csmlab.dr.antialias``). See :mod:`csmlab.data.synthetic` for the fields.

**Keypoint visibility: what an annotator could mark.** A keypoint is visible when

1. it is inside the image,
2. it passes the depth test: no face covering its screen position is nearer by more
   than ``VISIBILITY_EPS`` (an exact test against every face,
   :func:`.meshops.surface_visibility`), and
3. it lies on the drawn object at the sample's resolution: a foreground pixel centre
   (the mask samples pixel centres, as nvdiffrast does) lies within
   ``ON_OBJECT_RADIUS_PX`` = 0.75 px of it (:func:`on_drawn_object`). A keypoint
   inside a foreground pixel is always within 0.71 px of its centre, so the rule
   keeps every keypoint on the drawn bird and drops the tips of parts thinner than a
   pixel, which the mask does not show.

Rule 3 makes visibility depend on the resolution: the same scene can show a wing tip
at 128 px and hide it at 32 px. The thin parts are made thick enough to be drawn at
32 and 64 px in most views (:mod:`.birds_shape`).
"""

from __future__ import annotations

import torch

from csmlab import dr, render
from csmlab.geometry import (
    ndc_to_pixel,
    ortho_clip,
    ortho_depth,
    ortho_project,
    quaternion_to_matrix,
    sphere_to_uv,
    vertex_normals,
)

from .birds_pose import pose_keypoints, pose_vertices
from .birds_template import BirdCategory
from .birds_texture import BEAK_PLANE, MATERIALS, render_background, shade_albedo
from .meshops import surface_visibility

VISIBILITY_EPS = 0.01  # object units (1% of the length): skinning folds near joints are thinner
ON_OBJECT_RADIUS_PX = 0.75  # a visible keypoint has a foreground pixel centre this near (pixels)


def on_drawn_object(xy: torch.Tensor, mask: torch.Tensor, radius: float = ON_OBJECT_RADIUS_PX) -> torch.Tensor:
    """[B,K] bool: a foreground pixel centre of ``mask`` lies within ``radius`` pixels of ``xy``.

    xy [B,K,2] in pixels (x right, y down, centres at +0.5); mask [B,H,W] top row first.
    The 3x3 pixels around the one containing each point hold every centre within
    1 px, so ``radius`` must be at most 1.
    """
    if not 0 < radius <= 1:
        raise ValueError(f"radius must be in (0, 1] pixels, got {radius!r}")
    if mask.dim() != 3 or xy.dim() != 3 or xy.shape[-1] != 2 or xy.shape[0] != mask.shape[0]:
        raise ValueError(f"xy must be [B,K,2] and mask [B,H,W] with the same B, got {list(xy.shape)} "
                         f"and {list(mask.shape)}")
    B, H, W = mask.shape
    base = xy.floor().long()                                                  # containing pixel (j, i)
    found = torch.zeros(xy.shape[:2], dtype=torch.bool)
    b = torch.arange(B)[:, None].expand(xy.shape[:2])
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            j, i = base[..., 0] + dj, base[..., 1] + di
            inside = (j >= 0) & (j < W) & (i >= 0) & (i < H)
            fg = mask[b, i.clamp(0, H - 1), j.clamp(0, W - 1)] > 0
            centre = torch.stack([j, i], -1).to(xy.dtype) + 0.5
            found |= inside & fg & ((centre - xy).norm(dim=-1) <= radius)
    return found


def render_scenes(category: BirdCategory, scenes: dict, resolution: int) -> dict:
    """Render scenes at ``resolution`` x ``resolution``; returns batched ground truth (see the package docstring)."""
    H = W = int(resolution)
    deform, articulation = scenes["deform"], scenes["articulation"]
    B = deform.shape[0]
    faces = category.template.faces
    verts = pose_vertices(category, deform, articulation)                      # [B,V,3]
    R = quaternion_to_matrix(scenes["quat"])
    pos = ortho_clip(verts, scenes["scale"], R, scenes["trans"])
    r = render.rasterize_mesh(pos, faces, (H, W))

    normals_cam = vertex_normals(verts, faces) @ R.transpose(1, 2)
    depth_v = ortho_depth(verts, R)
    attrs = torch.cat([category.template.verts.expand(B, -1, -1), category.template_sphere.expand(B, -1, -1),
                       normals_cam, depth_v[..., None], category.vertex_materials.expand(B, -1, -1)], dim=-1)
    # Work in nvdiffrast's layout ([B,H,W,C], bottom-up rows) and turn the results top-row-first once,
    # with render.flip_rows, at the end: copying the 17 interpolated channels would cost more than shading.
    maps, _ = dr.interpolate(attrs.contiguous(), r.rast, r.tri)                 # [B,H,W,C]
    fg = r.rast[..., 3] > 0                                                     # [B,H,W]
    owner = torch.arange(B)[:, None, None].expand(B, H, W)[fg]                  # instance of each fg pixel
    px = maps[fg]                                                               # [N,C], foreground only
    app = {k[4:]: v[owner] for k, v in scenes.items() if k.startswith("app_")}
    eyes = category.keypoints_template[[category.keypoint_names.index("left_eye"),
                                        category.keypoint_names.index("right_eye")]]
    albedo = shade_albedo(px[:, 0:3], px[:, 10:10 + len(MATERIALS)], app, eyes, BEAK_PLANE)
    normals = torch.nn.functional.normalize(px[:, 6:9], dim=1)
    cos = (normals * scenes["light_dir"][owner]).sum(1, keepdim=True).clamp_min(0.0)
    shaded = albedo * (scenes["ambient"][owner, None] + scenes["diffuse"][owner, None] * cos)
    background = render_background({k[3:]: v for k, v in scenes.items() if k.startswith("bg_")}, H, W)
    image = render.image_to_nv(background)
    image[fg] = shaded
    image = dr.antialias(image, r.rast, r.pos, r.tri).clamp(0.0, 1.0)
    out = torch.zeros(B, H, W, 10)   # image 3, mask 1, depth 1, surface_xyz 3, surface_uv 2
    out[..., 0:3] = image
    out[..., 3][fg] = 1.0
    out[..., 4][fg] = px[:, 9]
    out[..., 5:8][fg] = px[:, 0:3]
    out[..., 8:10][fg] = sphere_to_uv(px[:, 3:6])
    out = render.flip_rows(out)                                                 # [B,10,H,W] top row first

    kp3d = pose_keypoints(category, deform, articulation, verts)
    kp_ndc = ortho_project(kp3d, scenes["scale"], R, scenes["trans"])
    kp_xy = ndc_to_pixel(kp_ndc, H, W)
    inside = (kp_xy[..., 0] >= 0) & (kp_xy[..., 0] < W) & (kp_xy[..., 1] >= 0) & (kp_xy[..., 1] < H)
    verts_ndc = ortho_project(verts, scenes["scale"], R, scenes["trans"])
    visible = surface_visibility(kp_ndc, ortho_depth(kp3d, R), verts_ndc, depth_v, faces, VISIBILITY_EPS)
    drawn = on_drawn_object(kp_xy, out[:, 3])
    keypoints = torch.cat([kp_xy, (inside & visible & drawn).to(kp_xy.dtype)[..., None]], dim=-1)
    return {"image": out[:, 0:3], "mask": out[:, 3:4], "depth": out[:, 4:5], "surface_xyz": out[:, 5:8],
            "surface_uv": out[:, 8:10], "keypoints": keypoints}
