"""ACSM: articulation-aware canonical surface maps (Kulkarni, Gupta, Fouhey, Tulsiani, CVPR 2020).

CSM's cycle (pixel -> template point -> projection -> pixel) closes through a template
with parts: each camera hypothesis also predicts a rotation about each part's joint and
a small translation, composed with the ancestors' along the part hierarchy.

- :mod:`.rig`       parts, hierarchy, fixed membership, recursive composition (``Rig``, ``bird_rig``)
- :mod:`.joints`    single-axis and quaternion rotations; the birds' joint angles; articulation error
- :mod:`.network`   CSM's U-Net, the camera hypotheses and the part-transform head (``ACSMNet``)
- :mod:`.losses`    articulated cycle and visibility, coverage, consistency, keypoints, translations
- :mod:`.fit`       batches, the objective (a dict of named weighted terms) and ``fit``
- :mod:`.evaluate`  transfer PCK/APK, surface, camera and articulation errors: ``evaluate``
- :mod:`.presets`   smoke / medium / full and the comparison variants
- :mod:`.pretrained` small float16 checkpoints
- :mod:`.full_scale` CUB and PASCAL quadrupeds: what the paper's runs need

Command line: ``python -m csmlab.methods.acsm --scale {smoke,medium} [--variant NAME]``.
Shared with CSM, one layer down: ``csmlab.geometry.uvmap`` (TemplateUV), ``csmlab.nets.unet``,
``csmlab.nets.camera_head``, ``csmlab.surface_losses`` and ``csmlab.metrics.surface_error``.
"""

from .evaluate import evaluate, predict
from .fit import ACSMObjective, build_model, fit, stack_dataset
from .network import ACSMNet, PartHead, load_csm_weights
from .presets import PAPER_PCK_PASCAL_WITH_KP, PRESETS, VARIANTS, get_config
from .rig import Rig, bird_rig, compose, pose_vertices

__all__ = ["Rig", "bird_rig", "compose", "pose_vertices", "ACSMNet", "PartHead", "load_csm_weights",
           "ACSMObjective", "build_model", "fit", "stack_dataset", "evaluate", "predict", "get_config", "PRESETS",
           "VARIANTS", "PAPER_PCK_PASCAL_WITH_KP"]
