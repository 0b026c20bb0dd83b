"""Hyper-parameters of CSM at each scale, and the ablation variants.

``full`` is the paper's recipe (CUB-200-2011 with the CMR annotations, 256^2,
batch 7, 200 epochs, Adam 1e-4, 8 hypotheses, 2000 pose warm-up iterations).
``smoke`` (notebook, a couple of CPU minutes) and ``medium`` (CPU, <= 45 min)
train on the synthetic birds with masks only. Weights are those of the
*weighted* loss terms; the entropy weight 0.05 is the paper's.

Backbones: smoke and medium train every network from scratch (no download, no
network). ``full`` uses CSM's camera encoder, an ImageNet ResNet-18
(``camera_encoder="resnet18"``, ``encoder_weights="imagenet"``: torchvision's
``resnet18-f37072fd.pth`` through ``csmlab.nets.pretrained``; fetch it once with
``python -m csmlab.nets fetch resnet18``).
"""

from __future__ import annotations

from csmlab.config import preset

_COMMON = dict(
    # rung: the benchmark rung (csmlab.data.synthetic.benchmark_split) whose priors the synthetic training
    # birds follow and on whose split the model is evaluated; None: the full priors and a held-out seed
    data="synthetic", category="birds", seed=0, device=None, rung="B",
    # loss weights (of the weighted terms); entropy 0.05 is the paper's
    w_cycle=1.0, w_visibility=1.0, w_mask=1.0, w_mask_pred=0.2, w_entropy=0.05, w_diversity=0.001,
    flip=True, pose_supervision=False, uv_supervision=False, mask_scales=(1,), render_resolution=None,
    # template table and networks
    uv_grid=(64, 128), unet_depth=4, cam_down=4, squash=True, norm="group", coords=False, stem_stride=1,
    # camera encoder: "convs" (small, from scratch) or "resnet18"; encoder_weights None (scratch) or "imagenet"
    camera_encoder="convs", encoder_weights=None,
    # camera hypotheses: start elevation, bounds, initial scale (None: from the mask areas)
    elevation_deg=0.0, max_elevation_deg=40.0, max_roll_deg=20.0, init_scale=None,
    # pose warm-up weighting: 0 = every hypothesis 1/K (CSM); > 0 = softmin of the mask losses
    warmup_temperature=0.003,
    # optimisation and evaluation
    lr_schedule="constant", grad_clip=5.0, n_pairs=1000, threshold=0.1, eval_every=0,
    # data path: the template ("category": the synthetic one; "cub_sfm": CMR's SfM mean bird, template.py; its
    # template_pose "rest" or "folded": wings folded, rung B's typical bird)
    # and DataLoader workers for lazy real-data readers
    template="category", template_pose="rest", loader_workers=0,
)

PRESETS: dict[str, dict] = {
    # A couple of CPU minutes: 32^2 birds, a small U-Net, 4 hypotheses.
    "smoke": dict(_COMMON, resolution=32, n_train=1000, n_val=100, iters=300, epochs=None, batch_size=12, lr=2e-3,
                  n_hypotheses=4, pose_warmup_iters=100, unet_base=8, cam_base=8, n_pairs=300, w_mask=10.0,
                  lr_schedule="cosine"),
    # ~45 CPU minutes: 64^2 birds; the U-Net's stride-2 stem computes at 32^2 and upsamples its output.
    "medium": dict(_COMMON, resolution=64, n_train=4000, n_val=200, iters=13000, epochs=None, batch_size=12, lr=2e-3,
                   n_hypotheses=8, pose_warmup_iters=300, unet_base=16, cam_base=16, eval_every=1000, n_pairs=1000,
                   w_mask=10.0, stem_stride=2, render_resolution=32, lr_schedule="cosine"),
    # The paper's recipe: CUB-200-2011 (CMR annotations), 256^2, batch 7, 200 epochs, Adam 1e-4, 8 hypotheses,
    # 2000 pose warm-up iterations with every hypothesis weighted equally.
    "full": dict(_COMMON, data="cub", rung=None, resolution=256, n_train=None, n_val=None, iters=None, epochs=200,
                 batch_size=7, lr=1e-4, n_hypotheses=8, pose_warmup_iters=2000, warmup_temperature=0.0,
                 unet_base=32, cam_base=32, unet_depth=5, cam_down=5, uv_grid=(256, 512), eval_every=5000,
                 n_pairs=10000, camera_encoder="resnet18", encoder_weights="imagenet", template="cub_sfm",
                 loader_workers=4, val_split="val"),
}

# The ablation table: each variant is a set of overrides of the chosen scale.
VARIANTS: dict[str, dict] = {
    "csm": {},
    "no_cycle": {"w_cycle": 0.0},
    "no_visibility": {"w_visibility": 0.0},
    "one_hypothesis": {"n_hypotheses": 1, "w_entropy": 0.0, "w_diversity": 0.0},
    "with_pose": {"pose_supervision": True, "pose_warmup_iters": 0},
    # Not CSM: a reference. The same U-Net fitted to the true sphere UV (keypoint-free, but full dense
    # supervision that real images never have) shows what the network itself reaches in the same budget.
    "supervised_uv": {"uv_supervision": True, "pose_warmup_iters": 0, "n_hypotheses": 1, "w_entropy": 0.0,
                      "w_diversity": 0.0},
}

# Published numbers for the full-scale comparison: keypoint-transfer APK@0.1 (%) on CUB-200-2011, as
# entered when this preset was written from the keypoint-transfer comparison of the ACSM paper (Kulkarni et
# al., CVPR 2020, which reports CSM and CSM w/ pose on CUB). Not re-checked against the PDF in the session
# that added this note (no network); check the table before quoting it.
PAPER_APK = {"csm": 23.1, "with_pose": 31.6}


def get_config(scale: str = "smoke", variant: str = "csm", **overrides) -> dict:
    """The configuration dict of a scale and variant, with keyword overrides (unknown keys raise)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    cfg = preset(PRESETS, scale, **{**VARIANTS[variant], **overrides})
    cfg["variant"] = variant
    return cfg
