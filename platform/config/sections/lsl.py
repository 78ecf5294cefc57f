"""`--method lsl` (Kim, Lee, Lee 2024, "Learning with Structural Labels for Learning with Noisy Labels",
CVPR): SSR's selection and relabelling with mixup on strong views, plus a soft cross-entropy term
against structural labels made by reverse k-NN voting in feature space.

Defaults and where they come from (no official code is public; see trainables/lsl.py for the reading):
k = 20 neighbours for the reverse k-NN and λ_st = 1 (the unofficial re-implementation built on SSR);
SSR (Feng et al., BMVC 2022, github.com/MrChenFeng/SSR_BMVC2022, `main_cifar.py`): relabelling at
classifier confidence θ_r = 0.9, k-NN selection with k = 200 neighbours at θ_s = 1, class-balanced
sampling of the selected set, two strong views per sample, mixup λ ~ Beta(4, 4) with λ' = max(λ, 1 − λ),
no warm-up. The budget and optimiser are the baseline's (`baseline.*`), as for every baseline here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from noisylab.config.sections.baseline import baseline_epochs
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig

StructuralHead = Literal["separate", "shared"]
KnnFeatures = Literal["backbone", "logits"]
StrongView = Literal["simclr", "weak"]


@dataclass(frozen=True)
class LslConfig:
    """`--method lsl` (Kim et al. 2024): SSR's selection and mixup on strong views, plus structural labels."""

    k: int = 20  # neighbours each sample votes its label into (reverse k-NN); the re-implementation's 20
    weight: float = 1.0  # λ_st: weight of the structural soft cross entropy beside the classification loss
    # separate: structural labels train a second linear head on the shared pooled features (they shape the
    # features, the classifier keeps its own targets); shared: the classifier's own logits are fitted to both
    head: StructuralHead = "separate"
    # backbone: the L2-normalised pooled features of the backbone (512 dims for ResNet-18, 8·width in
    # general); logits: the L2-normalised classifier logits (K dims)
    features: KnnFeatures = "backbone"
    alpha: float = 4.0  # mixup λ ~ Beta(α, α); SSR's code uses 4; 0 turns mixing off
    keep_first: bool = True  # λ' = max(λ, 1 − λ), as SSR's code, so a mixed row stays nearer its first image
    views: int = 2  # strong views of each labelled sample in a batch (SSR: 2)
    # simclr: the SimCLR augmentation (random resized crop, flip, colour jitter, grayscale, blur), the
    # strongest this platform has (SSR's strong view is crop + flip + AutoAugment's CIFAR-10 policy);
    # weak: padded crop and flip only
    view: StrongView = "simclr"
    warmup_epochs: int = 0  # epochs of plain mixup on all samples and given labels first (SSR: none)
    # SSR's relabelling and selection before every epoch; off: every sample with its given label trains
    selection: bool = True
    relabel_threshold: float = 0.9  # θ_r: a sample takes the classifier's arg-max above this confidence
    select_k: int = 200  # neighbours of SSR's k-NN vote (the sample itself included, as SSR's code)
    select_threshold: float = 1.0  # θ_s: selected when vote[label] / max vote ≥ θ_s (1: label wins the vote)
    balanced: bool = True  # draw the selected samples class-balanced (SSR's ClassBalancedSampler)
    chunk: int = 1024  # rows of the N×N similarity computed at once on the device (memory, not results)


def resolve(cfg: RunConfig) -> RunConfig:
    return cfg  # no field defaults to a rule


def check(cfg: RunConfig) -> None:
    s = cfg.lsl
    for name, value, minimum in (
        ("lsl.k", s.k, 1),
        ("lsl.views", s.views, 1),
        ("lsl.select_k", s.select_k, 1),
        ("lsl.chunk", s.chunk, 1),
        ("lsl.warmup_epochs", s.warmup_epochs, 0),
    ):
        if value < minimum:
            raise UserError(f"{name} must be ≥ {minimum}, got {value}")
    if s.weight < 0:
        raise UserError(f"lsl.weight must be ≥ 0 (0 turns the structural term off), got {s.weight}")
    if s.alpha < 0:
        raise UserError(f"lsl.alpha must be ≥ 0 (0 turns mixing off), got {s.alpha}")
    if not 0.0 <= s.relabel_threshold <= 1.0:
        raise UserError(
            f"lsl.relabel_threshold must lie in [0, 1] (a softmax confidence), got {s.relabel_threshold}"
        )
    if not 0.0 < s.select_threshold <= 1.0:
        raise UserError(
            f"lsl.select_threshold must lie in (0, 1] (a share of the winning vote), got {s.select_threshold}"
        )
    if cfg.method == "lsl" and s.warmup_epochs >= baseline_epochs(cfg):
        raise UserError(
            f"lsl.warmup_epochs ({s.warmup_epochs}) leaves no epoch with structural labels of the run's "
            f"{baseline_epochs(cfg)}: set it below {baseline_epochs(cfg)} or raise baseline.epochs"
        )
