"""`--method paper_dividemix`: the report's pipeline on top of DivideMix (trainables/paper_dividemix.py).
Schedule, thresholds and learning rates are the pipeline's (`pretrain.*`, `warmup.*`, `refine.*`),
DivideMix's division and MixMatch `dividemix.*`; this section holds the graft's own choice.

The report does not say how its SWCE enters DivideMix; the default weights MixMatch's labelled loss as SWCE
(the report trains with SWCE), `ce` keeps DivideMix's. Nothing here depends on the run's data or noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from noisylab.config.sections.rules import simclr_encoder_only
from noisylab.config.variants import base_method

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig

LabelledLoss = Literal["ce", "swce"]


@dataclass(frozen=True)
class PaperDivideMixConfig:
    """`--method paper_dividemix`: the report's pipeline on top of DivideMix (trainables/paper_dividemix.py).
    Schedule, thresholds and learning rates: `pretrain.*`, `warmup.*`, `refine.*`; DivideMix's division
    and MixMatch: `dividemix.*`."""

    # The labelled part of MixMatch: ce = DivideMix's soft cross entropy; swce = the same weighted by the
    # network's detached confidence in its target, ⟨p, t⟩ (= p_y for a one-hot target), as SWCE.
    loss: LabelledLoss = "swce"


def resolve(cfg: RunConfig) -> RunConfig:
    return cfg  # no field defaults to a rule


def check(cfg: RunConfig) -> None:
    if base_method(cfg.method) == "paper_dividemix":
        simclr_encoder_only(cfg)
