from __future__ import annotations

import pytest
import torch

from noisylab.config import ModelConfig
from noisylab.errors import UserError
from noisylab.models import build_network


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
@pytest.mark.parametrize(("size", "stem"), [(16, "auto"), (96, "auto"), (32, "imagenet")])
def test_resnets_give_logits_and_projections(name: str, size: int, stem: str) -> None:
    net = build_network(
        ModelConfig(name=name, width=8, stem=stem, proj_dim=16), num_classes=5, in_chans=1, image_size=size
    )
    x = torch.randn(3, 1, size, size)
    assert net(x).shape == (3, 5)
    assert net(x, project=True).shape == (3, 16)
    assert net.num_features == 64  # 8 × width at the last stage


def test_cifar_stem_keeps_resolution_and_imagenet_stem_does_not() -> None:
    small = build_network(ModelConfig(width=8), num_classes=10, in_chans=3, image_size=32)
    large = build_network(ModelConfig(width=8), num_classes=10, in_chans=3, image_size=224)
    assert small.backbone.conv1.stride == (1, 1) and isinstance(small.backbone.maxpool, torch.nn.Identity)
    assert large.backbone.conv1.stride == (2, 2) and not isinstance(large.backbone.maxpool, torch.nn.Identity)
    # The width option reaches the stem too (timm fixes it at 64 otherwise).
    assert small.backbone.conv1.out_channels == 8 and large.backbone.conv1.out_channels == 8


def test_width_scales_the_parameter_count() -> None:
    def params(w: int) -> int:
        net = build_network(ModelConfig(width=w), num_classes=10, in_chans=1, image_size=28)
        return sum(p.numel() for p in net.backbone.parameters())

    assert params(64) > 3 * params(32) > 9 * params(16)
    assert 11.0e6 < params(64) < 11.3e6  # ResNet-18's ~11.2 M backbone parameters at full width


def test_any_timm_model_name_works() -> None:
    net = build_network(ModelConfig(name="mobilenetv3_small_050"), num_classes=4, in_chans=3, image_size=64)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 4)


def test_unknown_model_and_width_on_other_families_are_refused() -> None:
    with pytest.raises(UserError, match="unknown model 'resnet19'"):
        build_network(ModelConfig(name="resnet19"), num_classes=10, in_chans=1, image_size=28)
    with pytest.raises(UserError, match="width applies to timm ResNets"):
        build_network(
            ModelConfig(name="mobilenetv3_small_050", width=8), num_classes=4, in_chans=3, image_size=64
        )
