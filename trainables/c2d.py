"""C2D, "Contrast to Divide" (Zheltonozhskii, Baskin, Mendelson, Bronstein, Litany 2022, "Contrast to
Divide: Self-Supervised Pre-Training for Learning with Noisy Labels", WACV).

1. SimCLR pre-training of one network (`pretrain.*`: NT-Xent, the pipeline's augmentations), whose encoder
   (backbone and projector) is loaded into both DivideMix networks; each network's classifier head is
   then initialised afresh from its own seed (`twins.pretrain_shared_encoder`).
2. A short cross-entropy warm-up of both networks (`c2d.warmup_epochs`, 5 in C2D against DivideMix's 10
   on CIFAR-10) with the gradient's global norm clipped at `c2d.grad_clip` (1.0, C2D's value): a
   pre-trained encoder fits noisy labels fast, and clipping keeps the warm-up from memorising them.
3. DivideMix unchanged after that (`dividemix.*`; trainables/dividemix.py), λ_u ramped from the first
   divided epoch.

Budget after pre-training: `baseline_epochs` in all, warm-up included, with `baseline.lr`/`weight_decay`
and the run's optimiser, as DivideMix here; so `c2d` against `dividemix` measures the self-supervised
initialisation (and the shorter, clipped warm-up) alone. `pretrain.method=none` leaves DivideMix with
C2D's warm-up. The C2D README's CIFAR-10 symmetric-noise figures (PreAct ResNet-18, 20/50/80/90 %):
DivideMix 95.7/94.4/92.9/75.4 → C2D 96.23/95.15/94.30/93.42 (`platform/published.csv`).
"""

from __future__ import annotations

from typing import Any

import torch

from noisylab.config import RunConfig
from noisylab.engine import Step
from noisylab.runtime import Context, TrainState, train_one_epoch
from noisylab.trainables.dividemix import DivideMixMethod, confidence_penalty, divided_epoch, warmup_loss
from noisylab.trainables.paper import pretrain_steps
from noisylab.twins import evaluate_twin, pretrain_shared_encoder


class C2DMethod(DivideMixMethod):
    """DivideMix's state and divided epochs behind a shared SimCLR encoder and a clipped warm-up."""

    name = "c2d"

    def schedule(self, cfg: RunConfig) -> list[Step]:
        b, warm = cfg.baseline, cfg.c2d.warmup_epochs
        rest = cfg.baseline_epochs - warm
        return (
            pretrain_steps(cfg)
            + [Step("warmup", e, warm, b.lr, b.weight_decay) for e in range(1, warm + 1)]
            + [Step("train", e, rest, b.lr, b.weight_decay) for e in range(1, rest + 1)]
        )

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        assert state.labels is not None
        cfg = ctx.cfg
        if step.phase == "pretrain":
            return pretrain_shared_encoder(ctx, step, index, optimizer)
        if step.phase == "warmup":
            loss_fn = warmup_loss(ctx, state.labels, penalty=confidence_penalty(cfg))
            metrics = train_one_epoch(ctx, step, index, optimizer, loss_fn, grad_clip=cfg.c2d.grad_clip)
        else:
            metrics = divided_epoch(step, index, ctx, state, optimizer, epochs_done=step.epoch - 1)
        if cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate_twin(ctx)
        return metrics


def c2d_method() -> C2DMethod:
    return C2DMethod()
