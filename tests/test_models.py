from __future__ import annotations

import pytest
import torch

from noisylab.config.run import ModelConfig
from noisylab.errors import UserError
from noisylab.train.models import RESNETS, build_network, count_parameters

# DivideMix's PreResNet.ResNet18 at CIFAR-10's shape (3 channels, 10 classes, width 64), counted from the
# official PreResNet.py (github.com/LiJunnan1992/DivideMix): the network of DivideMix, C2D, SSR and ProMix.
OFFICIAL_PREACT_RESNET18_PARAMETERS = 11_171_274
# DivideMix's ResNet34 (post-activation BasicBlock), counted from the same file.
OFFICIAL_RESNET34_PARAMETERS = 21_282_122


@pytest.mark.parametrize("name", list(RESNETS))
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
    small = build_network(ModelConfig(name="resnet18", width=8), num_classes=10, in_chans=3, image_size=32)
    large = build_network(ModelConfig(name="resnet18", width=8), num_classes=10, in_chans=3, image_size=224)
    assert small.backbone.conv1.stride == (1, 1) and isinstance(small.backbone.maxpool, torch.nn.Identity)
    assert large.backbone.conv1.stride == (2, 2) and not isinstance(large.backbone.maxpool, torch.nn.Identity)
    # The width option reaches the stem too (timm fixes it at 64 otherwise).
    assert small.backbone.conv1.out_channels == 8 and large.backbone.conv1.out_channels == 8


def test_preact_resnet_is_dividemix_network_layer_for_layer() -> None:
    """Backbone + classifier head of `preact_resnet18` at CIFAR-10's shape has exactly the official
    network's parameters; its stem is conv3×3/1 → BN → ReLU with no max-pool and nothing follows the
    last stage; `resnet34` is DivideMix's ResNet34 to the parameter."""
    net = build_network(ModelConfig(name="preact_resnet18"), num_classes=10, in_chans=3, image_size=32)
    assert count_parameters(net.backbone) + count_parameters(net.head) == OFFICIAL_PREACT_RESNET18_PARAMETERS
    conv = net.backbone.stem.conv
    assert (conv.kernel_size, conv.stride, conv.in_channels, conv.out_channels) == ((3, 3), (1, 1), 3, 64)
    assert [type(m).__name__ for m in net.backbone.stem] == ["Conv2d", "BatchNormAct2d"]
    assert isinstance(net.backbone.norm, torch.nn.Identity)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # Blocks are pre-activation: the first module a block applies is a norm (timm's PreActBasic).
    assert type(net.backbone.stages[0].blocks[0]).__name__ == "PreActBasic"
    r34 = build_network(ModelConfig(name="resnet34"), num_classes=10, in_chans=3, image_size=32)
    assert count_parameters(r34.backbone) + count_parameters(r34.head) == OFFICIAL_RESNET34_PARAMETERS


@pytest.mark.parametrize("name", list(RESNETS))
@pytest.mark.parametrize("width", [4, 12])
def test_every_width_is_built_exactly(name: str, width: int) -> None:
    """Widths that are not multiples of 8 (timm rounds those up inside its ResNetV2) keep their count in
    every stage and every block, and the pooled features are 8 × width."""
    net = build_network(ModelConfig(name=name, width=width), num_classes=10, in_chans=1, image_size=28)
    convs = [m for m in net.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    allowed = {1, width, 2 * width, 4 * width, 8 * width}
    assert {c.out_channels for c in convs} <= allowed and {c.in_channels for c in convs} <= allowed
    assert net.num_features == 8 * width and net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", list(RESNETS))
def test_zero_init_last_is_live(name: str) -> None:
    """With `zero_init_last` every residual branch starts at zero, so each block is the identity plus
    its shortcut (the ImageNet trick timm turns on by default); without it no branch is zero."""

    def last_weights(zero: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = build_network(
            ModelConfig(name=name, width=8, zero_init_last=zero), num_classes=10, in_chans=1, image_size=28
        )
        blocks = [m for m in net.backbone.modules() if hasattr(m, "zero_init_last")]
        assert len(blocks) == (8 if name.endswith("18") else 16)
        # post-activation: the last BN's weight; pre-activation: the last convolution.
        return [(b.conv2.weight if name.startswith("preact") else b.bn2.weight).detach() for b in blocks]

    assert all(bool((w == 0).all()) for w in last_weights(True))
    assert not any(bool((w == 0).all()) for w in last_weights(False))


@pytest.mark.parametrize("name", list(RESNETS))
def test_rewired_layers_start_like_their_neighbours(name: str) -> None:
    """The stem noisylab builds is initialised as timm initialises the rest (Kaiming-normal, fan-out):
    its weights' spread is that of timm's own conv init, not PyTorch's √3-times-smaller default."""
    torch.manual_seed(0)
    net = build_network(ModelConfig(name=name, width=32), num_classes=10, in_chans=3, image_size=32)
    conv = net.backbone.stem.conv if name.startswith("preact") else net.backbone.conv1
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert float(conv.weight.detach().std()) == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.1)
    if not name.startswith("preact"):  # the first block's rebuilt conv too
        first = net.backbone.get_submodule("layer1.0").conv1
        assert float(first.weight.detach().std()) == pytest.approx((2.0 / (32 * 9)) ** 0.5, rel=0.1)


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
    with pytest.raises(UserError, match="width applies to preact_resnet18"):
        build_network(
            ModelConfig(name="mobilenetv3_small_050", width=8), num_classes=4, in_chans=3, image_size=64
        )
