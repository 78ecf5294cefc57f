"""Plain training on the noisy labels with a noise-robust loss instead of cross entropy.

Each is `SupervisedMethod` (trainables/ce.py) with another per-sample loss: the budget and optimiser of
`ce` (`baseline.epochs` epochs, `baseline.lr`, `baseline.weight_decay`), the same weak augmentation,
batch size and backbone.

- `swce`: softmax-weighted cross entropy, the report's main loss, on its own (`losses.swce`;
  `loss.swce_detach`, default true: the weight p_y is a stop-gradient confidence).
- `focal`: focal loss, Lin et al. 2017, "Focal Loss for Dense Object Detection" (`losses.focal`;
  `loss.focal_gamma`, default γ = 2, the paper's value).
- `nce_mae`: the active-passive loss α·NCE + β·MAE, Ma et al. 2020, "Normalized Loss Functions for Deep
  Learning with Noisy Labels" (ICML), defaults α = 1, β = 1 (`loss.apl_alpha`, `loss.apl_beta`), the
  paper's CIFAR-10 setting. β is on the scale of the paper's code, MAE = 1 − p_y
  (`losses.MAE_APL_SCALE`; the report's Σ_c|p_c − q_c| is twice that).
"""

from __future__ import annotations

import functools

from noisylab.config.run import RunConfig
from noisylab.train import batches, losses
from noisylab.trainables.ce import SupervisedMethod


def apl_loss(cfg: RunConfig) -> batches.PerSampleLoss:
    """α·NCE + β·(1 − p_y) with α, β from `loss.apl_alpha`, `loss.apl_beta`."""
    return functools.partial(
        losses.nce_mae,
        nce_weight=cfg.loss.apl_alpha,
        mae_weight=cfg.loss.apl_beta,
        mae_scale=losses.MAE_APL_SCALE,
    )


def swce_method() -> SupervisedMethod:
    return SupervisedMethod(
        "swce",
        lambda cfg: batches.main_loss("swce", cfg.loss),
        "ce's budget with softmax-weighted cross entropy, p_y · (−log p_y), the weight p_y a stop-gradient "
        "(loss.swce_detach): the report's main loss on its own",
    )


def focal_method() -> SupervisedMethod:
    return SupervisedMethod(
        "focal",
        lambda cfg: batches.main_loss("focal", cfg.loss),
        "ce's budget with focal loss, −(1 − p_y)^γ · log p_y, γ = loss.focal_gamma = 2 (Lin et al. 2017)",
    )


def nce_mae_method() -> SupervisedMethod:
    return SupervisedMethod(
        "nce_mae",
        apl_loss,
        "ce's budget with the active-passive loss α · NCE + β · (1 − p_y), α = β = 1 (loss.apl_alpha, "
        "loss.apl_beta; Ma et al. 2020)",
    )
