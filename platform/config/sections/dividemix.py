"""DivideMix's settings (Li, Socher, Hoi 2020, "DivideMix: Learning with Noisy Labels as Semi-supervised
Learning", ICLR), used by `--method dividemix` and by the methods built on its epochs: `c2d` and
`paper_dividemix` (and their variants).

Paper defaults (CIFAR, §4.1 and appendix; the official code where the paper is silent): T = 0.5, α = 4,
p_threshold = 0.5, λ_r = 1, warm-up 10 epochs (CIFAR-10) / 30 (CIFAR-100), λ_u from {0, 25, 50, 150} by
dataset and noise rate (`paper_lambda_u`), a GMM with reg_covar 5e-4, 10 EM rounds and tol 1e-2, λ_u ramped
over 16 epochs, the last 5 epochs' normalised losses averaged before the GMM at 90 % noise, and the
confidence penalty −H(p) in the warm-up under asymmetric noise only.

Four of these depend on the run, so their fields default to None and `resolve` writes the value the run
uses: the warm-up length (the paper's, at most half of `baseline.epochs`, so short runs still divide;
`dividemix` only: c2d warms up for `c2d.warmup_epochs`, paper_dividemix for `warmup.epochs`), λ_u, the
confidence penalty (pair noise) and the loss window (5 epochs at noise rates ≥ 0.9). Rules read the noise
spec's nominal rate. Datasets the paper did not run (Fashion-MNIST, the medical sets, digits) follow
CIFAR-10's rules (its 10-class setting); IDN follows its rate like symmetric noise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from noisylab.config.sections.rules import noise, positive, used
from noisylab.config.variants import base_method
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig
    from noisylab.noise import NoiseSpec

# The paper's λ_u (appendix) at the symmetric noise rates it ran; CIFAR-10's asymmetric 40 % used 0.
_PAPER_LAMBDA_U: dict[str, tuple[tuple[float, float], ...]] = {
    "cifar10": ((0.2, 0.0), (0.5, 25.0), (0.8, 25.0), (0.9, 50.0)),
    "cifar100": ((0.2, 25.0), (0.5, 150.0), (0.8, 150.0), (0.9, 150.0)),
}
_PAPER_WARMUP = {"cifar10": 10, "cifar100": 30}  # epochs
_DEFAULT_WARMUP = 10  # epochs, for datasets the paper did not run: CIFAR-10's
_AVERAGED_FROM_RATE = 0.9  # the official code averages the losses of the last epochs at 90 % noise
_AVERAGED_EPOCHS = 5  # how many epochs it averages there

EpochLayout = Literal["labelled", "all"]


@dataclass(frozen=True)
class DivideMixConfig:
    """`--method dividemix` (Li, Socher, Hoi 2020). Budget: `baseline.epochs` in all, warm-up included;
    `baseline.lr`/`weight_decay` and the run's `optimizer`. Defaults: the paper's CIFAR settings."""

    # CE epochs on both networks before the first division. None: the paper's 10 (CIFAR-10) or 30
    # (CIFAR-100; 10 for any other dataset), at most half of the run's epochs.
    warmup_epochs: int | None = None
    # λ_u, weight of the unlabelled MSE. None: the paper's value for the dataset and noise rate
    # (`paper_lambda_u` in noisylab/sections/dividemix.py); label-file noise has no rate before the
    # run, so set it.
    lambda_u: float | None = None
    p_threshold: float = 0.5  # τ: a sample is labelled when its clean probability exceeds it (paper)
    temperature: float = 0.5  # T of the sharpening p^(1/T) / Σ p^(1/T) (paper)
    alpha: float = 4.0  # MixMatch's λ ~ Beta(α, α), λ' = max(λ, 1 − λ) (paper)
    rampup_epochs: int = 16  # λ_u grows linearly from 0 over this many epochs after warm-up (official code)
    prior_weight: float = 1.0  # λ_r, weight of the uniform-prior regulariser (paper: 1)
    # Warm-up confidence penalty −H(p) (added to CE). None: on for pair (asymmetric) noise only, as in
    # the paper, whose symmetric-noise runs train without it.
    confidence_penalty: bool | None = None
    # Epochs of min-max normalised losses averaged before each GMM fit. None: 5 at noise rates ≥ 0.9,
    # else 1 (the official code averages the last 5 epochs at 90 % noise only).
    loss_window: int | None = None
    # How a divided epoch lays out its batches. labelled: the official code's. Each network passes over
    # its own labelled set in steps of batch_size / 2 labelled samples, each paired with as many of its
    # unlabelled samples (cycled), and co-guesses with the other network in eval mode; the epoch's length
    # follows the labelled share. all: one pass over every sample, labelled and unlabelled mixed as they
    # come, both networks in training mode; cheaper, but the unlabelled samples weigh less, and on
    # Fashion-MNIST under IDN 50 % it ended 6 points below the official code (BENCHMARKS.md, "DivideMix
    # parity").
    epoch_layout: EpochLayout = "labelled"
    gmm_iterations: int = 10  # EM rounds (the official code's GaussianMixture max_iter)
    gmm_tol: float = 1e-2  # stop when the mean log-likelihood changes by less (official code)
    gmm_reg_covar: float = 5e-4  # added to each component's variance, in normalised-loss units² (official)


# ---- the paper's defaults as rules ---------------------------------------------------------------


def paper_lambda_u(dataset: str, noise: NoiseSpec) -> float:
    """λ_u of the paper for `dataset` under `noise`.

    CIFAR-10: 0 at 20 % symmetric noise, 25 at 50 % and 80 %, 50 at 90 %, 0 at 40 % asymmetric.
    CIFAR-100: 25 at 20 %, 150 at 50 %, 80 % and 90 %. Other rates take the value of the nearest rate
    the paper ran (ties go up); pair noise is the paper's asymmetric noise on CIFAR-10's rule (0) and
    follows its rate on CIFAR-100's; IDN follows its rate; no noise counts as rate 0. Every dataset but
    CIFAR-100 uses CIFAR-10's rule (the paper's 10-class setting). Label files have no rate: raises.
    """
    if noise.kind == "file":
        raise ValueError("label-file noise has no rate: set dividemix.lambda_u")
    table = _PAPER_LAMBDA_U["cifar100" if dataset == "cifar100" else "cifar10"]
    if noise.kind == "pair" and dataset != "cifar100":
        return 0.0
    rate = noise.rate
    # distances rounded so a rate halfway between two (0.35) is a tie in floating point too
    nearest = min(table, key=lambda row: (round(abs(row[0] - rate), 9), -row[0]))
    return nearest[1]


def paper_warmup_epochs(dataset: str, total: int) -> int:
    """The paper's warm-up (30 epochs for CIFAR-100, else 10), at most half of a run of `total` epochs
    (at least 1), so a short run still divides."""
    return max(1, min(_PAPER_WARMUP.get(dataset, _DEFAULT_WARMUP), total // 2))


def paper_loss_window(spec: NoiseSpec) -> int:
    """5 epochs at noise rates ≥ 0.9, else 1; label files (no rate) 1."""
    return _AVERAGED_EPOCHS if spec.kind != "file" and spec.rate >= _AVERAGED_FROM_RATE else 1


def resolve(cfg: RunConfig) -> RunConfig:
    """The paper's rules for the fields left None (see the module docstring). λ_u stays None under
    label-file noise (no rate): `check` asks for it."""
    d, spec = cfg.dividemix, noise(cfg)
    if d.warmup_epochs is None and base_method(cfg.method) == "dividemix" and cfg.baseline.epochs is not None:
        d = replace(d, warmup_epochs=paper_warmup_epochs(cfg.data.dataset, cfg.baseline.epochs))
    if spec is not None:
        if d.lambda_u is None and spec.kind != "file":
            d = replace(d, lambda_u=paper_lambda_u(cfg.data.dataset, spec))
        if d.confidence_penalty is None:
            d = replace(d, confidence_penalty=spec.kind == "pair")
        if d.loss_window is None:
            d = replace(d, loss_window=paper_loss_window(spec))
    return replace(cfg, dividemix=d)


def check(cfg: RunConfig) -> None:
    d = cfg.dividemix
    for name, value, ok, rule in (
        ("dividemix.p_threshold", d.p_threshold, 0.0 < d.p_threshold < 1.0, "lie in (0, 1)"),
        ("dividemix.temperature", d.temperature, d.temperature > 0, "be > 0"),
        ("dividemix.alpha", d.alpha, d.alpha >= 0, "be ≥ 0 (0 turns mixing off)"),
        ("dividemix.lambda_u", d.lambda_u, d.lambda_u is None or d.lambda_u >= 0, "be ≥ 0"),
        ("dividemix.rampup_epochs", d.rampup_epochs, d.rampup_epochs >= 0, "be ≥ 0"),
        ("dividemix.prior_weight", d.prior_weight, d.prior_weight >= 0, "be ≥ 0"),
        ("dividemix.gmm_tol", d.gmm_tol, d.gmm_tol >= 0, "be ≥ 0"),
        ("dividemix.gmm_reg_covar", d.gmm_reg_covar, d.gmm_reg_covar > 0, "be > 0"),
    ):
        if not ok:
            raise UserError(f"{name} must {rule}, got {value}")
    positive("dividemix.gmm_iterations", d.gmm_iterations, minimum=1)
    if d.loss_window is not None:
        positive("dividemix.loss_window", d.loss_window, minimum=1)
    if d.warmup_epochs is not None:
        positive("dividemix.warmup_epochs", d.warmup_epochs, minimum=1)
    base = base_method(cfg.method)
    if base not in ("dividemix", "c2d", "paper_dividemix"):
        return
    if base == "dividemix":
        total = cfg.baseline.epochs
        if total is not None and total < 2:
            raise UserError(
                f"dividemix needs at least 2 epochs (warm-up, then division), got {total}: "
                "raise baseline.epochs"
            )
        if total is not None and d.warmup_epochs is not None and d.warmup_epochs >= total:
            raise UserError(
                f"dividemix.warmup_epochs ({d.warmup_epochs}) leaves no divided epoch of the run's {total}: "
                f"set it below {total} or raise baseline.epochs"
            )
    if d.lambda_u is None:
        raise UserError(
            f"{cfg.method} needs dividemix.lambda_u with label-file noise (the paper's value depends on the "
            "noise rate, unknown before the run): add e.g. --set dividemix.lambda_u=25"
        )


# ---- the resolved values, as the trainables read them ------------------------------------------------


def warmup_epochs(cfg: RunConfig) -> int:
    """`--method dividemix`'s warm-up epochs within `baseline.epochs`."""
    return used(cfg.dividemix.warmup_epochs, "dividemix.warmup_epochs")


def lambda_u(cfg: RunConfig) -> float:
    return used(cfg.dividemix.lambda_u, "dividemix.lambda_u")


def loss_window(cfg: RunConfig) -> int:
    """Epochs of normalised losses averaged before the GMM."""
    return used(cfg.dividemix.loss_window, "dividemix.loss_window")


def confidence_penalty(cfg: RunConfig) -> bool:
    """Whether the warm-up adds the confidence penalty −H(p)."""
    return used(cfg.dividemix.confidence_penalty, "dividemix.confidence_penalty")
