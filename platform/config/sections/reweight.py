"""`--method reweight` (Liu & Tao 2016, "Classification with Noisy Labels by Importance Reweighting",
TPAMI): cross entropy on the noisy labels, an anchor-point estimate T̂ of the transition matrix, then
cross entropy with each sample weighted by β(x, ỹ) = P(Y = ỹ | x) / P(Ỹ = ỹ | x).

The two phases, their epoch split and the anchor percentile are `forward`'s (`forward.estimate_epochs`,
`forward.train_epochs`, `forward.percentile`): the T-estimation phase is the same computation, so at
one seed `reweight` and `forward` train on the same T̂ and differ only in how phase 2 uses it. This
section holds what is reweighting's own. Defaults: the reweighting baseline of the T-Revision code
(Xia et al. 2019, xiaoboxia/T-Revision, `reweight_loss`), the implementation behind the reweighting
numbers the report quotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.sections.forward import forward_epochs
from noisylab.config.variants import base_method
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class ReweightConfig:
    """`--method reweight` (Liu & Tao 2016): forward's T estimate, then importance-weighted CE.

    Phases, epochs and anchors: `forward.*`; learning rate, weight decay: `baseline.*`."""

    # Phase 2 starts from the phase-1 network (false; T-Revision's code loads its estimation model and
    # trains on) or from the run's initial weights (true; what `forward` does).
    restart: bool = False
    # Cap on β (a ratio, no unit); 0: none. β ≤ 1/T̂[ỹ, ỹ] already, so a cap binds only where T̂ has a small
    # diagonal entry (T-Revision's code has none).
    max_weight: float = 0.0


def resolve(cfg: RunConfig) -> RunConfig:
    """Nothing to resolve: the phase split is `forward`'s, and these fields have fixed defaults."""
    return cfg


def check(cfg: RunConfig) -> None:
    r = cfg.reweight
    if not r.max_weight >= 0.0:
        raise UserError(f"reweight.max_weight must be ≥ 0 (0: no cap), got {r.max_weight}")
    if base_method(cfg.method) != "reweight":
        return
    first, second = forward_epochs(cfg)
    if first < 1 or second < 1:
        raise UserError(
            f"reweight needs at least 1 epoch in each phase, got {first} + {second} "
            f"(of {baseline_epochs(cfg)} baseline epochs): set forward.estimate_epochs and "
            "forward.train_epochs, or raise baseline.epochs"
        )
