"""`--method mentornet` (Jiang, Zhou, Leung, Li, Fei-Fei 2018, "MentorNet: Learning Data-Driven Curriculum
for Very Deep Neural Networks on Corrupted Labels", ICML): each sample's cross entropy is weighted by a
curriculum v ∈ [0, 1] that follows the loss threshold λ, an exponential moving average of the batch's
p-th percentile loss.

Where the numbers come from: the public code `google/mentornet` (`code/utils.py` `mentornet`, the
student's flags in `code/cifar_train_mentornet.py`, the commands of `commands/train_studentnet_resnet.sh`,
the pre-defined curriculum `vstar_mentornet_pd` in `code/training_mentornet/models.py`, the mentor's
training in `code/training_mentornet/train.py`). Training progress is the share of the run's epochs done,
in [0, 1) (the code's "epoch percentage" 0..99 divided by 100).

MentorNet-PD (the default): v = 1 during the burn-in, then 1[ℓ ≤ λ] (the self-paced closed form), and
in the last tenth clip(1 − (ℓ − λ)/γ, 0, 1). MentorNet-DD (`clean_fraction` > 0): a small network,
fitted on a clean subset whose true labels the method is given, predicts v from (ℓ, ℓ − λ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class MentorNetConfig:
    """`--method mentornet`: budget and optimiser are the baseline's (`baseline.*`, `optimizer`)."""

    # p: λ follows the batch loss at this quantile (nearest rank). The official PD runs on CIFAR use 0.75
    # at 20 and 40 % noise and 0.5 at 80 %; the DD runs 0.8 / 0.6 / 0.5 at 20 / 40 / 80 %.
    percentile: float = 0.75
    # λ ← decay·λ + (1 − decay)·(batch percentile), every batch, starting from λ = 0. The student's flag
    # `loss_moving_average_decay` defaults to 0.5 and no published command changes it (the library
    # function's own default is 0.9).
    ema_decay: float = 0.5
    # Progress before which every weight is 1: `vstar_mentornet_pd` gives weight 1 at epoch percentages
    # 0..18, i.e. progress < 0.19 (the DD student forces 1 below percentage 17 through `burn_in_epoch=18`).
    burn_in: float = 0.19
    # From this progress on PD weighs by the linear self-paced curriculum clip(1 − (ℓ − λ)/γ, 0, 1)
    # instead of 1[ℓ ≤ λ] (`vstar_mentornet_pd`: epoch percentage ≥ 90). 1 turns the tail off.
    linear_from: float = 0.9
    linear_gamma: float = 1.0  # γ (= λ₂) of that tail, in loss units (nats); the official PD model's γ = 1
    # Example drop-out (Liang et al. 2016, as the official student applies it): in each batch a random
    # share `rate` of the samples gets weight 0, whatever the curriculum says. Piecewise in progress:
    # rate dropout_rates[k] until progress dropout_until[k]. The PD commands' "0.5,17,0.05,83": half of
    # every batch for the first 17 %, 5 % after. (The DD commands add "0.9,5" for the last 5 %, which the
    # official code never reaches: DD fixes the epoch it looks the rate up at to the burn-in epoch.)
    dropout_rates: tuple[float, ...] = (0.5, 0.05)
    dropout_until: tuple[float, ...] = (0.17, 1.0)  # progress where each drop-out piece ends; the last is 1
    # MentorNet-DD: this share of the training samples (drawn with the run's seed, balanced over the noisy
    # classes) has its TRUE labels revealed to the method, which fits the mentor on them. 0: MentorNet-PD,
    # no clean label is ever read. The paper's DD used a separate clean set (e.g. 5,000 CIFAR images).
    clean_fraction: float = 0.0
    mentor_hidden: int = 20  # units of the mentor's tanh layer (the official `num_fc_nodes` = 20)
    # Full-batch Adam steps of the mentor fit on the clean subset (the official mentor trains 3·10⁴
    # mini-batch steps of 32 on a dump of ~10⁵ student losses; our subset is one snapshot, far smaller).
    mentor_steps: int = 500
    mentor_lr: float = 0.1  # Adam; the official mentor's starting learning rate
    mentor_grad_clip: float = 5.0  # max global gradient norm of the mentor fit (official); 0: none


def resolve(cfg: RunConfig) -> RunConfig:
    """No field of this section depends on the run: every default is the published number."""
    return cfg


def check(cfg: RunConfig) -> None:
    m = cfg.mentornet
    if not 0.0 < m.percentile <= 1.0:
        raise UserError(f"mentornet.percentile must lie in (0, 1] (a quantile), got {m.percentile}")
    if not 0.0 <= m.ema_decay < 1.0:
        raise UserError(f"mentornet.ema_decay must lie in [0, 1), got {m.ema_decay}")
    for name, value in (("mentornet.burn_in", m.burn_in), ("mentornet.linear_from", m.linear_from)):
        if not 0.0 <= value <= 1.0:
            raise UserError(f"{name} must lie in [0, 1] (a share of the training), got {value}")
    if not m.linear_gamma > 0:
        raise UserError(f"mentornet.linear_gamma must be > 0, got {m.linear_gamma}")
    _check_dropout(m.dropout_rates, m.dropout_until)
    if not 0.0 <= m.clean_fraction < 1.0:
        raise UserError(
            f"mentornet.clean_fraction must lie in [0, 1) (0: MentorNet-PD), got {m.clean_fraction}"
        )
    for name, count in (
        ("mentornet.mentor_hidden", m.mentor_hidden),
        ("mentornet.mentor_steps", m.mentor_steps),
    ):
        if count < 1:
            raise UserError(f"{name} must be ≥ 1, got {count}")
    if not m.mentor_lr > 0:
        raise UserError(f"mentornet.mentor_lr must be > 0, got {m.mentor_lr}")
    if not m.mentor_grad_clip >= 0:
        raise UserError(
            f"mentornet.mentor_grad_clip must be ≥ 0 (0 turns clipping off), got {m.mentor_grad_clip}"
        )


def _check_dropout(rates: tuple[float, ...], until: tuple[float, ...]) -> None:
    if len(rates) != len(until) or not rates:
        raise UserError(
            f"mentornet.dropout_rates ({len(rates)} entries) and mentornet.dropout_until ({len(until)}) need "
            "one entry each per piece, at least one: e.g. --set 'mentornet.dropout_rates=[0.0]' "
            "--set 'mentornet.dropout_until=[1.0]'"
        )
    if any(not 0.0 <= r <= 1.0 for r in rates):
        raise UserError(f"mentornet.dropout_rates must lie in [0, 1], got {list(rates)}")
    if list(until) != sorted(set(until)) or until[0] <= 0.0 or until[-1] != 1.0:
        raise UserError(
            f"mentornet.dropout_until must increase within (0, 1] and end at 1.0, got {list(until)}"
        )


def is_data_driven(cfg: RunConfig) -> bool:
    """MentorNet-DD: a clean subset is given (the only case where training reads clean labels)."""
    return cfg.mentornet.clean_fraction > 0.0
