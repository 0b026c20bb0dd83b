"""Bird appearance: a procedural *solid* texture, and the backgrounds.

The colour of a surface point is a function of its template position ``X``
(the pixel's ``surface_xyz``) and of soft material weights interpolated from the
vertices, so it is sharp at every resolution and has no UV seam:

- **Materials** (``MATERIALS``): body, breast, head, beak, wing, tail, leg. Each
  instance draws a colour scheme (robin, jay, cardinal, goldfinch, sparrow,
  crow, parrot, dove) and jitters every colour a little.
- **Patterns**: plain, wing bars (stripes across the span), spots on the body
  and wings, or both; a darker crown; eyes (a dark pupil in a pale ring).
- **Symmetry.** Every pattern depends on ``|x|``, never on the sign of x, so the
  left and right wings look alike *on purpose*: telling them apart needs the 3D
  shape and the pose, which is the left/right ambiguity spherical maps address.

Use :func:`sample_appearance` for the per-instance parameters and
:func:`shade_albedo` to colour per-pixel template points; :func:`vertex_albedo`
colours the template vertices for 3D plots.
"""

from __future__ import annotations

import math

import torch

from .birds_shape import smoothstep

MATERIALS = ("body", "breast", "head", "beak", "wing", "tail", "leg")

# Colour schemes, rows in MATERIALS order (RGB in [0, 1]).
SCHEMES = {
    "robin":     [(0.45, 0.36, 0.28), (0.85, 0.42, 0.18), (0.25, 0.22, 0.2), (0.9, 0.75, 0.2),
                  (0.38, 0.3, 0.24), (0.3, 0.25, 0.2), (0.55, 0.4, 0.3)],
    "jay":       [(0.3, 0.45, 0.75), (0.85, 0.85, 0.88), (0.25, 0.4, 0.75), (0.15, 0.15, 0.15),
                  (0.2, 0.35, 0.8), (0.15, 0.3, 0.65), (0.2, 0.2, 0.2)],
    "cardinal":  [(0.78, 0.12, 0.1), (0.85, 0.2, 0.15), (0.8, 0.1, 0.1), (0.95, 0.55, 0.2),
                  (0.6, 0.1, 0.1), (0.55, 0.1, 0.08), (0.5, 0.3, 0.25)],
    "goldfinch": [(0.95, 0.82, 0.15), (0.98, 0.88, 0.3), (0.95, 0.8, 0.1), (0.9, 0.6, 0.3),
                  (0.12, 0.12, 0.12), (0.15, 0.15, 0.15), (0.7, 0.55, 0.4)],
    "sparrow":   [(0.55, 0.45, 0.35), (0.78, 0.74, 0.68), (0.5, 0.4, 0.32), (0.45, 0.4, 0.35),
                  (0.48, 0.35, 0.22), (0.42, 0.33, 0.25), (0.7, 0.55, 0.45)],
    "crow":      [(0.12, 0.12, 0.15), (0.16, 0.16, 0.2), (0.1, 0.1, 0.12), (0.08, 0.08, 0.08),
                  (0.1, 0.1, 0.14), (0.09, 0.09, 0.12), (0.15, 0.15, 0.15)],
    "parrot":    [(0.2, 0.7, 0.25), (0.9, 0.85, 0.2), (0.85, 0.2, 0.15), (0.95, 0.9, 0.8),
                  (0.15, 0.45, 0.85), (0.9, 0.3, 0.15), (0.55, 0.55, 0.55)],
    "dove":      [(0.7, 0.7, 0.72), (0.8, 0.72, 0.75), (0.65, 0.65, 0.7), (0.35, 0.3, 0.3),
                  (0.6, 0.6, 0.65), (0.45, 0.45, 0.5), (0.8, 0.45, 0.45)],
}
SCHEME_NAMES = tuple(SCHEMES)
PATTERNS = ("plain", "wing_bars", "spots", "bars_and_spots")
NUM_SPOTS = 6
EYE_RADIUS = (0.022, 0.04)   # pupil and ring radii, object units
BACKGROUNDS = ("solid", "gradient", "noise")
NOISE_GRID = 6               # low-resolution noise grid, upsampled to the image
BEAK_PLANE = ((0.0, 0.40, 0.66), (0.0, -0.196, 0.981))  # (point, normal): head points ahead of it are beak


def _uniform(g: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g)


def sample_appearance(n: int, g: torch.Generator) -> dict:
    """Per-instance appearance parameters (all tensors with first dimension n)."""
    scheme = torch.randint(len(SCHEMES), (n,), generator=g)
    table = torch.tensor([SCHEMES[name] for name in SCHEME_NAMES])          # [S,nm,3]
    palette = table[scheme] + 0.06 * torch.randn(n, len(MATERIALS), 3, generator=g)
    secondary = torch.rand(n, 3, generator=g) * 0.5 + 0.5 * palette[:, MATERIALS.index("wing")].flip(-1)
    return {
        "scheme": scheme,
        "palette": palette.clamp(0.02, 0.98),
        "secondary": secondary.clamp(0.02, 0.98),
        "pattern": torch.randint(len(PATTERNS), (n,), generator=g),
        "bar_freq": _uniform(g, (n,), 5.0, 10.0),
        "bar_phase": _uniform(g, (n,), 0.0, 2 * math.pi),
        # Spots live in (|x|, y, z): mirror-symmetric by construction.
        "spot_centres": torch.stack([_uniform(g, (n, NUM_SPOTS), 0.0, 0.7), _uniform(g, (n, NUM_SPOTS), -0.2, 0.2),
                                     _uniform(g, (n, NUM_SPOTS), -0.4, 0.3)], -1),
        "spot_radius": _uniform(g, (n,), 0.04, 0.08),
        "crown_dark": _uniform(g, (n,), 0.0, 0.6),
    }


def sample_background(n: int, g: torch.Generator) -> dict:
    """Per-image background parameters: type (index into BACKGROUNDS), two colours, a direction, a noise grid."""
    return {
        "kind": torch.randint(len(BACKGROUNDS), (n,), generator=g),
        "colour0": torch.rand(n, 3, generator=g),
        "colour1": torch.rand(n, 3, generator=g),
        "angle": _uniform(g, (n,), 0.0, 2 * math.pi),
        "noise": torch.rand(n, 3, NOISE_GRID, NOISE_GRID, generator=g),
    }


def render_background(params: dict, height: int, width: int) -> torch.Tensor:
    """[B,3,H,W] top-row-first backgrounds in [0, 1]."""
    kind = params["kind"]
    B = kind.shape[0]
    ys = torch.linspace(1, -1, height)[:, None].expand(height, width)   # NDC, top row first
    xs = torch.linspace(-1, 1, width)[None, :].expand(height, width)
    c0, c1 = params["colour0"][:, :, None, None], params["colour1"][:, :, None, None]
    ang = params["angle"][:, None, None]
    ramp = (0.5 + 0.35 * (xs * torch.cos(ang) + ys * torch.sin(ang)))[:, None]  # [B,1,H,W] in [0.005, 0.995]
    out = c0.expand(B, 3, height, width).clone()                  # solid
    grad = kind == 1
    out[grad] = (c0 + (c1 - c0) * ramp)[grad]
    noisy = kind == 2
    if noisy.any():
        noise = torch.nn.functional.interpolate(params["noise"][noisy], size=(height, width), mode="bilinear",
                                                align_corners=True)
        out[noisy] = 0.5 * noise + 0.5 * c0[noisy]
    return out


def material_weights(surface) -> torch.Tensor:
    """[V,len(MATERIALS)] one-hot material of each template vertex.

    Limb vertices in the fillet (t below half the limb's blend) count as body;
    the breast is the front-lower body; the beak is cut by a plane in
    :func:`shade_albedo`, not here.
    """
    V = surface.mesh.verts.shape[0]
    mat = torch.full((V,), MATERIALS.index("body"), dtype=torch.long)
    for i, limb in enumerate(surface.limbs):
        own = (surface.limb_index == i) & (surface.limb_t > 0.5 * limb.blend_t)
        mat[own] = MATERIALS.index(limb.material)
    X = surface.mesh.verts
    breast = (mat == MATERIALS.index("body")) & (X[:, 2] > 0.05) & (X[:, 1] < 0.12)
    mat[breast] = MATERIALS.index("breast")
    return torch.nn.functional.one_hot(mat, len(MATERIALS)).float()


def shade_albedo(X: torch.Tensor, materials: torch.Tensor, app: dict, eyes: torch.Tensor,
                 beak_plane: tuple) -> torch.Tensor:
    """Albedo [N,3] of template points X [N,3] with material weights [N,nm].

    ``app`` holds one row of appearance parameters per point (index the
    per-instance parameters with each point's instance). eyes: [2,3] template eye
    centres (left, right); beak_plane: (point, normal) in the template frame;
    head points in front of it are beak.
    """
    def col(t):  # noqa: E306 - [N] -> [N,1]
        return t[:, None]
    palette = app["palette"]                                              # [N,nm,3]
    w = materials / materials.sum(1, keepdim=True).clamp_min(1e-6)
    albedo = torch.einsum("nm,nmc->nc", w, palette)
    x_abs, y, z = X[:, 0].abs(), X[:, 1], X[:, 2]
    # Beak: a crisp cut across the head limb.
    point, normal = (torch.tensor(v, dtype=X.dtype) for v in beak_plane)
    ahead = (X - point) @ normal
    is_beak = smoothstep(-0.005, 0.005, ahead) * w[:, MATERIALS.index("head")] + w[:, MATERIALS.index("beak")]
    albedo = albedo + col(is_beak) * (palette[:, MATERIALS.index("beak")] - albedo)
    # Dark crown on the head.
    crown = smoothstep(0.42, 0.47, y) * w[:, MATERIALS.index("head")] * app["crown_dark"]
    albedo = albedo * (1 - 0.8 * col(crown))
    pattern = app["pattern"]
    secondary = app["secondary"]
    wing = w[:, MATERIALS.index("wing")]
    bars = 0.5 + 0.5 * torch.sin(app["bar_freq"] * x_abs * 2 * math.pi + app["bar_phase"])
    bars = smoothstep(0.55, 0.75, bars) * wing * ((pattern == 1) | (pattern == 3)).to(X.dtype)
    albedo = albedo + col(bars) * (secondary - albedo)
    q = torch.stack([x_abs, y, z], -1)                                    # mirror-symmetric coordinates
    d2 = ((q[:, None, :] - app["spot_centres"]) ** 2).sum(-1).min(dim=1).values   # [N]
    spots = smoothstep(1.0, 0.6, d2.sqrt() / app["spot_radius"])
    body_like = w[:, MATERIALS.index("body")] + w[:, MATERIALS.index("wing")] + w[:, MATERIALS.index("breast")]
    spots = spots * body_like * ((pattern == 2) | (pattern == 3)).to(X.dtype)
    albedo = albedo + col(spots) * (0.6 * secondary + 0.4 * (1 - albedo) - albedo)
    # Eyes, at mirror-symmetric positions: a pale ring around a dark pupil.
    eye = eyes[1].to(X.dtype)
    de = (q - eye).norm(dim=-1)
    ring = col(smoothstep(EYE_RADIUS[1], EYE_RADIUS[1] - 0.006, de))
    pupil = col(smoothstep(EYE_RADIUS[0], EYE_RADIUS[0] - 0.006, de))
    albedo = albedo + ring * (0.92 - albedo)
    albedo = albedo + pupil * (0.04 - albedo)
    return albedo.clamp(0.0, 1.0)


def vertex_albedo(category, app: dict) -> torch.Tensor:
    """[B,V,3] albedo of the template vertices for instances with appearance ``app`` (e.g. for 3D plots)."""
    B, V = app["palette"].shape[0], category.template.num_verts
    per_point = {k: v.repeat_interleave(V, dim=0) for k, v in app.items()}
    X = category.template.verts.repeat(B, 1)
    mats = category.vertex_materials.repeat(B, 1)
    eyes = category.keypoints_template[[category.keypoint_names.index("left_eye"),
                                        category.keypoint_names.index("right_eye")]]
    return shade_albedo(X, mats, per_point, eyes, BEAK_PLANE).reshape(B, V, 3)
