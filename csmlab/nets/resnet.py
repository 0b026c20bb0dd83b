"""ResNet-18 and ResNet-50 in torchvision's layout, returning a stride 4-32 feature pyramid.

Parameter names and shapes follow ``torchvision/models/resnet.py`` (``conv1``,
``bn1``, ``layer1.0.conv1``, ..., ``layerN.0.downsample.{0,1}``, ``fc``), so
torchvision's ImageNet files load with ``strict=True``. ResNet-50 is the
"V1.5" bottleneck of torchvision: the stride sits on the 3x3 convolution.

``forward(x)`` returns the pyramid ``{"s4": layer1, "s8": layer2, "s16": layer3,
"s32": layer4}`` for U-Net style encoders; ``classify(x)`` runs the ImageNet
head (average pool + ``fc``). Inputs are ImageNet-normalised images
(:func:`csmlab.nets.imagenet_normalize`).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(c_in, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, with batch norm and a shortcut."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(c_in, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


class ResNet(nn.Module):
    """A torchvision-layout ResNet: stem, four stages, ImageNet head (kept so official files load strictly)."""

    STRIDES = (4, 8, 16, 32)

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 1000):
        super().__init__()
        if block not in (BasicBlock, Bottleneck) or len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"block must be BasicBlock or Bottleneck and layers 4 positive ints, "
                             f"got {getattr(block, '__name__', block)!r}, {layers!r}")
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            c_out = planes * block.expansion
            down = None
            if stride != 1 or c_in != c_out:
                down = nn.Sequential(_conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
            blocks = [block(c_in, planes, stride, down)] + [block(c_out, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        # Channels of the pyramid levels s4, s8, s16, s32.
        self.channels = tuple(p * block.expansion for p in (64, 128, 256, 512))
        for m in self.modules():   # torchvision's initialisation, for training from scratch
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a [B,3,H,W] image tensor, got {got}")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The feature pyramid: ``s4`` [B,C1,H/4,W/4] ... ``s32`` [B,C4,H/32,W/32] (sizes rounded up)."""
        self._check(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = {}
        for stride, layer in zip(self.STRIDES, (self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            out[f"s{stride}"] = x
        return out

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, num_classes]."""
        return self.fc(torch.flatten(self.avgpool(self.forward(x)["s32"]), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 (torchvision ``resnet18``): BasicBlock, (2, 2, 2, 2); pyramid channels 64-512."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 (torchvision ``resnet50``, V1.5): Bottleneck, (3, 4, 6, 3); pyramid channels 256-2048."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)
