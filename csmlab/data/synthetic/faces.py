"""The "faces" category: symmetric height-field objects seen like Unsup3D's faces.

An object is a depth map over the canonical image (geometry and camera in
:mod:`.faces_geometry`): ``depth = DEPTH_RIM - relief(x, y)`` with NDC (x, y)
and ``DEPTH_RIM`` = 1,
where the relief is a dome over an ellipse (the face outline, the mask) plus
mirror-symmetric Gaussian bumps for the nose, brows, cheeks and chin and dips
for the eye sockets. Its albedo is symmetric too (skin, hair, eyes, brows, lips,
blush); with probability ``ASYM_PROB`` an asymmetric perturbation is added, a
coloured patch or a hair fringe on one side. Each image is the canonical
Lambertian image (ambient + directional light, in the canonical frame) seen
from a view within Unsup3D's ranges.

Scene prior (all uniform): one of four outlines (``OUTLINES``: ellipse
semi-axes ax in [0.64, 0.72], ay in [0.8, 0.88]); dome height [0.03, 0.05];
nose [0.015, 0.03]; brows, cheeks, chin [0.004, 0.01]; sockets [0.003, 0.008];
so the canonical depth stays in [0.91, 1] on the face and in [0.9, 1.1]
everywhere; ambient [0.3, 0.6], diffuse = (1 -
ambient) * [0.7, 1]; light direction normalize(lx, ly, 1), lx, ly in [-0.8,
0.8]; view yaw in [-60, 60] degrees, pitch in [-20, 20], roll in [-10, 10],
translation x, y in [-0.01, 0.01] and z in [-0.05, 0.05]. (Unsup3D bounds its
view translation by 0.1; at a 10-degree field of view the image half-width at
depth 1 is only 0.087, so the sampler keeps well inside that bound.)

The background is a flat frontal plane of a uniform random albedo, lit by the
scene's light (:func:`background_image`), so that Unsup3D's image formation can
draw it too.
"""

from __future__ import annotations

import math

import torch

from csmlab import render
from csmlab.geometry import perspective_clip

from .faces_geometry import (
    FAR,
    FOV_DEG,
    NEAR,
    apply_view,
    depth_to_normals,
    grid_mesh_faces,
    pixel_ndc_grid,
    shade,
    warp_canonical,
)

BLOCK = 256
ASYM_PROB = 0.5
VIEW_PRIOR = {"yaw_deg": 60.0, "pitch_deg": 20.0, "roll_deg": 10.0, "trans_xy": 0.01, "trans_z": 0.05}
GRID_OFFSET_PX = 1e-3
# Depth of the face's outline. Unsup3D's depth net centres its whole map on (min + max) / 2 = 1 (a
# mean-subtracted tanh) and its views rotate about that depth; with the outline at 1 the whole-image mean
# of the canonical depth (face, and the skirt outside it, which rises to ~1.05) is ~1.004, so the model can
# draw the face where it is. At 1.05 (mean 1.054) the model's face sat ~0.05 in front of the true one and
# it learned the mirrored yaw and pitch (yaw correlation -0.96 at medium scale; see the assets README).
DEPTH_RIM = 1.0
# Face outlines (ellipse semi-axes ax, ay and centre height cy, NDC). A few fixed ones, so that the
# faces sharing an outline share their mesh and are rasterized in one batch.
OUTLINES = ((0.64, 0.80, 0.0), (0.68, 0.84, -0.02), (0.72, 0.82, 0.02), (0.66, 0.88, 0.0))
SKIN_TONES = ((0.93, 0.76, 0.65), (0.85, 0.64, 0.5), (0.7, 0.5, 0.38), (0.5, 0.35, 0.25), (0.95, 0.82, 0.72))


def _u(g, shape, low, high):
    return low + (high - low) * torch.rand(shape, generator=g)


def _sample_block(n: int, g: torch.Generator) -> dict:
    tones = torch.tensor(SKIN_TONES)[torch.randint(len(SKIN_TONES), (n,), generator=g)]
    ambient = _u(g, (n,), 0.3, 0.6)
    light_xy = _u(g, (n, 2), -0.8, 0.8)
    rad = math.radians
    return {
        "outline": torch.randint(len(OUTLINES), (n,), generator=g),
        "dome": _u(g, (n,), 0.03, 0.05),
        "nose": _u(g, (n,), 0.015, 0.03), "nose_size": _u(g, (n, 2), 0.9, 1.2),
        "brows": _u(g, (n,), 0.004, 0.01), "cheeks": _u(g, (n,), 0.004, 0.01),
        "chin": _u(g, (n,), 0.004, 0.01), "sockets": _u(g, (n,), 0.003, 0.008),
        "eye_xy": torch.stack([_u(g, (n,), 0.24, 0.32), _u(g, (n,), 0.08, 0.18)], -1),
        "skin": (tones + 0.05 * torch.randn(n, 3, generator=g)).clamp(0.05, 0.98),
        "hair": torch.rand(n, 3, generator=g) * 0.5, "hair_line": _u(g, (n,), 0.4, 0.6),
        "lips": _u(g, (n, 3), 0.0, 1.0) * torch.tensor([0.3, 0.15, 0.15]) + torch.tensor([0.55, 0.2, 0.25]),
        "iris": torch.rand(n, 3, generator=g) * 0.4,
        "asym_kind": torch.where(torch.rand(n, generator=g) < ASYM_PROB,
                                 torch.randint(1, 3, (n,), generator=g), torch.zeros(n, dtype=torch.long)),
        "asym_side": torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0),
        "patch_xy": torch.stack([_u(g, (n,), 0.2, 0.5), _u(g, (n,), -0.5, 0.3)], -1),
        "patch_colour": torch.rand(n, 3, generator=g), "patch_radius": _u(g, (n,), 0.12, 0.22),
        "ambient": ambient, "diffuse": (1 - ambient) * _u(g, (n,), 0.7, 1.0),
        "light_dir": torch.nn.functional.normalize(torch.cat([light_xy, torch.ones(n, 1)], -1), dim=-1),
        "rotation": torch.stack([_u(g, (n,), -1, 1) * rad(VIEW_PRIOR["yaw_deg"]),
                                 _u(g, (n,), -1, 1) * rad(VIEW_PRIOR["pitch_deg"]),
                                 _u(g, (n,), -1, 1) * rad(VIEW_PRIOR["roll_deg"])], -1),
        "trans": torch.cat([_u(g, (n, 2), -1, 1) * VIEW_PRIOR["trans_xy"],
                            _u(g, (n, 1), -1, 1) * VIEW_PRIOR["trans_z"]], -1),
        "background": torch.rand(n, 3, generator=g),
    }


def sample_scenes(n: int, seed: int) -> dict:
    """n face scenes (dict of tensors, first dimension n), in seeded blocks like the birds."""
    blocks = [_sample_block(BLOCK, torch.Generator().manual_seed(int(seed) * 1_000_003 + 7919 + b))
              for b in range(math.ceil(n / BLOCK))]
    return {k: torch.cat([blk[k] for blk in blocks])[:n] for k in blocks[0]}


def _bump(x, y, cx, cy, sx, sy):
    return torch.exp(-((x - cx) / sx) ** 2 - ((y - cy) / sy) ** 2)


def _per(t):  # [B] -> [B,1,1]
    return t[:, None, None]


def face_fields(scenes: dict, resolution: int):
    """Canonical depth [B,1,H,W], face region [B,H,W] bool and albedo [B,3,H,W] of the scenes."""
    S = int(resolution)
    x, y = pixel_ndc_grid(S, S)
    x, y = x[None], y[None]
    outline = torch.tensor(OUTLINES)[scenes["outline"]]
    ax, ay, cy = (_per(outline[:, k]) for k in range(3))
    q = (x / ax) ** 2 + ((y - cy) / ay) ** 2
    inside = q < 1
    # Dome: steep at the outline, flat in the middle; it continues smoothly (negative) outside.
    relief = _per(scenes["dome"]) * torch.tanh(2.5 * (1 - q)) / math.tanh(2.5)
    ex, ey = _per(scenes["eye_xy"][:, 0]), _per(scenes["eye_xy"][:, 1])
    nsx, nsy = _per(scenes["nose_size"][:, 0]), _per(scenes["nose_size"][:, 1])
    relief = relief + _per(scenes["nose"]) * _bump(x, y, 0.0, -0.05, 0.11 * nsx, 0.28 * nsy)
    for side in (-1.0, 1.0):
        relief = relief + _per(scenes["brows"]) * _bump(x, y, side * ex, ey + 0.17, 0.16, 0.07)
        relief = relief + _per(scenes["cheeks"]) * _bump(x, y, side * (ex + 0.06), -0.25, 0.17, 0.15)
        relief = relief - _per(scenes["sockets"]) * _bump(x, y, side * ex, ey, 0.12, 0.08)
    relief = relief + _per(scenes["chin"]) * _bump(x, y, 0.0, -0.68, 0.2, 0.1)
    depth = (DEPTH_RIM - relief)[:, None]

    col = lambda name: scenes[name][:, :, None, None]  # noqa: E731
    xa = x.abs()[:, None]
    yy = y[:, None]
    albedo = col("skin").expand(-1, 3, S, S).clone()
    # Symmetric features; edges are a few pixels wide at 64 px so warps stay smooth.
    blush = _bump(xa, yy, _per(scenes["eye_xy"][:, 0])[:, None] + 0.06, -0.25, 0.15, 0.12)
    albedo = albedo * (1 - 0.12 * blush) + 0.12 * blush * torch.tensor([0.9, 0.4, 0.4])[None, :, None, None]
    lips = _bump(x[:, None], yy, 0.0, -0.45, 0.2, 0.06)
    albedo = albedo + lips * (col("lips") - albedo)
    white = torch.full((1, 3, 1, 1), 0.95)
    # (size x, size y, height above the eye), colour, opacity: brows, eye whites, irises.
    for (sx, sy, dy), colour, strength in (((0.13, 0.05, 0.17), col("hair"), 0.9),
                                           ((0.09, 0.055, 0.0), white, 0.85),
                                           ((0.045, 0.045, 0.0), col("iris"), 1.0)):
        feature = strength * _bump(xa, yy, ex[:, None], ey[:, None] + dy, sx, sy)
        albedo = albedo + feature * (colour - albedo)
    hair_line = _per(scenes["hair_line"])[:, None]
    hair = torch.sigmoid((yy - hair_line - 0.25 * xa ** 2) / 0.04)
    albedo = albedo + hair * (col("hair") - albedo)
    # Asymmetric perturbations (kind 1: a patch, kind 2: a fringe of hair on one side).
    side = _per(scenes["asym_side"])[:, None]
    kind = scenes["asym_kind"][:, None, None, None]
    pr = _per(scenes["patch_radius"])[:, None]
    px, py = (_per(scenes["patch_xy"][:, k])[:, None] for k in range(2))
    patch = torch.sigmoid((pr - ((x[:, None] - side * px) ** 2 + (yy - py) ** 2).sqrt()) / 0.03) * (kind == 1)
    albedo = albedo + patch * (col("patch_colour") - albedo)
    fringe = torch.sigmoid((yy - hair_line + 0.25 + 0.3 * side * x[:, None]) / 0.04) \
        * torch.sigmoid((side * x[:, None] - 0.05) / 0.04) * (kind == 2)
    albedo = albedo + fringe * (col("hair") - albedo)
    return depth, inside, albedo.clamp(0.0, 1.0)


def mesh_points(depth: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] depth -> [B,H*W,3] vertices of the object's grid mesh (canonical camera frame).

    Vertex (i, j) has pixel (i, j)'s depth, on a ray a thousandth of a pixel off
    that pixel's centre: pixel centres then fall strictly inside triangles, so no
    rasterizer tie rule can drop them, and the canonical depth rendered at the
    centre differs from the stored one by less than 1e-6.
    """
    B, _, H, W = depth.shape
    x, y = pixel_ndc_grid(H, W, depth.dtype, depth.device)
    k = math.tan(math.radians(FOV_DEG) / 2)
    x, y = x + GRID_OFFSET_PX * 2 / W, y + GRID_OFFSET_PX * 2 / H
    rays = torch.stack([x * k, y * k, -torch.ones_like(x)], 0)
    return (depth * rays[None]).flatten(2).transpose(1, 2).contiguous()


def background_colour(scenes: dict) -> torch.Tensor:
    """[B,3] colour of the background: a frontal plane of albedo ``background``, lit by the scene's light.

    ``background * (ambient + diffuse * max(0, l_z))`` is what Unsup3D's image formation gives a flat,
    frontal, uniform surface (normal (0, 0, 1)), so the model can reconstruct it. The unlit random
    colour of faces cache 6 and before was brighter than ``albedo <= 1`` under the scene's light
    could make it on about a quarter of the background pixels; the light net then bent ambient and
    diffuse to fit the background instead of the face.
    """
    lit = scenes["ambient"] + scenes["diffuse"] * scenes["light_dir"][:, 2].clamp_min(0.0)
    return scenes["background"] * lit[:, None]


def background_image(scenes: dict, resolution: int) -> torch.Tensor:
    """[B,3,S,S] the background of every view: :func:`background_colour` everywhere."""
    S = int(resolution)
    return background_colour(scenes)[:, :, None, None].expand(-1, 3, S, S)


def render_scenes(scenes: dict, resolution: int) -> dict:
    """Render face scenes; returns batched fields (see the package docstring for their meaning)."""
    S = int(resolution)
    depth, inside, albedo = face_fields(scenes, S)
    B = depth.shape[0]
    canonical = shade(albedo, depth_to_normals(depth), scenes["ambient"], scenes["diffuse"], scenes["light_dir"])
    points = mesh_points(depth)
    view_points = apply_view(points, scenes["rotation"], scenes["trans"])
    mask = torch.zeros(B, 1, S, S)
    view_depth = torch.zeros(B, 1, S, S)
    for k in scenes["outline"].unique().tolist():   # faces with one outline share their triangles
        group = (scenes["outline"] == k).nonzero()[:, 0]
        faces = grid_mesh_faces(inside[group[0]])
        pos = perspective_clip(view_points[group], FOV_DEG, NEAR, FAR)
        r = render.rasterize_mesh(pos, faces, (S, S))
        mask[group] = r.mask
        view_depth[group] = render.depth_image(r, -view_points[group][..., 2]) * r.mask
    warped = warp_canonical(canonical, view_depth, scenes["rotation"], scenes["trans"])
    image = torch.where(mask > 0, warped, background_image(scenes, S))
    return {"image": image, "mask": mask, "depth": view_depth, "canonical_depth": depth,
            "canonical_mask": inside[:, None].to(depth.dtype), "albedo": albedo, "canonical_image": canonical}
