"""Hyper-parameters of the KeypointNet pipeline at each scale.

``full`` is the papers' recipe: KeypointNet's benchmark (2048 points, batch 8 for
saliency, batch 32 and 100 epochs of Adam 1e-3 for SemanticTransfer's embedding,
margin 1.0, 256-d embeddings, official PointNet/DGCNN widths), the viewpoint network
on ShapeNet renders, 20-30 refinement steps; it needs the real data and a GPU.
``smoke`` (the notebook, CPU minutes) and ``medium`` (CPU, about 45 minutes)
train from scratch on the synthetic birds at reduced widths, and say so.
"""

from __future__ import annotations

from csmlab.config import preset

_COMMON = dict(
    category="birds", seed=0, num_points=2048, emb_dim=256, margin=1.0,
    w_contrastive=1.0, w_saliency=1.0, w_feature_transform=0.001,
    noise_sigma=0.004, noise_clip=0.01, lr_3d=1e-3, lr_view=1e-3,
    backbones=("pointnet", "dgcnn"), knn=20, geodesic_k=20, saliency_threshold=0.1,
    init_scale=0.8, refine_lr=0.02, refine_resolution=None, view_downsample=1, headline_backbone="pointnet",
    n_pairs=1000, alpha=0.1,
)

PRESETS: dict[str, dict] = {
    "smoke": dict(_COMMON, num_points=512, n_clouds_train=32, n_clouds_test=6, width=0.125, dgcnn_width=0.25,
                  iters_3d=40, dgcnn_iters=6, dgcnn_points=256, batch_3d=4, resolution=32, n_images_train=400,
                  n_images_test=16, view_base=8, iters_view=60, batch_view=24, refine_steps=10, n_pairs=100),
    "medium": dict(_COMMON, num_points=1024, n_clouds_train=500, n_clouds_test=50, width=0.125, dgcnn_width=0.25,
                   iters_3d=600, dgcnn_iters=600, dgcnn_points=512, batch_3d=8, resolution=64, n_images_train=4000,
                   n_images_test=None, view_base=16, view_downsample=2, iters_view=6000, batch_view=32,
                   refine_steps=30, refine_resolution=32,
                   # projected backbone: the width-0.125 PointNet of this preset learned less than DGCNN
                   headline_backbone="dgcnn"),
    "full": dict(_COMMON, n_clouds_train=None, n_clouds_test=None, width=1.0, dgcnn_width=1.0, iters_3d=None,
                 epochs_3d=100, dgcnn_iters=None, dgcnn_points=2048, batch_3d=32, resolution=480,
                 n_images_train=None, n_images_test=None, view_base=64, iters_view=None, batch_view=64,
                 refine_steps=30, data="keypointnet+shapenet"),
}

# Table 4 / Table 6 of You et al. (TPAMI), PCK at alpha_img / alpha_bbox = 0.1.
PAPER_TABLE4 = {"Pix3D chair": (0.560, 0.323), "PF-PASCAL car": (0.574, 0.349), "PF-PASCAL chair": (0.444, 0.342),
                "PF-PASCAL aeroplane": (0.440, 0.194), "SPair-71k chair": (0.565, 0.346),
                "SPair-71k car": (0.500, 0.328), "SPair-71k aeroplane": (0.390, 0.182),
                "CSM, Pix3D chair": (0.152, 0.152), "CSM, PF-PASCAL car": (0.339, 0.339)}
PAPER_TABLE6 = {"Ours": {"Pix3D chair": (0.560, 0.323), "ShapeNet chair": (0.513, 0.243)},
                "w/ g.t. 3D models": {"Pix3D chair": (0.571, 0.363), "ShapeNet chair": (0.521, 0.263)},
                "w/ g.t. viewpoints": {"Pix3D chair": (0.606, 0.351), "ShapeNet chair": (0.545, 0.262)}}


def get_config(scale: str = "smoke", **overrides) -> dict:
    """The preset of ``scale`` with keyword overrides (unknown keys raise ValueError)."""
    return preset(PRESETS, scale, **overrides)
