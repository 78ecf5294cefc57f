"""`--method forward` (Patrini, Rozza, Menon, Nock, Qu 2017, "Making Deep Neural Networks Robust to Label
Noise: a Loss Correction Approach", CVPR): cross entropy, an anchor-point estimate of the transition
matrix T, then training again with the forward-corrected loss.

The paper trains two networks in full and picks anchors at the 97th percentile on CIFAR (the arg-max on
its other datasets). Here both phases share `baseline.epochs` by default, phase 1 the smaller half, so
`forward` costs what `ce` costs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from noisylab.config.sections.rules import used
from noisylab.config.variants import base_method
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class ForwardConfig:
    """`--method forward` (Patrini et al. 2017): CE, estimate T from anchor points, retrain with T.

    Both phases use `baseline.lr` / `baseline.weight_decay`; by default they split the baseline's epochs
    (phase 1 gets the smaller half), so the whole run costs what `ce` costs."""

    estimate_epochs: int | None = None  # phase 1 (CE on the noisy labels); None: baseline epochs // 2
    train_epochs: int | None = None  # phase 2 (forward-corrected loss); None: the rest of the budget
    percentile: float = 97.0  # anchor of class i: the sample at this percentile of p(i|x); the paper's
    # CIFAR choice (100 = the arg-max, the paper's rule for the other datasets)


def resolve(cfg: RunConfig) -> RunConfig:
    """Unset phases share `baseline.epochs` (resolved before this section): a given phase keeps its
    length and the other gets the rest; neither given, phase 1 gets ⌊total / 2⌋."""
    f, total = cfg.forward, cfg.baseline.epochs
    if total is None or (f.estimate_epochs is not None and f.train_epochs is not None):
        return cfg
    if f.estimate_epochs is not None:
        first = f.estimate_epochs
    else:
        first = total - f.train_epochs if f.train_epochs is not None else total // 2
    second = f.train_epochs if f.train_epochs is not None else total - first
    return replace(cfg, forward=replace(f, estimate_epochs=first, train_epochs=second))


def check(cfg: RunConfig) -> None:
    f = cfg.forward
    if not 0.0 < f.percentile <= 100.0:
        raise UserError(f"forward.percentile must lie in (0, 100], got {f.percentile}")
    if base_method(cfg.method) != "forward":
        return
    first, second = forward_epochs(cfg)
    if first < 1 or second < 1:
        raise UserError(
            f"forward needs at least 1 epoch in each phase, got {first} + {second} "
            f"(of {cfg.baseline.epochs} baseline epochs): set forward.estimate_epochs and "
            "forward.train_epochs, or raise baseline.epochs"
        )


def forward_epochs(cfg: RunConfig) -> tuple[int, int]:
    """(phase-1, phase-2) epochs of a resolved `--method forward` config."""
    f = cfg.forward
    return used(f.estimate_epochs, "forward.estimate_epochs"), used(f.train_epochs, "forward.train_epochs")
