"""`--method mixup` (Zhang, Cisse, Dauphin, Lopez-Paz 2018, "mixup: Beyond Empirical Risk Minimization",
ICLR): the baseline's budget and optimiser, each batch mixed with a permutation of itself.

Paper default: α = 1 on CIFAR-10/100 (§3.2). Nothing here depends on the run's data or noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class MixupConfig:
    """`--method mixup` (Zhang et al. 2018): the baseline's budget and optimiser, mixed batches."""

    alpha: float = 1.0  # λ ~ Beta(α, α); the mixup paper's CIFAR-10/100 value (§3.2); 0 turns mixing off


def resolve(cfg: RunConfig) -> RunConfig:
    return cfg  # no field defaults to a rule


def check(cfg: RunConfig) -> None:
    if cfg.mixup.alpha < 0:
        raise UserError(f"mixup.alpha must be ≥ 0 (0 turns mixing off), got {cfg.mixup.alpha}")
