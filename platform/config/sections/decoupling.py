"""`--method decoupling` (Malach & Shalev-Shwartz 2017, "Decoupling 'when to update' from 'how to
update'", NeurIPS): two networks see the same mini-batches and each is updated only on the samples where
their predictions (arg-max) disagree.

Algorithm 1 of the paper starts from two independently initialised networks and updates on
disagreements from the first step. The official code (emalach/UpdateByDisagreement, `train.py`) adds two
knobs, both kept here: `init_iter`, steps that update on every sample before the disagreement rule starts
(default 0), and `min_batch_size`, a floor on the loss's denominator as a share of the batch (default 0.1:
a batch where few samples disagree takes a proportionally smaller step). Budget, learning rate and
optimiser: the baseline's (`baseline.*`, `optimizer`), like `coteaching`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.variants import base_method
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class DecouplingConfig:
    """`--method decoupling` (Malach & Shalev-Shwartz 2017): two networks, each updated only where their
    predictions disagree. Budget and optimiser: the baseline's (`baseline.*`, `optimizer`)."""

    # Epochs at the start of the run in which both networks update on every sample (the official code's
    # `init_iter`, counted in epochs here; its default and Algorithm 1's are 0).
    warmup_epochs: int = 0
    # Each network's loss is Σ_{disagreeing} CE / max(count, f·B), B = the batch on this worker: a share
    # f of the batch (no unit); the official code's `min_batch_size` = 0.1. 0: the plain mean over the
    # disagreeing samples (Algorithm 1's update on them alone, whatever their number).
    min_batch_fraction: float = 0.1


def resolve(cfg: RunConfig) -> RunConfig:
    """Nothing to resolve: every field has a fixed default."""
    return cfg


def check(cfg: RunConfig) -> None:
    d = cfg.decoupling
    if d.warmup_epochs < 0:
        raise UserError(f"decoupling.warmup_epochs must be ≥ 0, got {d.warmup_epochs}")
    if not 0.0 <= d.min_batch_fraction <= 1.0:
        raise UserError(
            f"decoupling.min_batch_fraction must lie in [0, 1] (a share of the batch), "
            f"got {d.min_batch_fraction}"
        )
    if base_method(cfg.method) == "decoupling" and d.warmup_epochs >= baseline_epochs(cfg):
        raise UserError(
            f"decoupling.warmup_epochs ({d.warmup_epochs}) leaves no epoch of updates by disagreement in the "
            f"run's {baseline_epochs(cfg)}: set it below {baseline_epochs(cfg)} or raise baseline.epochs"
        )
