"""DISTS (Ding, Ma, Wang, Simoncelli 2020, "Image Quality Assessment: Unifying Structure and Texture Similarity").

A full-reference metric that the adaptation never trains on (its loss holds LPIPS-AlexNet only): VGG16 features
with max pooling replaced by L2 pooling, compared per channel by their global means ("texture") and their
covariance ("structure"), weighted by channel weights alpha/beta fitted to human judgements. Written out after the
reference ``DISTS_pytorch`` 0.1 (``DISTS_pt.py``; equal to it to 1e-5, tested) rather than imported: its loader
unpickles ``weights.pt`` with a bare ``torch.load`` and its backbone comes from torchvision's hub loader. Here the
ImageNet VGG16 that ``adir-weights provision`` builds and the wheel's alpha/beta file are read as tensors only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from adir_exp.metrics.base import Metric
from adir_exp.metrics.learned import (
    load_exactly,
    load_torchvision_features,
    tensor_dict,
)
from adir_exp.paths import configure_environment
from adir_exp.weights import require

CHANNELS = (3, 64, 128, 256, 512, 512)  # the input image, then VGG16's relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # VGG16 feature indices; 4, 9, 16, 23 are its max poolings
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class L2Pooling(nn.Module):
    """The reference's ``L2pooling``: the square root of a Hanning-weighted (3x3, from a size-5 window without its
    zero ends) mean of squares, stride 2, in place of VGG's max pooling, which aliases."""

    def __init__(self, channels: int, filter_size: int = 5, stride: int = 2) -> None:
        super().__init__()
        self.padding = (filter_size - 2) // 2
        self.stride = stride
        taps = np.hanning(filter_size)[1:-1]
        window = torch.tensor(taps[:, None] * taps[None, :], dtype=torch.float32)
        window = window / window.sum()
        # Not in state_dict: a constant of the method, not a weight (the backbone file has no such key).
        self.register_buffer("window", window[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = F.conv2d(features**2, self.window, stride=self.stride, padding=self.padding, groups=features.shape[1])
        return (pooled + 1e-12).sqrt()


class DISTSNetwork(nn.Module):
    """VGG16 cut into the reference's five stages (children named by torchvision's feature index) and the channel
    weights ``alpha`` (texture) and ``beta`` (structure), one per channel of the six compared representations."""

    def __init__(self) -> None:
        super().__init__()
        vgg = make_layers(cfgs["D"])  # torchvision's VGG16 ``features``, without building the classifier
        self.stages = nn.ModuleList()
        for stage, (start, end) in enumerate(STAGES):
            layers = nn.Sequential()
            for index in range(start, end):
                pooling = stage > 0 and index == start
                layers.add_module(str(index), L2Pooling(CHANNELS[stage]) if pooling else vgg[index])
            self.stages.append(layers)
        self.channel_weights = nn.ParameterDict(
            {name: nn.Parameter(torch.empty(1, sum(CHANNELS), 1, 1), requires_grad=False) for name in ("alpha", "beta")}
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, -1, 1, 1), persistent=False)
        self.requires_grad_(False)

    def representations(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The image itself (unnormalised, as in the reference) and the output of each stage."""
        features = (image - self.mean) / self.std
        outputs = [image]
        for stage in self.stages:
            features = stage(features)
            outputs.append(features)
        return outputs

    def forward(self, pred: torch.Tensor, target: torch.Tensor, c1: float = 1e-6, c2: float = 1e-6) -> torch.Tensor:
        """``1 − Σ_k Σ_channels (α·texture + β·structure)``, α and β normalised to sum to 1 together (so identical
        images score 0), texture = (2 μx μy + c1) / (μx² + μy² + c1), structure = (2 σxy + c2) / (σx² + σy² + c2),
        per channel over the whole image."""
        total = self.channel_weights["alpha"].sum() + self.channel_weights["beta"].sum()
        alphas = torch.split(self.channel_weights["alpha"] / total, CHANNELS, dim=1)
        betas = torch.split(self.channel_weights["beta"] / total, CHANNELS, dim=1)
        texture_sum = structure_sum = 0
        for x, y, alpha, beta in zip(self.representations(pred), self.representations(target), alphas, betas):
            x_mean, y_mean = x.mean([2, 3], keepdim=True), y.mean([2, 3], keepdim=True)
            texture = (2 * x_mean * y_mean + c1) / (x_mean**2 + y_mean**2 + c1)
            texture_sum = texture_sum + (alpha * texture).sum(1, keepdim=True)
            x_var = ((x - x_mean) ** 2).mean([2, 3], keepdim=True)
            y_var = ((y - y_mean) ** 2).mean([2, 3], keepdim=True)
            covariance = (x * y).mean([2, 3], keepdim=True) - x_mean * y_mean
            structure = (2 * covariance + c2) / (x_var + y_var + c2)
            structure_sum = structure_sum + (beta * structure).sum(1, keepdim=True)
        return 1 - (texture_sum + structure_sum).reshape(pred.shape[0])


class DISTS(Metric):
    """DISTS with the reference's ImageNet VGG16 and alpha/beta (``DISTS_pytorch`` 0.1). Inputs in [0, 1];
    lower is better (0 for identical images)."""

    name = "dists"
    higher_is_better = False
    requires_reference = True

    def __init__(self, device: str | torch.device = "cpu") -> None:
        super().__init__(device)
        configure_environment()
        backbone_file = require("torchvision-vgg16")
        weights_file = require("dists-weights")
        self.weight_files = (backbone_file, weights_file)
        self.model = DISTSNetwork()
        load_torchvision_features(self.model.stages, backbone_file, "DISTS")
        load_exactly(self.model.channel_weights, tensor_dict(weights_file), weights_file, "DISTS alpha/beta")
        self.model = self.model.eval().to(self.device)

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        assert target is not None
        return self.model(pred, target)
