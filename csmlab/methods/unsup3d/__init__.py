"""Unsup3D: unsupervised learning of probably symmetric deformable 3D objects (Wu, Rupprecht, Vedaldi, CVPR 2020).

An autoencoder factors an image into canonical depth, albedo, light and view, renders it
back, and also renders it with the depth and albedo mirrored: symmetry gives a second,
virtual view. A confidence map says where the symmetry does not hold.

- :mod:`.networks`  the encoder, the encoder-decoder and the confidence net (no torchvision)
- :mod:`.renderer`  depth -> grid mesh -> ``csmlab.dr`` view depth -> shading -> inverse warp
- :mod:`.model`     ``Unsup3D``: the five networks, rescalers and both reconstructions
- :mod:`.losses`    confidence-weighted photometric / perceptual terms and their flipped twins
- :mod:`.fit`       ``fit(cfg, data)``, the supervised baseline, the synthetic-face splits
- :mod:`.evaluate`  SIDE / MAD with the paper's masks, the constant and average-depth baselines
- :mod:`.presets`   smoke / medium / full and the ablation variants

Command line: ``python -m csmlab.methods.unsup3d --scale {smoke,medium,full}``.
"""

from .evaluate import average_depth_baseline, constant_depth_baseline, depth_metrics, evaluate
from .fit import SupervisedDepth, evaluate_supervised, fit, fit_supervised, load_faces, select
from .losses import confidence_l1, photometric_loss, unsup3d_losses
from .model import Unsup3D
from .presets import PAPER_TABLE2, PRESETS, VARIANTS, get_config
from .renderer import normals_from_depth, reconstruct, view_depth

__all__ = ["Unsup3D", "fit", "fit_supervised", "evaluate", "evaluate_supervised", "SupervisedDepth", "load_faces",
           "select", "depth_metrics", "constant_depth_baseline", "average_depth_baseline", "confidence_l1",
           "photometric_loss", "unsup3d_losses", "normals_from_depth", "reconstruct", "view_depth", "get_config",
           "PRESETS", "VARIANTS", "PAPER_TABLE2"]
