"""Backbones written here (no torchvision, no timm) that load the official pretrained checkpoints.

One layer above ``csmlab.data`` (whose download registry fetches the files) and
below ``csmlab.methods``. Every network keeps the official parameter names and
shapes, so the official files load with ``strict=True``:

- :mod:`.resnet`   ResNet-18 / ResNet-50 in torchvision's layout; ``forward`` gives a stride 4-32 pyramid
- :mod:`.vgg`      VGG16 ``features`` up to relu3_3 in torchvision's layout, ImageNet normalisation inside
- :mod:`.vit`      DINOv2 ViT-S/14 and ViT-B/14 in the official layout (518 px position embeddings,
                   resized bicubically as DINOv2 does), returning pre-norm and normed tokens
- :mod:`.weights`  the files (URL, digest prefix, licence), ``pretrained(name)``, strict loading
- :mod:`.imagenet` ``imagenet_normalize``: the input convention of all of them

Names the full-scale recipes use (``pretrained(NAME)``):

- ``"resnet18"``       CSM / ACSM camera encoder (``csmlab.methods.csm`` preset key ``camera_encoder``)
- ``"vgg16"``          Unsup3D's perceptual loss: ``pretrained("vgg16")(img)["relu3_3"]``, img RGB in [0, 1]
                       (``VGG16Features(value_range=(-1, 1))`` for [-1, 1] images)
- ``"dinov2_vitb14"``  Spherical Maps' frozen features: ``model.patch_features(imagenet_normalize(img))``

The smoke and medium presets of every method train from scratch: no network is needed for the course.
Command line: ``python -m csmlab.nets list | fetch NAME | check NAME``.
"""

from .imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_normalize
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet50
from .vgg import VGG16Features
from .vit import DinoViT, dinov2_vitb14, dinov2_vits14
from .weights import (
                      NETS,
                      WEIGHT_FILES,
                      NetSpec,
                      WeightsNotFound,
                      check,
                      fetch_weights,
                      load_official,
                      missing_weights,
                      pretrained,
                      read_state_dict,
                      status,
                      weights_path,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "imagenet_normalize", "BasicBlock", "Bottleneck", "ResNet", "resnet18",
           "resnet50", "VGG16Features", "DinoViT", "dinov2_vits14", "dinov2_vitb14", "NETS", "WEIGHT_FILES",
           "NetSpec", "WeightsNotFound", "missing_weights", "pretrained", "fetch_weights", "load_official",
           "read_state_dict", "check", "status", "weights_path"]
