"""CSM's networks, written here without torchvision.

The smoke and medium presets train everything from scratch. The full preset's
camera encoder is CSM's ImageNet ResNet-18 (``camera_encoder="resnet18"``, from
:mod:`csmlab.nets`; CSM's ``icn_net.py`` feeds its camera predictor from
``ResNetConv``, torchvision's pretrained ``resnet18`` up to layer4, while its
U-Net starts from scratch, as here).

- :class:`UNet` maps an image to a 3-vector per pixel (normalised onto the unit
  sphere, then converted to sphere UV and looked up on the template) and a mask logit.
- :class:`CameraHead` predicts K scaled-orthographic camera hypotheses (s, q, t)
  with a probability each. Hypothesis k starts at a fixed base rotation whose
  azimuth is 360 k / K degrees, so at initialisation the hypotheses cover every
  side of the object and training only has to refine them.
- :class:`CSMNet` puts them together with the :class:`TemplateUV` lookup.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from csmlab.geometry.uvmap import TemplateUV

# The U-Net and the camera head moved to csmlab.nets (shared with ACSM); their names stay importable here.
from csmlab.nets.camera_head import (  # noqa: F401
    CAMERA_ENCODERS,
    CameraHead,
    ResNet18Trunk,
    _axis_quaternion,
    azel_to_quaternion,
    base_quaternions,
    mirror_quaternion,
)
from csmlab.nets.unet import ConvBlock, UNet, _groups, _norm, surface_map  # noqa: F401


class CSMNet(nn.Module):
    """The CSM model: the U-Net surface map, the camera head and the template UV table.

    ``forward(img)`` returns a dict with ``sphere`` [B,3,H,W] (unit vectors), ``uv`` [B,2,H,W],
    ``points`` [B,3,H,W] (template points), ``mask_logit`` [B,1,H,W] and the camera
    hypotheses from :class:`CameraHead` (``scale``, ``quat``, ``trans``, ``logits``, ``prob``).
    """

    def __init__(self, template_uv: TemplateUV, n_hypotheses: int = 8, unet_base: int = 16, unet_depth: int = 4,
                 cam_base: int = 16, cam_down: int = 4, init_scale: float = 0.7, elevation_deg: float = 0.0,
                 max_elevation_deg: float = 40.0, max_roll_deg: float = 20.0, squash: bool = True,
                 norm: str = "group", coords: bool = False, stem_stride: int = 1, camera_encoder: str = "convs"):
        super().__init__()
        self.squash = squash
        if not isinstance(template_uv, TemplateUV):
            raise ValueError(f"template_uv must be a TemplateUV, got {type(template_uv).__name__}")
        self.template = template_uv
        self.unet = UNet(3, 4, unet_base, unet_depth, norm=norm, coords=coords, stem_stride=stem_stride)
        self.camera = CameraHead(n_hypotheses, cam_base, cam_down, init_scale, elevation_deg, max_elevation_deg,
                                 max_roll_deg, encoder=camera_encoder)

    @property
    def n_hypotheses(self) -> int:
        return self.camera.n

    def surface(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """Only the per-pixel outputs (no camera)."""
        if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"img must be a [B,3,H,W] tensor, got "
                             f"{list(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}")
        return surface_map(self.unet(img), self.template, self.squash)

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**self.surface(img), **self.camera(img)}
