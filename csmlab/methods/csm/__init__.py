"""CSM: canonical surface maps learned by geometric cycle consistency (Kulkarni, Gupta, Tulsiani, ICCV 2019).

Every foreground pixel is mapped to a point on a category template (through a
per-pixel sphere UV), without keypoints: pixel -> template point -> projection
by the predicted camera must come back to the pixel.

- :mod:`.uvmap`      the template's UV parametrisation (``TemplateUV``: UV <-> 3D point, face + barycentrics)
- :mod:`.network`    U-Net surface map and the multi-hypothesis camera head (``CSMNet``)
- :mod:`.losses`     cycle, visibility, mask, hypothesis regularisers
- :mod:`.fit`        the objective and ``fit(cfg, data)``
- :mod:`.evaluate`   keypoint transfer (PCK, APK) and surface error: ``evaluate(model, data)``
- :mod:`.presets`    smoke / medium / full hyper-parameters and the ablation variants
- :mod:`.pretrained` small float16 checkpoints (``save_pretrained`` / ``load_pretrained``)
- :mod:`.experiments` data splits, one run per variant, the ablation table

Command line: ``python -m csmlab.methods.csm --scale {smoke,medium,full}``.
"""

from .evaluation import evaluate, keypoint_transfer, predict, sample_pairs, template_points_under, transfer_keypoints
from .training import CSMObjective, build_model, fit, stack_samples
from .network import CSMNet, UNet
from .presets import PAPER_APK, PRESETS, VARIANTS, get_config
from .pretrained import load_pretrained, save_pretrained
from .uvmap import TemplateUV

__all__ = ["TemplateUV", "CSMNet", "UNet", "CSMObjective", "fit", "build_model", "stack_samples", "evaluate",
           "predict", "keypoint_transfer", "transfer_keypoints", "sample_pairs", "template_points_under",
           "get_config", "PRESETS", "VARIANTS", "PAPER_APK", "save_pretrained", "load_pretrained"]
