"""The synthetic bird's template surface, shaped procedurally from an icosphere.

The template is a map F from the unit sphere to the bird, evaluated at the 642
vertices of ``icosphere(3)``; the mesh keeps the icosphere's faces, so it is
genus 0 and every vertex keeps its sphere point (hence its sphere UV).

How F works:

- **Body.** Sphere points outside every cap go to an egg-shaped ellipsoid
  (fuller at the front, the breast).
- **Limbs.** Each limb (head with neck and beak, tail, wing, leg) owns a
  spherical cap around an axis that is an icosphere vertex (so the limb's tip is
  a vertex: a sharp beak, a wing tip). A point at angle ``theta`` from the axis
  has the cap coordinate ``t = 1 - theta / cap`` (0 on the cap border, 1 at the
  tip) and an azimuth ``phi`` around the axis. It goes to a generalised cylinder:
  ``centre(t) + width1(t) cos(phi) n1 + width2(t) sin(phi) n2``, where centre and
  widths are piecewise linear in ``t``. Near the border the point is blended
  with the body ellipsoid, so limbs grow out of the body without a crease.
- **Thin parts.** The wings, tail, legs and beak are at least about 0.07 object
  units thick and their tips are rounded (``tip_round``), so that at the course's
  resolutions (a pixel is about 0.04 units at 64 px, 0.08 at 32 px) they are
  drawn, seen edge-on too, and a limb tip keypoint lies on a drawn pixel (see the
  visibility rule in :mod:`.birds_render`).
- **Symmetry.** Left-side limbs are listed once and mirrored; the icosphere is
  symmetric about x = 0, and the final vertices are symmetrised exactly with
  the mirror correspondence, so ``verts[flip] == verts * (-1, 1, 1)``.

Frame: x is the bird's own left, y up, z forward (the beak points to +z, towards the
viewer at identity pose, so the bird's left is the image's right, as for CUB); the bird
spans about [-1, 1] in x (wings spread), and [-0.9, 0.85] in z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from csmlab.geometry import Mesh, icosphere

ICOSPHERE_SUBDIV = 3  # 642 vertices, 1280 faces


@dataclass(frozen=True)
class Limb:
    """One limb: a cap of the sphere mapped to a generalised cylinder (see the module docstring)."""

    name: str
    material: str                     # colour class, see birds_texture.MATERIALS
    axis: tuple[float, float, float]  # cap centre, must be an icosphere vertex direction
    cap_deg: float
    e1: tuple[float, float, float]    # sphere direction (perpendicular to axis) that maps to n1
    knots: tuple[float, ...]          # t values of the profile knots, increasing from 0 to 1
    centre: tuple[tuple[float, float, float], ...]
    width1: tuple[float, ...]         # half-width along n1 at each knot
    width2: tuple[float, ...]         # half-width along n2 at each knot
    blend_t: float = 0.3              # t where the limb has fully replaced the body
    tip_round: float = 0.0            # last fraction of t closed with an elliptic cap (0: pointed tip)


def _unit(v) -> tuple[float, float, float]:
    n = math.sqrt(sum(c * c for c in v))
    return tuple(c / n for c in v)


# Egg-shaped body: centre, half-axes (x, y, z) and how much fuller the front is.
BODY_CENTRE = (0.0, 0.0, -0.04)
BODY_RADII = (0.2, 0.21, 0.42)
BODY_FRONT_FULLNESS = 0.15

_HEAD_AXIS = (0.0, math.sin(math.radians(31.7175)), math.cos(math.radians(31.7175)))
_LEG_AXIS = (0.3731, -0.9199, 0.1208)

# Left-side and midline limbs; limbs with x != 0 in their axis get a mirrored twin.
LIMBS: tuple[Limb, ...] = (
    Limb("head", "head", _HEAD_AXIS, 44.0, (1.0, 0.0, 0.0),
         knots=(0.0, 0.22, 0.42, 0.62, 0.8, 1.0),
         centre=((0, 0.12, 0.26), (0, 0.24, 0.38), (0, 0.37, 0.46), (0, 0.41, 0.55),
                 (0, 0.40, 0.64), (0, 0.36, 0.84)),
         width1=(0.17, 0.10, 0.125, 0.115, 0.05, 0.03),
         width2=(0.17, 0.10, 0.13, 0.11, 0.045, 0.03), blend_t=0.25, tip_round=0.08),
    Limb("tail", "tail", (0.0, 0.0, -1.0), 36.0, (1.0, 0.0, 0.0),
         knots=(0.0, 0.3, 0.65, 1.0),
         centre=((0, 0.03, -0.32), (0, 0.05, -0.52), (0, 0.08, -0.72), (0, 0.1, -0.88)),
         width1=(0.15, 0.08, 0.15, 0.17),
         width2=(0.13, 0.05, 0.04, 0.035), blend_t=0.3, tip_round=0.35),
    Limb("left_wing", "wing", (1.0, 0.0, 0.0), 42.0, (0.0, 0.0, 1.0),
         knots=(0.0, 0.25, 0.55, 0.8, 1.0),
         centre=((0.13, 0.05, 0.0), (0.32, 0.08, -0.03), (0.58, 0.11, -0.09), (0.8, 0.13, -0.15),
                 (0.97, 0.15, -0.2)),
         width1=(0.21, 0.21, 0.17, 0.11, 0.04),
         width2=(0.12, 0.05, 0.045, 0.04, 0.035), blend_t=0.25, tip_round=0.3),
    Limb("left_leg", "leg", _LEG_AXIS, 19.0, (0.0, 0.0, 1.0),
         knots=(0.0, 0.5, 1.0),
         centre=((0.09, -0.17, 0.05), (0.11, -0.3, 0.06), (0.12, -0.4, 0.08)),
         width1=(0.055, 0.045, 0.055), width2=(0.055, 0.045, 0.04), blend_t=0.45, tip_round=0.5),
)


def _mirror_limb(limb: Limb) -> Limb:
    m = lambda v: (-v[0], v[1], v[2])  # noqa: E731 - tiny local helper
    return Limb(limb.name.replace("left", "right"), limb.material, m(limb.axis), limb.cap_deg, m(limb.e1),
                limb.knots, tuple(m(c) for c in limb.centre), limb.width1, limb.width2, limb.blend_t,
                limb.tip_round)


def all_limbs() -> tuple[Limb, ...]:
    """Every limb, left-side ones followed by their mirrored right twins."""
    out = list(LIMBS)
    out += [_mirror_limb(limb) for limb in LIMBS if limb.axis[0] != 0.0]
    return tuple(out)


def interp1(t: torch.Tensor, knots, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``values`` [K,...] given at ``knots`` [K], at ``t`` [N]."""
    k = torch.as_tensor(knots, dtype=t.dtype)
    idx = torch.searchsorted(k, t.contiguous(), right=True).clamp(1, len(knots) - 1)
    t0, t1 = k[idx - 1], k[idx]
    a = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)  # t outside [0,1] only by rounding
    a = a.reshape(a.shape + (1,) * (values.dim() - 1))
    return values[idx - 1] * (1 - a) + values[idx] * a


def smoothstep(edge0: float, edge1: float, x: torch.Tensor) -> torch.Tensor:
    """C1 ramp from 0 (x <= edge0) to 1 (x >= edge1)."""
    s = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0)
    return s * s * (3 - 2 * s)


def _body(p: torch.Tensor) -> torch.Tensor:
    """Egg-shaped ellipsoid point for unit sphere directions p [N,3]."""
    radii = torch.tensor(BODY_RADII, dtype=p.dtype)
    fullness = 1 + BODY_FRONT_FULLNESS * p[:, 2:3]
    scale = torch.cat([radii[:2] * fullness, radii[2:].expand(p.shape[0], 1)], dim=1)
    return torch.tensor(BODY_CENTRE, dtype=p.dtype) + scale * p


def _limb_map(limb: Limb, p: torch.Tensor, body: torch.Tensor):
    """(in_cap [N] bool, t [N], mapped points [N,3]) for the limb's cap."""
    a = torch.tensor(_unit(limb.axis), dtype=p.dtype)
    e1 = torch.tensor(limb.e1, dtype=p.dtype)
    e1 = torch.nn.functional.normalize(e1 - (e1 @ a) * a, dim=0)
    e2 = torch.linalg.cross(a, e1)
    theta = torch.acos((p @ a).clamp(-1.0, 1.0))
    cap = math.radians(limb.cap_deg)
    in_cap = theta < cap
    t = (1 - theta / cap).clamp_min(0.0)
    phi = torch.atan2(p @ e2, p @ e1)

    centre = interp1(t, limb.knots, torch.tensor(limb.centre, dtype=p.dtype))
    w1 = interp1(t, limb.knots, torch.tensor(limb.width1, dtype=p.dtype))
    w2 = interp1(t, limb.knots, torch.tensor(limb.width2, dtype=p.dtype))
    if limb.tip_round > 0:
        # Elliptic end cap: the cross-section shrinks to 0 at t = 1 with a vertical tangent.
        t0 = 1 - limb.tip_round
        r = ((t - t0) / limb.tip_round).clamp(0.0, 1.0)
        shrink = torch.sqrt((1 - r * r).clamp_min(0.0))
        w1, w2 = w1 * shrink, w2 * shrink
    # Cross-section frame: n1 follows e1 made perpendicular to the centre curve's tangent; the
    # tangent at each knot averages its two segments, so the frame turns smoothly along the limb.
    pts = torch.tensor(limb.centre, dtype=p.dtype)
    seg = torch.nn.functional.normalize(torch.diff(pts, dim=0), dim=1)
    knot_tangent = torch.cat([seg[:1], seg[:-1] + seg[1:], seg[-1:]], dim=0)
    tangent = interp1(t, limb.knots, torch.nn.functional.normalize(knot_tangent, dim=1))
    tangent = torch.nn.functional.normalize(tangent, dim=1)
    n1 = torch.nn.functional.normalize(e1 - (tangent @ e1)[:, None] * tangent, dim=1)
    n2 = torch.linalg.cross(tangent, n1, dim=1)
    tube = centre + (w1 * torch.cos(phi))[:, None] * n1 + (w2 * torch.sin(phi))[:, None] * n2
    beta = smoothstep(0.0, limb.blend_t, t)[:, None]
    return in_cap, t, (1 - beta) * body + beta * tube


def mirror_correspondence(points: torch.Tensor) -> torch.Tensor:
    """[V] index of each point's mirror image (x -> -x) among ``points``; raises if one is missing."""
    mirrored = points * torch.tensor([-1.0, 1.0, 1.0], dtype=points.dtype)
    dist = torch.cdist(mirrored.double(), points.double())
    best = dist.min(dim=1)
    if best.values.max() > 1e-5:
        raise RuntimeError(f"points are not mirror symmetric (worst mismatch {best.values.max():.2e})")
    return best.indices


@dataclass
class BirdSurface:
    """The template mesh and what each vertex remembers of its construction."""

    mesh: Mesh                 # vertices symmetric about x = 0
    sphere: torch.Tensor       # [V,3] unit sphere point of each vertex
    vertex_flip: torch.Tensor  # [V] long, mirror twin of each vertex
    limb_index: torch.Tensor   # [V] long, index into limbs (-1: body)
    limb_t: torch.Tensor       # [V] cap coordinate t in the limb (0 on the body)
    limbs: tuple[Limb, ...]


def build_bird_surface() -> BirdSurface:
    """Evaluate the sphere-to-bird map at the icosphere vertices (float64, then float32)."""
    ico = icosphere(ICOSPHERE_SUBDIV)
    p = torch.nn.functional.normalize(ico.verts.double(), dim=1)
    flip = mirror_correspondence(p)
    body = _body(p)
    verts = body.clone()
    limb_index = torch.full((p.shape[0],), -1, dtype=torch.long)
    limb_t = torch.zeros(p.shape[0], dtype=torch.float64)
    limbs = all_limbs()
    for i, limb in enumerate(limbs):
        in_cap, t, mapped = _limb_map(limb, p, body)
        if (limb_index[in_cap] >= 0).any():
            raise RuntimeError(f"the cap of limb {limb.name!r} overlaps another limb's cap")
        verts[in_cap] = mapped[in_cap]
        limb_index[in_cap] = i
        limb_t[in_cap] = t[in_cap]
    # Exact symmetry: average each vertex with its mirrored twin.
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=verts.dtype)
    verts = 0.5 * (verts + verts[flip] * mirror)
    return BirdSurface(Mesh(verts.float(), ico.faces.clone()), p.float(), flip, limb_index, limb_t.float(), limbs)
