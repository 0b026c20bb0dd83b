"""Hyper-parameters of end-to-end To The Point at each scale, and the ablation variants.

``full`` is the README's CUB recipe (``main.py`` flags): ``--mask_loss_wt 2 --tex_loss_wt 1
--vis_loss_wt 1 --rigid_wt 3 --arap_reg_wt 3 --arap_basis_loss_wt 0.1 --def_loss_wt 5
--equiv_loss_wt 1 --kp_loss_wt 0 --basis_k 16 --def_steps 4 --batch_size 8 --tex_dt_loss_wt 1
--bdt_reg_wt 3``, at 256 px with an ImageNet ResNet-18. The two distance terms (``mask_dt``,
``boundary`` in :mod:`.losses`) are what pull the regressed points onto the silhouette;
without them the first medium run never moved its cameras. ``--flip_train`` (``flip_train``,
``w_flip_camera`` = ``--equiv_cam_loss_wt``'s default 0.1) is in the recipe too, so ``full`` has it; it
doubles the cost of a batch, so smoke and medium leave it off (``--set flip_train=true`` switches it on).
``rung``: the benchmark rung whose view and articulation priors the synthetic training set is drawn
from (``rung_priors``), "B" -- the rung the medium targets are scored on, as CSM's presets do. Before
this key existed TTP trained on the full circle of views and full articulation (rung C's priors) and
was scored on rung B.

``vis_resolution``: the visibility target (the vertices of the faces that own a pixel) is rasterised
at 128 px, not at the 32 px of the mask render: at 32 px only about half of the truly visible vertices
of the 642-vertex bird own a pixel, so the regressed visibilities -- the camera solve's weights
(``--weighted_camera``) -- learned to switch off half of the good correspondences. The authors
render everything at 256 px.

``teacher`` (None, or the path of a CSM pretrained file such as ``notebooks/assets/csm_medium.pt``):
**our change, not the authors'** (:mod:`.teacher`): before the TTP objective, the correspondence
regressor is fitted for ``teacher_iters`` steps to the per-vertex correspondences that CSM's trained
surface map gives on the training images (``surface_map_correspondences``); TTP's solve-in-the-loop
training then refines that map. The authors start from an ImageNet ResNet-18 and a zero-initialised
regressor, which a from-scratch CNN on CPU cannot stand in for.

**The regulariser weights at smoke and medium are the README's, moved to our mesh's size** (our
change; ``full`` keeps the README's). Every regulariser is a squared length, the mask and texture terms
are not, so the README's balance holds only on the authors' mesh. Their ``meshes/bird.obj`` has an RMS
radius of 0.29 and a mean edge of 0.044, halved by ``--tex_subdivision 1`` before the losses; our
642-vertex bird has 0.43 and 0.085. ``deformation`` (a squared displacement) scales with the radius
squared, x 0.47: ``w_deformation`` 5 -> 2.3; ARAP (squared edge residuals, cotangent weights are
scale-free) with the edge squared, x 0.069: ``w_arap`` 3 -> 0.2, ``w_arap_basis`` 0.1 -> 0.007. With
the README's weights on our mesh the learned basis stayed at zero even when the true correspondences were
given: training only B and the ridge weight through the ridge solve, with the true projected vertices as
the correspondences, the mask IoU on held-out training birds went from 0.66 to 0.74 with them and to
0.82 with the moved weights (``/work/logs/i11-ttp3/oracle.py``, a diagnostic, not shipped).
``basis_lr`` (our change, None: ``lr``): Adam's learning rate for B and the ridge weight. The authors
train everything at 1e-4 for ~10^5 iterations; at 1e-4 and a few thousand iterations B barely leaves
its U(0, 0.01) start.
``mask_loss``: "l1", the authors' ``L1Loss`` (this course used "mse" before).

``solver_loss`` (default "l2", the authors' quadratic reprojection error): "geman_mcclure" solves the camera
and c in the loop with a robust cost (:mod:`.robust`, scale ``SolverConfig.robust_scale`` 0.05 NDC) -- **our
change**. On the articulated rungs the linear model ``T + B c`` cannot express the folded wings, and with the
*true* points the quadratic solve's median camera error on rung B is 17 degrees against 3 with this one
(``benchmarks/ttp_camera_diagnostics.py``); in 400-iteration runs (``benchmarks/ttp_short_runs.py``) training
moved the cameras towards the truth with it and away with the quadratic one.
``texture_flip`` (default False, so that older checkpoints keep their meaning): the authors' second texture half
(``texture_pred_flip`` in ``main.py``, always on there): the detached shape under the detached mirror camera,
textured from the image, against the mirrored image (:func:`.losses.texture_flip_loss`).
``teacher_flip`` and ``w_flip_points`` (our symmetry terms, off): mirrored images in the teacher stage, and the
points of a mirrored image tied to the mirrored points; neither helped beyond the run-to-run noise at 400 iterations.

(``--triangle_reg_wt`` and ``--tri_basis_wt``, smoothness terms that the ARAP notebook does not study,
are left out.)

``smoke`` (the notebook, a minute of CPU) and ``medium`` (CPU, about 45 minutes of a quiet
core) keep those weights and change only what the CPU forces: 32 / 64 px synthetic birds,
a small CNN from scratch, K = 4 / 8 modes, a cheaper solve (one or two alternations of
L-BFGS and ridge, a few Newton steps, instead of 4 x 100 L-BFGS iterations), the masks and
textures rendered at 32 px, and a higher learning rate (from scratch).
"""

from __future__ import annotations

from csmlab.config import preset

_WEIGHTS = dict(w_mask=2.0, w_texture=1.0, w_visibility=1.0, w_cycle=3.0, w_arap=3.0, w_arap_basis=0.1,
                w_deformation=5.0, w_equivariance=1.0, w_keypoints=0.0, w_mask_dt=1.0, w_boundary=3.0,
                w_flip_camera=0.1, w_flip_points=0.0)

_COMMON = dict(_WEIGHTS, data="synthetic", category="birds", seed=0, device=None, regulariser="arap",
               gradient="implicit", oracle_basis=False, equiv_angle_deg=15.0, equiv_shift=0.1,
               init_view=(90.0, 0.0, 0.7), grad_clip=5.0, n_pairs=1000, threshold=0.1, max_minutes=None,
               solver_loss="l2", flip_train=False, vis_resolution=128, rung="B", teacher=None, teacher_iters=1000,
               teacher_batch=32, teacher_lr=1e-3, teacher_flip=False, texture_flip=False, mask_loss="l1", basis_lr=None,
               dt_resolution=None, encoder="convs", encoder_weights=None)
# The README's regulariser weights moved to our mesh's size (module docstring); smoke and medium
_SCALED_REG = dict(w_deformation=2.3, w_arap=0.2, w_arap_basis=0.007)

PRESETS: dict[str, dict] = {
    "smoke": dict(_COMMON, **_SCALED_REG, basis_lr=1e-2,
                  resolution=32, render_resolution=32, n_train=100, n_test=32, iters=12, batch_size=6,
                  lr=1e-3, n_basis=4, width=8, feat_dim=128, def_steps=1, lbfgs_iters=5, polish_steps=3,
                  n_pairs=300),
    # 2000 iterations. One took 2.0 s of one thread when profiled at load 9 on 2 cores, so ~45 quiet minutes
    # is an estimate, not a measurement. On a loaded machine pass --max-minutes (the wall-clock cap of
    # fit) so the run ends in time; the checkpoint and JSON record how many iterations it reached.
    "medium": dict(_COMMON, **_SCALED_REG, basis_lr=1e-2,
                   resolution=64, render_resolution=32, n_train=2000, n_test=200, iters=2000,
                   batch_size=8, lr=1e-3, n_basis=8, width=16, feat_dim=128, def_steps=1, lbfgs_iters=6,
                   polish_steps=3),
    # The README's CUB recipe (GPU, real data). Epochs: the authors' released snapshots (unverified here).
    "full": dict(_COMMON, data="cub", resolution=256, render_resolution=256, n_train=None, n_test=None,
                 iters=None, epochs=200, batch_size=8, lr=1e-4, n_basis=16, width=64, feat_dim=200, def_steps=4,
                 lbfgs_iters=100, polish_steps=10, flip_train=True, vis_resolution=256,
                 rung=None, encoder="resnet18", encoder_weights="imagenet"),
}

# The ablation table: each variant is a set of overrides of the chosen scale.
VARIANTS: dict[str, dict] = {
    "ttp": {},
    "no_arap": {"w_arap": 0.0, "w_arap_basis": 0.0, "regulariser": "none"},
    "laplacian": {"regulariser": "laplacian"},
    "oracle_basis": {"oracle_basis": True},
    "no_texture": {"w_texture": 0.0},
    "no_equivariance": {"w_equivariance": 0.0},
    "unrolled": {"gradient": "unrolled"},
    "no_distance": {"w_mask_dt": 0.0, "w_boundary": 0.0},   # without TTP's tex_dt and bdt terms
    "keypoints": {"w_keypoints": 30.0},   # main.py's default kp_loss_wt; not the README's recipe
}


def get_config(scale: str = "smoke", variant: str = "ttp", **overrides) -> dict:
    """The configuration dict of a scale and variant, with keyword overrides (unknown keys raise)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    cfg = preset(PRESETS, scale, **{**VARIANTS[variant], **overrides})
    cfg["variant"] = variant
    return cfg
