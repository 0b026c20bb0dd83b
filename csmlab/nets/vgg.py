"""VGG16 ``features`` up to relu3_3, in torchvision's layout, for perceptual losses.

torchvision's ``vgg16`` (configuration "D") numbers its ``features`` layers in
one ``nn.Sequential``: convolutions at 0, 2, 5, 7, 10, 12, 14, ..., 28, ReLUs
after each, max-pools at 4, 9, 16, 23, 30. Keeping the same indices
(``features.0`` ... ``features.15``) makes the official file's weights land on
the same modules. The layers after relu3_3 (``features.17`` ... ``features.28``)
and the classifier are not built: :data:`DROPPED_KEYS` lists them, with their
shapes, so that loading still checks the whole official file (see
:func:`csmlab.nets.weights.load_official`).

``forward(img)`` takes RGB in [0, 1] (or [-1, 1] with ``value_range=(-1, 1)``),
applies the ImageNet normalisation the weights were trained with, and returns
``{"relu1_2", "relu2_2", "relu3_3"}`` (strides 1, 2, 4).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .imagenet import imagenet_normalize

# Output channels of the 13 convolutions of VGG16 and where its 5 max-pools sit (torchvision cfg "D").
_CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# Index in ``features`` of the ReLU that ends each tapped stage.
TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15}


def _official_feature_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every parameter of torchvision's ``vgg16().features``, in order."""
    out, c_in, i = [], 3, 0
    for v in _CFG_D:
        if v == "M":
            i += 1
            continue
        out += [(f"features.{i}.weight", (v, c_in, 3, 3)), (f"features.{i}.bias", (v,))]
        c_in, i = v, i + 2
    return out


_LAST = TAPS["relu3_3"]
# The official file's entries that VGG16Features does not build: features after relu3_3 and the classifier.
DROPPED_KEYS: tuple[tuple[str, tuple[int, ...]], ...] = tuple(
    [(k, s) for k, s in _official_feature_shapes() if int(k.split(".")[1]) > _LAST]
    + [("classifier.0.weight", (4096, 512 * 7 * 7)), ("classifier.0.bias", (4096,)),
       ("classifier.3.weight", (4096, 4096)), ("classifier.3.bias", (4096,)),
       ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,))])


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features[:16]`` (conv1_1 ... relu3_3), with named taps."""

    def __init__(self, value_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in _CFG_D:
            if len(layers) > _LAST:
                break
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=False)]
                c_in = v
        self.features = nn.Sequential(*layers[:_LAST + 1])
        self.value_range = tuple(value_range)

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """``relu1_2`` [B,64,H,W], ``relu2_2`` [B,128,H/2,W/2], ``relu3_3`` [B,256,H/4,W/4]."""
        x = imagenet_normalize(img, self.value_range)
        out, names = {}, {i: n for n, i in TAPS.items()}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in names:
                out[names[i]] = x
        return out
