"""CIFAR-10 networks used by the tail-effect study, defined here (needs torch).

* ResNet-56: He et al., "Deep Residual Learning for Image Recognition",
  CVPR 2016, Section 4.2: 6n+2 layers with n = 9, three stages of 16/32/64
  filters on 32x32 inputs, and parameter-free "option A" shortcuts (stride-2
  subsampling, zero-padded channels) where the shape changes.
* VGG-16: Simonyan & Zisserman, ICLR 2015, configuration D, with batch norm
  after every convolution and a single 512 -> 10 classifier, the usual CIFAR
  adaptation (the 32x32 input is 1x1 after the fifth pooling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - in_planes if stride != 1 or in_planes != planes else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad:  # option A: subsample, then zero-pad the new channels
            half = self.pad // 2
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.pad - half))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 56, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("CIFAR ResNet depth must be 6n+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class CifarVGG(nn.Module):
    def __init__(self, config=VGG16_CONFIG, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
                in_channels = item
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


#: name -> (constructor, input shape at batch 1)
MODELS = {
    "cifar_resnet56": (lambda: CifarResNet(56), (1, 3, 32, 32)),
    "cifar_vgg16": (lambda: CifarVGG(), (1, 3, 32, 32)),
}
