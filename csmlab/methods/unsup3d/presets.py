"""Hyper-parameters of Unsup3D at each scale, the ablation variants and the paper's numbers.

``full`` is the paper's synface recipe (``experiments/train_synface.yml`` and the model's
defaults): 64x64, depth/albedo nets nf 64 / zdim 256, light/view nets nf 32, confidence net
nf 64 / zdim 128, batch 64, 30 epochs, Adam 1e-4 with weight decay 5e-4, lam_flip 0.5,
lam_perc 1 with VGG16 relu3_3, rotations +-60 degrees, xy translations +-0.1, no z translation.
``smoke`` (the notebook, a minute) and ``medium`` (CPU, ~45 min) train on the synthetic faces at
32x32 with narrower nets, a larger learning rate and **no perceptual term** (no pretrained VGG16
on CPU here; the paper's ablation covers that row). The synthetic faces move in depth too
(+-0.05), so those presets keep the model's default z translation range of 0.1. They also switch
on the paper's depth smoothness term (``lam_depth_sm``, off for synface, 0.1 for their syncar) at
:data:`DEPTH_SMOOTHNESS_32PX`: without it the depth falls into a per-pixel trap (see there).
``medium`` also bounds the diffuse light from below (the authors' ``min_diff_light``, see
:data:`MIN_DIFFUSE_32PX`). Every scale mirrors each training image with probability 1/2 (``random_flip``), as
the authors' data loaders do (the medium runs before and after it are compared in ``notebooks/assets/README.md``).
"""

from __future__ import annotations

from csmlab.config import preset

_COMMON = dict(
    data="synthetic", seed=0, device=None, data_seed=0, test_seed=100_000, n_test=200,
    # model (MODEL_KEYS of .model)
    min_depth=0.9, max_depth=1.1, xyz_rotation_range=60.0, xy_translation_range=0.1, z_translation_range=0.1,
    use_conf=True, use_light=True, flip_depth=True, flip_albedo=True,
    min_amb_light=0.0, max_amb_light=1.0, min_diff_light=0.0, max_diff_light=1.0,   # the authors' defaults
    border_depth=None,       # the authors' default, 0.7 max_depth + 0.3 min_depth
    # objective
    lam_flip=0.5, lam_perc=1.0, perceptual=None, lam_depth_sm=0.0,
    # optimisation
    lr=1e-4, weight_decay=5e-4, grad_clip=None, epochs=None, eval_every=0, train_asymmetric=True,
    random_flip=True,        # the authors' loaders mirror every training image with probability 1/2
    supervised_iters=None,   # the supervised baseline's budget (None: the same as Unsup3D's)
)

# The paper's optional depth smoothness (their syncar recipe uses 0.1), switched on for the 32^2 presets.
# Without it the depth net falls into a per-pixel trap on the synthetic faces: at 32^2 one pixel is
# 0.0055 wide at depth 1, so a depth step of a few thousandths tilts a normal by 45 degrees, and the
# photometric gradient (shading and warp) drives the depth to saturated bumps and plateaus. Even
# with the ground-truth light and view given, SIDE then grows to ~3x the constant-depth baseline;
# with this weight it falls below it (tests/test_unsup3d_training.py). 0.1 is too weak here.
DEPTH_SMOOTHNESS_32PX = 2.0

# A lower bound on the diffuse light (the authors' ``min_diff_light``; their syncar recipe uses 0.5), medium only.
# Left free, the light net turns the diffuse term down to a small fraction of the faces' within a few hundred
# iterations (``diffuse_pred`` vs ``diffuse_true`` in the diagnostics' probes): the albedo then explains the
# shading, the gradients on the light direction and the normals shrink by the same factor, and the depth stays
# flat. 0.25 sits below the faces' smallest diffuse strength ((1 - 0.6) * 0.7 = 0.28, see the faces' prior).
# With it the test metrics are best near 1500 iterations and drift up after (notebooks/assets/README.md).
MIN_DIFFUSE_32PX = 0.25

PRESETS: dict[str, dict] = {
    # About a minute on 2 cores: 32^2 faces, narrow nets.
    "smoke": dict(_COMMON, resolution=32, nf=8, zdim=32, nf_encoder=8, nf_conf=8, zdim_conf=16,
                  n_train=600, n_test=64, batch_size=8, iters=60, lr=1e-3, lam_depth_sm=DEPTH_SMOOTHNESS_32PX),
    # Under 45 CPU minutes: 32^2 faces (the grid mesh has 1922 triangles per image; 64^2 has 7938).
    "medium": dict(_COMMON, resolution=32, nf=16, zdim=64, nf_encoder=16, nf_conf=16, zdim_conf=32,
                   n_train=6000, n_test=200, batch_size=16, iters=1500, lr=5e-4, eval_every=250,
                   lam_depth_sm=DEPTH_SMOOTHNESS_32PX, min_diff_light=MIN_DIFFUSE_32PX),
    # The paper's synface recipe (GPU, the synface download, VGG16 from csmlab.nets).
    "full": dict(_COMMON, data="synface", resolution=64, nf=64, zdim=256, nf_encoder=32, nf_conf=64, zdim_conf=128,
                 n_train=None, n_test=None, batch_size=64, iters=None, epochs=30, lr=1e-4, z_translation_range=0.0,
                 perceptual="vgg16"),
}

# Ablations (the paper's Table 3 and the confidence / perceptual rows): overrides of the chosen scale.
VARIANTS: dict[str, dict] = {
    "full": {},
    "no_albedo_flip": {"flip_albedo": False},
    "no_depth_flip": {"flip_depth": False},
    "no_light": {"use_light": False},
    "no_conf": {"use_conf": False},
    "no_perceptual": {"perceptual": None},
}

# Published synface numbers (Wu et al. 2020, Table 2: SIDE x 10^-2, MAD in degrees).
PAPER_TABLE2 = {
    "supervised": (0.410, 10.78), "const_null_depth": (2.723, 43.34), "avg_gt_depth": (1.990, 23.26),
    "ours": (0.793, 16.51),
}
# Table 3 (the ablations) is quoted qualitatively only: removing the albedo flip or the depth flip
# makes SIDE and MAD worse than the full model.


def get_config(scale: str = "smoke", variant: str = "full", **overrides) -> dict:
    """The configuration of a scale and variant, with keyword overrides (unknown keys raise)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    cfg = preset(PRESETS, scale, **{**VARIANTS[variant], **overrides})
    cfg["variant"] = variant
    return cfg
