"""`--method selfie` (Song, Kim, Lee 2019, "SELFIE: Refurbishing Unclean Samples for Robust Deep Learning",
ICML): after a warm-up, each batch is trained on the union of its small-loss samples and of the samples
whose recent predictions agree so well that they are "refurbishable", the latter with their most frequent
prediction as label.

Where the numbers come from: the paper's §4 and the public code `kaist-dmlab/SELFIE` (`SELFIE/main.py`:
history q = 15, uncertainty threshold ε = 0.05, warm-up 25 of 100 epochs; README: restart = 2; the
selection in `SELFIE/method/self_correcter.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.sections.rules import nominal_rate
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig

PAPER_HISTORY = 15  # q of the paper's grid search (§4.5) and of `main.py`
PAPER_WARMUP_SHARE = 0.25  # 25 warm-up epochs of 100 (`main.py`)


@dataclass(frozen=True)
class SelfieConfig:
    """`--method selfie`: budget and optimiser are the baseline's (`baseline.*`, `optimizer`)."""

    # q: predictions per sample kept (one per epoch). None: the paper's 15, capped at the warm-up epochs
    # (the official code refuses q > warm-up: every history must be full when refurbishing starts).
    history: int | None = None
    # ε: a sample is refurbishable when the normalised entropy of its history is ≤ ε (paper: 0.05; with
    # q = 15 and 10 classes only a constant history passes, a single dissent already gives 0.106).
    threshold: float = 0.05
    # τ: each batch keeps its ⌈(1 − τ)·B⌉ samples of smallest loss as clean (the official code's ceil).
    # None: the run's noise rate (the paper gives SELFIE the true rate, as Co-teaching); label files have
    # no rate before the run, so set it (the paper estimated 8 % for ANIMAL-10N).
    noise_rate: float | None = None
    # Epochs of plain cross entropy on the noisy labels before refurbishing starts (the histories fill
    # meanwhile). None: a quarter of the budget, rounded (the paper's 25 of 100).
    warmup_epochs: int | None = None
    # Further rounds from freshly initialised weights: each round repeats the whole budget (warm-up, then
    # SELFIE) with empty histories, keeping the labels refurbished so far. The paper uses 2, i.e. three times
    # `ce`'s epochs; the default 0 keeps the budget of the other baselines.
    restarts: int = 0


def resolve(cfg: RunConfig) -> RunConfig:
    """`cfg` with the None fields of `selfie` set to the values the run uses (idempotent)."""
    s = cfg.selfie
    warmup = s.warmup_epochs
    if warmup is None:
        warmup = max(1, round(PAPER_WARMUP_SHARE * baseline_epochs(cfg)))
    history = s.history if s.history is not None else min(PAPER_HISTORY, warmup)
    rate = s.noise_rate if s.noise_rate is not None else nominal_rate(cfg)
    return replace(cfg, selfie=replace(s, warmup_epochs=warmup, history=history, noise_rate=rate))


def check(cfg: RunConfig) -> None:
    """Checks a resolved config."""
    s = cfg.selfie
    if s.history is not None and s.history < 1:
        raise UserError(f"selfie.history must be ≥ 1, got {s.history}")
    if not 0.0 <= s.threshold <= 1.0:
        raise UserError(f"selfie.threshold must lie in [0, 1] (a normalised entropy), got {s.threshold}")
    if s.noise_rate is not None and not 0.0 <= s.noise_rate < 1.0:
        raise UserError(f"selfie.noise_rate must lie in [0, 1), got {s.noise_rate}")
    if s.restarts < 0:
        raise UserError(f"selfie.restarts must be ≥ 0, got {s.restarts}")
    if s.warmup_epochs is not None and s.warmup_epochs < 1:
        raise UserError(f"selfie.warmup_epochs must be ≥ 1, got {s.warmup_epochs}")
    from noisylab.config.variants import base_method

    if base_method(cfg.method) != "selfie":
        return
    if s.noise_rate is None:
        raise UserError(
            "selfie needs selfie.noise_rate with label-file noise (its noise rate is unknown before the "
            "run): add e.g. --set selfie.noise_rate=0.2"
        )
    total = baseline_epochs(cfg)
    if s.warmup_epochs is not None and s.warmup_epochs >= total:
        raise UserError(
            f"selfie.warmup_epochs ({s.warmup_epochs}) leaves no SELFIE epoch of the run's {total}: set it "
            f"below {total} or raise baseline.epochs"
        )
    if s.history is not None and s.warmup_epochs is not None and s.history > s.warmup_epochs:
        raise UserError(
            f"selfie.history ({s.history}) is longer than selfie.warmup_epochs ({s.warmup_epochs}): the "
            "histories must fill during the warm-up; lower selfie.history or raise selfie.warmup_epochs"
        )


def settings(cfg: RunConfig) -> SelfieConfig:
    """The section with every field the run uses filled in (`resolve` applied)."""
    return resolve(cfg).selfie
