"""Networks: one timm backbone with a classifier head and a SimCLR projection head.

The same `Network` serves pre-training (projection head), warm-up and refinement (classifier head),
so a checkpoint is one state dict and DDP wraps one module. Both heads are reached through
`forward` (never a side method): DDP only synchronises gradients of computations that go through
`forward`.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import Tensor, nn

from noisylab.config import ModelConfig
from noisylab.errors import UserError

_RESNETS = ("resnet18", "resnet34")  # BasicBlock ResNets: the ones the width/stem options rewire
CIFAR_STEM_MAX_SIZE = 64  # pixels: up to this size a 3×3/stride-1 stem keeps enough resolution


class Network(nn.Module):
    """Backbone → pooled features [B, F]; `head` → logits [B, K]; `projector` → [B, proj_dim]."""

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, proj_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.head = nn.Linear(num_features, num_classes)
        # SimCLR's 2-layer MLP projection; the report does not give its shape.
        self.projector = nn.Sequential(
            nn.Linear(num_features, num_features), nn.ReLU(inplace=True), nn.Linear(num_features, proj_dim)
        )

    def forward(self, x: Tensor, *, project: bool = False) -> Tensor:
        feats = self.backbone(x)  # (B, F): timm with num_classes=0 returns pooled features
        return self.projector(feats) if project else self.head(feats)


def _rewire_stem(backbone: nn.Module, *, in_chans: int, width: int, cifar: bool) -> None:
    """Give a timm BasicBlock ResNet a stem of `width` channels, and the CIFAR stem if asked.

    timm fixes the stem at 64 channels whatever `channels` says, so a narrow network would still pay
    for a 64-channel stem at full resolution; the stem and the first block's input are rebuilt instead.
    """
    if cifar:
        # 3×3, stride 1, no max-pool: the stem used for 32-px inputs in the noisy-label literature.
        backbone.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False)
        backbone.maxpool = nn.Identity()
    elif width != 64:
        backbone.conv1 = nn.Conv2d(in_chans, width, kernel_size=7, stride=2, padding=3, bias=False)
    if width != 64:
        backbone.bn1 = nn.BatchNorm2d(width)
        first = backbone.get_submodule("layer1.0")
        first.conv1 = nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, bias=False)
        first.downsample = None  # type: ignore[assignment]  # input and output now both have `width` channels


def available_models() -> list[str]:
    return list(timm.list_models())


def build_network(cfg: ModelConfig, *, num_classes: int, in_chans: int, image_size: int) -> Network:
    """Build `cfg.name` from timm (random init: no weights are downloaded) with the chosen stem/width."""
    if cfg.name not in timm.list_models():
        raise UserError(
            f"unknown model '{cfg.name}': use a timm model name such as resnet18 or resnet34 "
            "(`python -c 'import timm; print(timm.list_models())'` lists them)"
        )
    is_resnet = cfg.name in _RESNETS
    if not is_resnet and cfg.width != 64:
        raise UserError(f"model.width applies to timm ResNets only ({', '.join(_RESNETS)}), not {cfg.name}")
    if not is_resnet and cfg.stem == "cifar":
        raise UserError(f"model.stem=cifar applies to timm ResNets only, not {cfg.name}")
    kwargs: dict[str, Any] = {}
    if is_resnet:
        w = cfg.width
        kwargs = {"channels": (w, 2 * w, 4 * w, 8 * w)}
    backbone = timm.create_model(cfg.name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    stem = cfg.stem
    if stem == "auto":
        stem = "cifar" if is_resnet and image_size <= CIFAR_STEM_MAX_SIZE else "imagenet"
    if is_resnet:
        _rewire_stem(backbone, in_chans=in_chans, width=cfg.width, cifar=stem == "cifar")
    # What the pooled forward returns: timm models with a pre-logits layer (MobileNetV3, ...) report it
    # as head_hidden_size, the rest as num_features.
    num_features = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)  # type: ignore[arg-type]
    return Network(backbone, num_features, num_classes, cfg.proj_dim)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def reset_head(net: Network) -> None:
    """Fresh classifier weights (used when supervised training starts after pre-training)."""
    net.head.reset_parameters()
