"""`--method c2d` (Zheltonozhskii, Baskin, Mendelson, Bronstein, Litany 2022, "Contrast to Divide:
Self-Supervised Pre-Training for Learning with Noisy Labels", WACV): one SimCLR encoder loaded into both
DivideMix networks, a short CE warm-up with gradient clipping, then DivideMix unchanged (`dividemix.*`).

C2D's defaults: a 5-epoch warm-up (DivideMix's own is 10 on CIFAR-10) with the gradient's global norm
clipped at 1.0. Nothing here depends on the run's data or noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from noisylab.config.sections.rules import positive, simclr_encoder_only
from noisylab.config.variants import base_method
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class C2DConfig:
    """`--method c2d` (Zheltonozhskii et al. 2022, "Contrast to Divide", WACV): one SimCLR encoder
    (`pretrain.*`) loaded into both DivideMix networks, a short CE warm-up with gradient clipping, then
    DivideMix unchanged (`dividemix.*`). Budget after pre-training: `baseline.epochs`, warm-up included."""

    warmup_epochs: int = 5  # C2D's warm-up (DivideMix's own is 10 on CIFAR-10)
    grad_clip: float = 1.0  # max global gradient norm during warm-up (C2D's value); 0 turns it off


def resolve(cfg: RunConfig) -> RunConfig:
    return cfg  # no field defaults to a rule


def check(cfg: RunConfig) -> None:
    c = cfg.c2d
    positive("c2d.warmup_epochs", c.warmup_epochs, minimum=1)
    if not c.grad_clip >= 0:
        raise UserError(f"c2d.grad_clip must be ≥ 0 (0 turns clipping off), got {c.grad_clip}")
    if base_method(cfg.method) != "c2d":
        return
    simclr_encoder_only(cfg)
    total = cfg.baseline.epochs
    if total is not None and c.warmup_epochs >= total:
        raise UserError(
            f"c2d.warmup_epochs ({c.warmup_epochs}) leaves no DivideMix epoch of the run's "
            f"{total}: set it below {total} or raise baseline.epochs"
        )
