"""Networks: one timm backbone with a classifier head and a SimCLR projection head.

The same `Network` serves pre-training (projection head), warm-up and refinement (classifier head),
so a checkpoint is one state dict and DDP wraps one module. Both heads are reached through
`forward` (never a side method): DDP only synchronises gradients of computations that go through
`forward`. The two-network methods (Co-teaching, DivideMix) train a `TwinNetwork`: two `Network`s
as one module, for the same reasons.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import timm
import torch
from torch import Tensor, nn

from noisylab.config.run import ModelConfig
from noisylab.errors import UserError

# The BasicBlock ResNets whose width and stem noisylab sets: name → (timm model, pre-activation blocks).
# `preact_*` are timm's ResNetV2 with PreActBasic blocks, rebuilt at ≤ 64 px into DivideMix's
# `PreResNet.ResNet18` layer for layer (see `_preact_cifar`); `resnet*` are timm's post-activation ResNets
# (DivideMix's own `ResNet34` is this one: BasicBlock, CIFAR stem, no zero-initialised BN).
RESNETS: dict[str, tuple[str, bool]] = {
    "preact_resnet18": ("resnetv2_18", True),
    "preact_resnet34": ("resnetv2_34", True),
    "resnet18": ("resnet18", False),
    "resnet34": ("resnet34", False),
}
CIFAR_STEM_MAX_SIZE = 64  # pixels: up to this size a 3×3/stride-1 stem keeps enough resolution


class Network(nn.Module):
    """Backbone → pooled features [B, F]; `head` → logits [B, K]; `projector` → [B, proj_dim];
    with `predictor=True` also BYOL's `predictor` on top of the projector → [B, proj_dim]; with
    `structural_head=True` also LSL's second classifier `structural_head` → [B, K]."""

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        num_classes: int,
        proj_dim: int,
        *,
        predictor: bool = False,
        structural_head: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.head = nn.Linear(num_features, num_classes)
        # SimCLR's 2-layer MLP projection; the report does not give its shape.
        self.projector = nn.Sequential(
            nn.Linear(num_features, num_features), nn.ReLU(inplace=True), nn.Linear(num_features, proj_dim)
        )
        # BYOL's predictor q (Grill et al. 2020, §3.3: the projector's shape, Linear-BN-ReLU-Linear). Built
        # only when asked, so networks without BYOL keep their parameters and state dict.
        self.predictor: nn.Module | None = None
        if predictor:
            self.predictor = nn.Sequential(
                nn.Linear(proj_dim, num_features),
                nn.BatchNorm1d(num_features),
                nn.ReLU(inplace=True),
                nn.Linear(num_features, proj_dim),
            )
        # LSL's structural labels train their own linear head on the same features (trainables/lsl.py).
        # Built last and only when asked, so every other network keeps its parameters, state dict and
        # initial weights.
        self.structural_head: nn.Linear | None = None
        if structural_head:
            self.structural_head = nn.Linear(num_features, num_classes)

    def forward(
        self,
        x: Tensor,
        *,
        project: bool = False,
        predict: bool = False,
        features: bool = False,
        structural: bool = False,
    ) -> Tensor:
        """Logits [B, K]; `project`: projections [B, proj_dim]; `predict`: BYOL predictions q(g(f(x)));
        `features`: the pooled backbone features [B, F]; `structural`: the classifier's and the
        structural head's logits stacked [2, B, K] (one forward serves both heads)."""
        feats = self.backbone(x)  # (B, F): timm with num_classes=0 returns pooled features
        if features:
            return feats
        if structural:
            if self.structural_head is None:
                raise RuntimeError("this network has no structural head: build it with structural_head=True")
            return torch.stack([self.head(feats), self.structural_head(feats)])  # (2, B, K)
        if predict:
            if self.predictor is None:
                raise RuntimeError("this network has no predictor: build it with predictor=True")
            return self.predictor(self.projector(feats))
        return self.projector(feats) if project else self.head(feats)


@torch.no_grad()
def timm_init(module: nn.Module) -> nn.Module:
    """Initialise a layer noisylab puts into a timm ResNet the way timm initialises its neighbours:
    convolutions Kaiming-normal with fan-out (He et al. 2015), BatchNorm weight 1 and bias 0. PyTorch's
    own default (Kaiming-uniform with a = √5) starts a convolution about √3 times smaller."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def _rewire_stem(backbone: nn.Module, *, in_chans: int, width: int, cifar: bool) -> None:
    """Give a timm post-activation BasicBlock ResNet a stem of `width` channels, and the CIFAR stem if
    asked.

    timm fixes the stem at 64 channels whatever `channels` says, so a narrow network would still pay
    for a 64-channel stem at full resolution; the stem and the first block's input are rebuilt instead,
    each new layer initialised as timm initialises the rest (`timm_init`).
    """
    if cifar:
        # 3×3, stride 1, no max-pool: the stem used for 32-px inputs in the noisy-label literature.
        backbone.conv1 = timm_init(nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False))
        backbone.maxpool = nn.Identity()
    elif width != 64:
        backbone.conv1 = timm_init(nn.Conv2d(in_chans, width, kernel_size=7, stride=2, padding=3, bias=False))
    if width != 64:
        backbone.bn1 = timm_init(nn.BatchNorm2d(width))
        first = backbone.get_submodule("layer1.0")
        first.conv1 = timm_init(nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, bias=False))
        first.downsample = None  # type: ignore[assignment]  # input and output now both have `width` channels


def _preact_cifar(backbone: nn.Module, *, in_chans: int, width: int) -> None:
    """Turn timm's ResNetV2 (PreActBasic blocks) into DivideMix's `PreResNet.ResNet18`/34 layout for
    small images: a 3×3/stride-1 conv → BN → ReLU stem of `width` channels with no max-pool (timm's is
    a 7×7/stride-2 conv and a max-pool, with no norm), and no norm after the last stage (timm ends in
    BN → ReLU; the reference pools the last block's sum directly). The blocks themselves already match:
    BN → ReLU → conv3×3 → BN → ReLU → conv3×3, a 1×1 projection of the pre-activated input where the
    shape changes."""
    from timm.layers import BatchNormAct2d

    stem = nn.Sequential()
    stem.add_module("conv", nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False))
    stem.add_module("norm", BatchNormAct2d(width))  # BN → ReLU in one module (timm's norm-act layer)
    backbone.stem = timm_init(stem)
    backbone.norm = nn.Identity()


_EXACT_LOCK = threading.Lock()


@contextlib.contextmanager
def _exact_channels() -> Iterator[None]:
    """timm's ResNetV2 rounds every channel count to a multiple of 8 (`make_divisible`, for tensor-core
    friendly ImageNet widths), so width 4 or 12 would silently become 8 or 16 inside each block. CPU
    profiles use such widths: while this is active, the module builds the counts it is given."""
    from timm.models import resnetv2

    with _EXACT_LOCK:
        rounding = resnetv2.make_divisible
        resnetv2.make_divisible = lambda v, *args, **kwargs: int(v)
        try:
            yield
        finally:
            resnetv2.make_divisible = rounding


def available_models() -> list[str]:
    return sorted(set(timm.list_models()) | set(RESNETS))


def build_network(
    cfg: ModelConfig,
    *,
    num_classes: int,
    in_chans: int,
    image_size: int,
    predictor: bool = False,
    structural_head: bool = False,
) -> Network:
    """Build `cfg.name` (one of `RESNETS`, or any timm model; random init, no weights are downloaded)
    with the chosen stem/width; `predictor` adds BYOL's predictor head, `structural_head` LSL's second
    classifier."""
    is_resnet = cfg.name in RESNETS
    if not is_resnet and cfg.name not in timm.list_models():
        raise UserError(
            f"unknown model '{cfg.name}': use {', '.join(RESNETS)} or a timm model name "
            "(`python -c 'import timm; print(timm.list_models())'` lists timm's)"
        )
    if not is_resnet and cfg.width != 64:
        raise UserError(f"model.width applies to {', '.join(RESNETS)} only, not {cfg.name}")
    if not is_resnet and cfg.stem == "cifar":
        raise UserError(f"model.stem=cifar applies to {', '.join(RESNETS)} only, not {cfg.name}")
    stem = cfg.stem
    if stem == "auto":
        stem = "cifar" if is_resnet and image_size <= CIFAR_STEM_MAX_SIZE else "imagenet"
    if is_resnet:
        timm_name, preact = RESNETS[cfg.name]
        w = cfg.width
        kwargs: dict[str, Any] = {"channels": (w, 2 * w, 4 * w, 8 * w), "zero_init_last": cfg.zero_init_last}
        if preact:
            kwargs["stem_chs"] = w
        with _exact_channels() if preact else contextlib.nullcontext():
            backbone = timm.create_model(
                timm_name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs
            )
        if preact and stem == "cifar":
            _preact_cifar(backbone, in_chans=in_chans, width=w)
        elif not preact:
            _rewire_stem(backbone, in_chans=in_chans, width=w, cifar=stem == "cifar")
    else:
        backbone = timm.create_model(cfg.name, pretrained=False, num_classes=0, in_chans=in_chans)
    # What the pooled forward returns: timm models with a pre-logits layer (MobileNetV3, ...) report it
    # as head_hidden_size, the rest as num_features.
    num_features = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)  # type: ignore[arg-type]
    return Network(
        backbone,
        num_features,
        num_classes,
        cfg.proj_dim,
        predictor=predictor,
        structural_head=structural_head,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- two networks as one module (Co-teaching, DivideMix) -------------------------------------

TWIN_SEED_OFFSET = 2**31  # member 2 starts from seed + 2³¹: no run seed's first member shares its weights


class TwinNetwork(nn.Module):
    """Two `Network`s as ONE module, so one state dict, one DDP wrapper and one optimiser serve both.

    `forward(x)` with x (2, B, C, H, W) runs member i on x[i] and returns stacked outputs (2, B, ·):
    one DDP forward per step trains both; `forward(x, member=i)` runs member i alone on (B, C, H, W).
    A plain (B, C, H, W) input returns the MEAN of the members' outputs (B, ·), so evaluation and
    prediction work unchanged (its arg-max is that of the sum, the ensemble DivideMix tests with).
    Keyword options (`project`, ...) go to both members.

    An Adam/AdamW/SGD over the twin's parameters equals one optimiser per member: their state is per
    parameter, and the members share no parameter.
    """

    def __init__(self, first: Network, second: Network) -> None:
        super().__init__()
        self.members = nn.ModuleList([first, second])

    def forward(self, x: Tensor, *, member: int | None = None, **kwargs: Any) -> Tensor:
        if member is not None:  # one member alone (pre-training the encoder both will start from)
            return self.members[member](x, **kwargs)
        if x.dim() == 5:
            if x.shape[0] != len(self.members):
                raise ValueError(
                    f"a stacked input needs one slice per member (2, B, C, H, W), got {tuple(x.shape)}"
                )
            return torch.stack([m(x[i], **kwargs) for i, m in enumerate(self.members)])  # (2, B, ·)
        return torch.stack([m(x, **kwargs) for m in self.members]).mean(dim=0)  # (B, ·)


def build_twin(
    cfg: ModelConfig, *, seed: int, num_classes: int, in_chans: int, image_size: int
) -> TwinNetwork:
    """Two networks of `cfg`, member 1 initialised from `seed` (the weights a one-network run of this
    seed starts from), member 2 from seed + 2³¹; the global RNG stream is left as it was."""
    members = []
    for member_seed in (seed, seed + TWIN_SEED_OFFSET):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(member_seed)
            members.append(
                build_network(cfg, num_classes=num_classes, in_chans=in_chans, image_size=image_size)
            )
    return TwinNetwork(*members)


@torch.no_grad()
def share_encoder(twin: TwinNetwork, *, seed: int, source: int = 0) -> None:
    """Load member `source`'s backbone and projector into the other member, then give each member a fresh
    classifier head from its own seed (member 1: `seed`, member 2: seed + 2³¹): both networks start
    from one pre-trained encoder and still differ (C2D, Zheltonozhskii et al. 2022). The global RNG
    stream is left as it was, so every rank (and a resumed run) gets the same weights."""
    members: list[Network] = list(twin.members)  # type: ignore[arg-type]  # a ModuleList of Networks
    first = members[source]
    for i, member in enumerate(members):
        if i != source:
            member.backbone.load_state_dict(first.backbone.state_dict())
            member.projector.load_state_dict(first.projector.state_dict())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + i * TWIN_SEED_OFFSET)
            member.head.reset_parameters()


def build_model(
    cfg: ModelConfig,
    *,
    networks: int,
    seed: int,
    num_classes: int,
    in_chans: int,
    image_size: int,
    predictor: bool = False,
    structural_head: bool = False,
) -> nn.Module:
    """What a run trains: one `Network` (from the caller's RNG, which the worker seeds with `seed`; with
    BYOL's `predictor` and LSL's `structural_head` if asked), or, for a method with `networks = 2`, a
    `TwinNetwork` seeded as `build_twin` says (no two-network method pre-trains or needs a second head,
    so its members get neither)."""
    if networks == 1:
        return build_network(
            cfg,
            num_classes=num_classes,
            in_chans=in_chans,
            image_size=image_size,
            predictor=predictor,
            structural_head=structural_head,
        )
    if networks != 2:
        raise ValueError(f"a run trains 1 or 2 networks, not {networks}")
    return build_twin(cfg, seed=seed, num_classes=num_classes, in_chans=in_chans, image_size=image_size)
