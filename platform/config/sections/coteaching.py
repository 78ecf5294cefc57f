"""`--method coteaching` (Han, Yao, Yu, Niu, Xu, Hu, Tsang, Sugiyama 2018, "Co-teaching: Robust Training of
Deep Neural Networks with Extremely Noisy Labels", NeurIPS): two networks, each updated on the small-loss
part of every batch that the other one keeps.

Paper defaults: the forget rate τ = ε, the noise rate (known in its experiments), reached linearly over
T_k = 10 epochs. Here τ is the run's nominal noise rate (the
spec's, e.g. 0.3 for `sym:0.3`; 0 for `none`); label files have no rate before the run, so they must set it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from noisylab.config.sections.rules import nominal_rate, positive, used
from noisylab.config.variants import base_method
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class CoteachingConfig:
    """`--method coteaching` (Han et al. 2018): two networks, each updated on the small-loss part of every
    batch that the OTHER one picks. Budget and optimiser: the baseline's (`baseline.*`, `optimizer`)."""

    # τ: once R(t) has ramped up, this fraction of every batch is dropped. None: the run's noise rate
    # (the paper sets τ = ε, the noise rate); label-file noise has no rate before the run, so set it.
    forget_rate: float | None = None
    gradual_epochs: int = 10  # T_k in R(t) = τ·min(t/T_k, 1), t = epochs done; the paper's T_k = 10


def resolve(cfg: RunConfig) -> RunConfig:
    c = cfg.coteaching
    rate = nominal_rate(cfg)
    if c.forget_rate is not None or rate is None:  # a label file: `check` asks for the rate
        return cfg
    return replace(cfg, coteaching=replace(c, forget_rate=rate))


def check(cfg: RunConfig) -> None:
    c = cfg.coteaching
    if c.forget_rate is not None and not 0.0 <= c.forget_rate < 1.0:
        raise UserError(f"coteaching.forget_rate must lie in [0, 1), got {c.forget_rate}")
    positive("coteaching.gradual_epochs", c.gradual_epochs, minimum=1)
    if base_method(cfg.method) == "coteaching" and c.forget_rate is None:
        raise UserError(
            "coteaching needs coteaching.forget_rate with label-file noise (its noise rate is unknown "
            "before the run): add e.g. --set coteaching.forget_rate=0.2"
        )


def forget_rate(cfg: RunConfig) -> float:
    """τ of a resolved `--method coteaching` config."""
    return used(cfg.coteaching.forget_rate, "coteaching.forget_rate")
