"""KeypointNet (You et al., TPAMI): 3D keypoint knowledge projected to pixel-level 2D semantics.

Stages of the paper's Fig. 2, on the synthetic birds:

(a) shape from an image: the category template (baseline) or the true shape (oracle);
    notebook 03's reconstruction is not available here;
(b) viewpoint from the image: :mod:`.viewpoint` (24 azimuth / 12 elevation soft bins, KL);
(c) dense per-point embeddings from sparse 3D keypoints: :mod:`.networks` (PointNet with the
    feature transform, DGCNN; saliency + embedding heads), :mod:`.losses` (online contrastive
    loss), benchmarked by :mod:`.metrics3d` (geodesic mIoU / mAP / PCK, as KeypointNet's code);
(d) projection with a silhouette-refined camera and a 3D depth test: :mod:`.projection`.

Entry points: ``fit(cfg, data) -> pipeline, histories`` and ``evaluate(pipeline, data)``;
``python -m csmlab.methods.keypointnet --scale medium`` trains and writes the checkpoint.
"""

from .evaluation import evaluate, evaluate_2d, evaluate_3d
from .losses import online_contrastive_loss
from .networks import DGCNN, KeypointModel, PointNet
from .presets import PRESETS, get_config
from .training import KeypointPipeline, fit, fit_keypoint_model, fit_viewpoint, make_data

__all__ = ["evaluate", "evaluate_2d", "evaluate_3d", "KeypointPipeline", "fit", "fit_keypoint_model",
           "fit_viewpoint", "make_data", "online_contrastive_loss", "DGCNN", "KeypointModel", "PointNet",
           "PRESETS", "get_config"]
