"""Viewpoint and articulation priors of the synthetic birds (what a benchmark rung draws).

Two viewpoint priors (``views=``) and three articulation priors (``articulation=``),
passed to :func:`csmlab.data.synthetic.make_dataset` and
:func:`.birds_scenes.sample_scenes`. Angles follow ``csmlab.geometry.azel_to_matrix``:
azimuth 0 looks at the bird's face (beak towards the camera), +-90 deg at its
side, 180 deg at its back; positive elevation looks down on it.

Views
-----
- ``"full"``: azimuth uniform on the full circle, elevation uniform in [-30, 30] deg.
  For a mirror-symmetric bird under an orthographic camera every view has a
  silhouette twin, equally likely: (180 deg - azimuth, -elevation) shows the same
  mask (the view from the opposite side is the mirror image, and so is the view
  of the mirrored bird), so masks alone cannot tell the front half of the circle
  from the back half.
- ``"cub"``: mostly side and three-quarter views, few from the front or behind, as
  in CUB-200-2011's photographs of perched birds. ``|azimuth|`` is a normal with
  mean 80 deg and std 30 deg truncated to [0, 180] deg, its sign a fair coin (the
  bird's left and right sides are equally likely); elevation is a normal with mean
  10 deg (looking slightly down) and std 12 deg truncated to [-30, 30] deg.
  **These numbers are an assumption**: CUB publishes no viewpoint annotation, and
  its SfM cameras (CMR/CSM's ``cub_sfm``) are not at hand here. They encode the
  qualitative statement "mostly side and three-quarter views, few from behind":
  under them ``P(|az| > 150 deg) ~ 1 %`` and ``P(45 deg <= |az| <= 135 deg) ~ 85 %``
  (:func:`view_prior_summary` computes these).

Both priors draw roll uniform in [-10, 10] deg.

Articulation
------------
- ``"rest"``: every joint angle 0 (the template's pose, wings spread): a rigid
  category up to the deformation modes.
- ``"cub"``: perched birds with folded wings. With probability
  ``CUB_FOLDED_FRACTION`` = 0.85 both wings are folded (sweep 85 +- 5 deg back,
  flap 85 +- 5 deg, so each wing lies back along the body's side, its tip over the
  tail); otherwise the wings are drawn uniformly from the flight ranges
  (``FLIGHT_RANGES_DEG``, the wings of a bird taking off or landing). Head yaw,
  head pitch and tail pitch are normals with std 15, 10 and 8 deg. **Assumptions**:
  most CUB photographs show perched birds with folded wings; a minority show
  spread wings; the fractions and spreads are not measured.
- ``"full"``: every joint uniform over the category's full range
  (``articulation_low``/``articulation_high``, :mod:`.birds_template`), which spans
  both the folded and the flight poses.

Every draw is clipped (never wrapped) to the category's joint range, so a prior
never leaves it.
"""

from __future__ import annotations

import math

import torch

from .birds_template import FLIGHT_RANGES_DEG, BirdCategory

VIEWS = ("full", "cub")
ARTICULATIONS = ("rest", "cub", "full")

ELEVATION_RANGE_DEG = 30.0
ROLL_RANGE_DEG = 10.0
CUB_AZIMUTH_DEG = (80.0, 30.0)       # mean and std of |azimuth| (assumption, see the module docstring)
CUB_ELEVATION_DEG = (10.0, 12.0)     # mean and std of the elevation (assumption)
CUB_FOLDED_FRACTION = 0.85           # perched birds with folded wings (assumption)
CUB_FOLDED_DEG = {"flap": (85.0, 5.0), "sweep": (85.0, 5.0)}   # mean, std (assumption)
CUB_HEAD_TAIL_STD_DEG = {"head_yaw": 15.0, "head_pitch": 10.0, "tail_pitch": 8.0}  # about 0 (assumption)


def check_prior(views: str, articulation: str) -> None:
    """Raise ValueError naming the allowed values unless both priors are known."""
    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
    if articulation not in ARTICULATIONS:
        raise ValueError(f"articulation must be one of {ARTICULATIONS}, got {articulation!r}")


def _uniform(g, shape, low, high):
    return low + (high - low) * torch.rand(shape, generator=g)


def truncated_normal(g, shape, mean: float, std: float, low: float, high: float) -> torch.Tensor:
    """Normal(mean, std) truncated to [low, high], by the inverse CDF (no rejection loop)."""
    a = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    u = a + (b - a) * torch.rand(shape, generator=g, dtype=torch.float64)
    return (mean + std * torch.special.ndtri(u)).float()


def sample_views(g: torch.Generator, n: int, views: str) -> torch.Tensor:
    """[n,3] azimuth, elevation, roll in radians under the ``views`` prior."""
    el_max = ELEVATION_RANGE_DEG
    if views == "full":
        az = _uniform(g, (n,), -math.pi, math.pi)
        el = _uniform(g, (n,), -1.0, 1.0) * math.radians(el_max)
    elif views == "cub":
        side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        az = side * truncated_normal(g, (n,), *CUB_AZIMUTH_DEG, 0.0, 180.0).deg2rad()
        el = truncated_normal(g, (n,), *CUB_ELEVATION_DEG, -el_max, el_max).deg2rad()
    else:
        raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
    roll = _uniform(g, (n,), -1.0, 1.0) * math.radians(ROLL_RANGE_DEG)
    return torch.stack([az, el, roll], -1)


def sample_articulation(category: BirdCategory, g: torch.Generator, n: int, articulation: str) -> torch.Tensor:
    """[n,J] joint angles in radians (order of ``category.joint_names``) under the ``articulation`` prior."""
    lo, hi = category.articulation_low, category.articulation_high
    J = category.num_joints
    if articulation == "rest":
        return torch.zeros(n, J)
    if articulation == "full":
        return lo + (hi - lo) * torch.rand(n, J, generator=g)
    if articulation != "cub":
        raise ValueError(f"articulation must be one of {ARTICULATIONS}, got {articulation!r}")
    names = category.joint_names
    deg = torch.zeros(n, J)
    folded = torch.rand(n, generator=g) < CUB_FOLDED_FRACTION
    for j, name in enumerate(names):
        if name.endswith(("wing_flap", "wing_sweep")):
            kind = name.rsplit("_", 1)[1]
            mean, std = CUB_FOLDED_DEG[kind]
            fold = mean + std * torch.randn(n, generator=g)
            flight = _uniform(g, (n,), *FLIGHT_RANGES_DEG[name])
            deg[:, j] = torch.where(folded, fold, flight)
        else:
            deg[:, j] = CUB_HEAD_TAIL_STD_DEG[name] * torch.randn(n, generator=g)
    return torch.minimum(torch.maximum(torch.deg2rad(deg), lo), hi)


def folded_articulation(category: BirdCategory) -> torch.Tensor:
    """[J] joint angles in radians of the typical perched bird of the ``"cub"`` prior.

    Both wings at the folded means of ``CUB_FOLDED_DEG`` (flap and sweep), head and
    tail at 0 (their prior means), clipped to the category's range like every draw.
    It is the pose of the rung-B template variant of CSM (``template_pose="folded"``).
    """
    deg = torch.zeros(category.num_joints)
    for j, name in enumerate(category.joint_names):
        if name.endswith(("wing_flap", "wing_sweep")):
            deg[j] = CUB_FOLDED_DEG[name.rsplit("_", 1)[1]][0]
    lo, hi = category.articulation_low, category.articulation_high
    return torch.minimum(torch.maximum(torch.deg2rad(deg), lo), hi)


def view_prior_summary(views: str, n: int = 100_000, seed: int = 0) -> dict:
    """Fractions of azimuths in the front (|az| < 45), side (45-135) and back (> 135 deg) under a prior,
    plus ``behind_150`` (|az| > 150 deg): the numbers the docstring quotes, computed."""
    g = torch.Generator().manual_seed(seed)
    az = sample_views(g, n, views)[:, 0].abs().rad2deg()
    return {"front": float((az < 45).float().mean()), "side": float(((az >= 45) & (az <= 135)).float().mean()),
            "back": float((az > 135).float().mean()), "behind_150": float((az > 150).float().mean())}

