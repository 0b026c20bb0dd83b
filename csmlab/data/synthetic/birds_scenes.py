"""Sampling bird scenes: the random parameters of every image (no rendering here).

A *scene* is everything random about one image: shape (deformation,
articulation), camera, light, appearance and background. :func:`sample_scenes`
draws them in blocks of ``BLOCK`` scenes, each block from its own generator
seeded by ``(seed, block)``, so scene i does not depend on how many scenes were
asked for, and does not depend on the resolution: the same seed at 64 and 128
pixels gives the same scenes.

Scene prior:

- camera: azimuth, elevation and roll (``csmlab.geometry.azel_to_matrix``) from the
  ``views`` prior of :mod:`.birds_priors` (``"full"``: azimuth uniform on the full
  circle, elevation uniform in [-30, 30] degrees, roll uniform in [-10, 10] degrees;
  ``"cub"``: mostly side and three-quarter views); scale uniform in [0.7, 0.9];
  translation uniform in [-0.1, 0.1]^2 (NDC);
- light: a direction in the camera frame towards the viewer's side
  (``normalize(lx, ly, 1)``, lx, ly uniform in [-1, 1]), ambient uniform in
  [0.35, 0.6] and diffuse = 1 - ambient;
- shape: truncated-normal deformation (:mod:`.birds_template`), joint angles from
  the ``articulation`` prior of :mod:`.birds_priors` (``"rest"``, ``"cub"``, ``"full"``);
- appearance and background: :mod:`.birds_texture`.

:func:`csmlab.data.synthetic.birds_render.render_scenes` turns scenes into images.
"""

from __future__ import annotations

import math

import torch

from csmlab.geometry import azel_to_matrix, matrix_to_quaternion

from .birds_priors import check_prior, sample_articulation, sample_views
from .birds_template import DEFORM_TRUNCATION, BirdCategory
from .birds_texture import sample_appearance, sample_background

BLOCK = 256
CAMERA_PRIOR = {"scale": (0.7, 0.9), "trans": 0.1}  # the view angles' priors are in .birds_priors
LIGHT_PRIOR = {"ambient": (0.35, 0.6)}


def _uniform(g, shape, low, high):
    return low + (high - low) * torch.rand(shape, generator=g)


def _truncated_normal(g, shape, bound: float) -> torch.Tensor:
    """Standard normal truncated to [-bound, bound], by the inverse CDF (no rejection loop)."""
    lo = torch.special.ndtr(torch.tensor(-bound, dtype=torch.float64))
    u = lo + (1 - 2 * lo) * torch.rand(shape, generator=g, dtype=torch.float64)
    return torch.special.ndtri(u).float()


def _sample_block(category: BirdCategory, n: int, g: torch.Generator, views: str, articulation: str,
                  prior_seed: int) -> dict:
    deform = _truncated_normal(g, (n, category.num_deform), DEFORM_TRUNCATION) * category.deform_prior_std
    # The "full" priors always draw from g, in a fixed order, so the rest of a scene (shape, framing,
    # light, appearance) is the same whichever priors are chosen; the other priors draw from their own
    # generators (seeded from prior_seed) and replace those draws.
    angles = sample_articulation(category, g, n, "full")
    view = sample_views(g, n, "full")
    if articulation != "full":
        angles = sample_articulation(category, torch.Generator().manual_seed(prior_seed), n, articulation)
    if views != "full":
        view = sample_views(torch.Generator().manual_seed(prior_seed + 1), n, views)
    articulation = angles
    az, el, roll = view.unbind(-1)
    scale = _uniform(g, (n,), *CAMERA_PRIOR["scale"])
    trans = _uniform(g, (n, 2), -CAMERA_PRIOR["trans"], CAMERA_PRIOR["trans"])
    light_xy = _uniform(g, (n, 2), -1.0, 1.0)
    ambient = _uniform(g, (n,), *LIGHT_PRIOR["ambient"])
    scene = {
        "deform": deform, "articulation": articulation,
        "viewpoint": torch.stack([az, el, roll], -1),
        "scale": scale, "quat": matrix_to_quaternion(azel_to_matrix(az, el, roll)), "trans": trans,
        "light_dir": torch.nn.functional.normalize(torch.cat([light_xy, torch.ones(n, 1)], -1), dim=-1),
        "ambient": ambient, "diffuse": 1 - ambient,
    }
    scene.update({f"app_{k}": v for k, v in sample_appearance(n, g).items()})
    scene.update({f"bg_{k}": v for k, v in sample_background(n, g).items()})
    return scene


def sample_scenes(category: BirdCategory, n: int, seed: int, views: str = "full", articulation: str = "full") -> dict:
    """n scenes (dict of tensors with first dimension n), deterministic in ``seed``.

    ``views`` and ``articulation`` name the priors of :mod:`.birds_priors`. Scene i
    shares its shape, framing, light and appearance across the priors; only its
    joint angles and view angles change.
    """
    check_prior(views, articulation)
    blocks = []
    for b in range(math.ceil(n / BLOCK)):
        block_seed = int(seed) * 1_000_003 + b
        g = torch.Generator().manual_seed(block_seed)
        blocks.append(_sample_block(category, BLOCK, g, views, articulation, prior_seed=block_seed + 500_000_000))
    return {k: torch.cat([blk[k] for blk in blocks])[:n] for k in blocks[0]}


def mirror_scenes(category: BirdCategory, scenes: dict) -> dict:
    """The scenes of the mirror images (x -> -x in the image): flipped parameters, mirrored camera.

    With M = diag(-1, 1, 1): the mirrored instance is M X (left and right parts
    swapped), and the camera (s, M R M, (-tx, ty)) images it as the mirrored
    picture; M R M has the quaternion (w, x, -y, -z). Appearance is symmetric.
    Backgrounds, lights and the roll-sign of the viewpoint are mirrored as well.
    """
    out = dict(scenes)
    out["deform"], out["articulation"] = category.flip_parameters(scenes["deform"], scenes["articulation"])
    out["quat"] = scenes["quat"] * torch.tensor([1.0, 1.0, -1.0, -1.0])
    out["trans"] = scenes["trans"] * torch.tensor([-1.0, 1.0])
    out["viewpoint"] = scenes["viewpoint"] * torch.tensor([-1.0, 1.0, -1.0])
    out["light_dir"] = scenes["light_dir"] * torch.tensor([-1.0, 1.0, 1.0])
    out["bg_angle"] = math.pi - scenes["bg_angle"]
    out["bg_noise"] = scenes["bg_noise"].flip(-1)
    return out
