"""The supervised budget every baseline shares (`--method ce` and the other one-network losses, mixup,
forward, coteaching, dividemix, c2d): how many epochs, at which learning rate.

Default budget: the pipeline's supervised epochs, warm-up plus refinement (5 + 4 + 7 + 7 + 7 = 30 under
the report's schedule), so a baseline trains as long as the pipeline does after its pre-training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from noisylab.config.sections.rules import used
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class BaselineConfig:
    """Plain supervised training (`--method ce`): by default the same number of supervised epochs
    as the pipeline's warm-up plus refinement, from scratch."""

    epochs: int | None = None  # None: warmup.epochs + sum(refine.epochs)
    lr: float = 1e-3  # Adam; the setting of the published Fashion-MNIST CE anchors (Yao et al. 2021)
    weight_decay: float = 0.0


def resolve(cfg: RunConfig) -> RunConfig:
    if cfg.baseline.epochs is not None:
        return cfg
    return replace(cfg, baseline=replace(cfg.baseline, epochs=cfg.warmup.epochs + sum(cfg.refine.epochs)))


def check(cfg: RunConfig) -> None:
    epochs = cfg.baseline.epochs
    if epochs is None or epochs >= 1:
        return
    if "baseline.epochs" in cfg.resolved:
        raise UserError(
            f"{cfg.method} trains for baseline.epochs, by default warmup.epochs + sum(refine.epochs) = "
            f"{epochs}: set baseline.epochs to 1 or more"
        )
    raise UserError(f"baseline.epochs must be ≥ 1, got {epochs}")


def baseline_epochs(cfg: RunConfig) -> int:
    """The run's whole budget in epochs (a method listed for this section in `SECTIONS`)."""
    return used(cfg.baseline.epochs, "baseline.epochs")
