"""Spherical Maps (Mariotti, Mac Aodha, Bilen, CVPR 2024): viewpoint-guided pixel -> sphere maps on frozen features.

- ``features``: the frozen feature sources (a label-free CNN; a ground-truth stand-in with the
  left/right symmetry folded in) and the token grid;
- ``model``: the sphere mapper and the spherical prototype (the authors' heads);
- ``losses``: prototype, orientation, relative distance and viewpoint terms, the paper's weights;
- ``fit`` / ``evaluate``: training, and raw / sphere / fused matching with PCK, KAP and left/right confusion;
- ``experiment.run``: one synthetic experiment end to end; ``pretrained``: the committed checkpoints;
- ``full``: the paper's recipe (SPair-71k, DINOv2 ViT-B/14), GPU and data only.
"""

from .evaluate import evaluate, score_pairs
from .features import FeatureNet, standin_features, token_mask, train_feature_net
from .fit import azimuth_bins, fit, prepare, sphere_tokens
from .losses import (
                     PAPER_WEIGHTS,
                     orientation_loss,
                     prototype_loss,
                     relative_distance_loss,
                     spherical_losses,
                     viewpoint_loss,
)
from .model import SphericalMapModel
from .presets import PRESETS, spherical_preset

__all__ = ["PAPER_WEIGHTS", "PRESETS", "FeatureNet", "SphericalMapModel", "azimuth_bins", "evaluate", "fit",
           "orientation_loss", "prepare", "prototype_loss", "relative_distance_loss", "score_pairs", "sphere_tokens",
           "spherical_losses", "spherical_preset", "standin_features", "token_mask", "train_feature_net",
           "viewpoint_loss"]
