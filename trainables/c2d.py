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

Budget after pre-training: `baseline.epochs` in all, warm-up included, with `baseline.lr`/`weight_decay`
and the run's optimiser, as DivideMix here; so `c2d` against `dividemix` measures the self-supervised
initialisation (and the shorter, clipped warm-up) alone. `pretrain.method=none` leaves DivideMix with
C2D's warm-up. The C2D README's CIFAR-10 symmetric-noise figures (PreAct ResNet-18, 20/50/80/90 %):
DivideMix 95.7/94.4/92.9/75.4 → C2D 96.23/95.15/94.30/93.42 (`platform/published.csv`).
"""

from __future__ import annotations

from typing import Any

import torch

from noisylab.config.run import RunConfig
from noisylab.train.engine import Step
from noisylab.train.runtime import Context, TrainState
from noisylab.train.twins import pretrain_shared_encoder
from noisylab.trainables.dividemix import DivideMixMethod
from noisylab.trainables.paper import pretrain_steps


class C2DMethod(DivideMixMethod):
    """DivideMix's state and divided epochs behind a shared SimCLR encoder and a clipped warm-up."""

    name = "c2d"

    def schedule(self, cfg: RunConfig) -> list[Step]:
        return pretrain_steps(cfg) + super().schedule(cfg)  # DivideMix's, after the SimCLR epochs

    def warmup_epochs(self, cfg: RunConfig) -> int:
        return cfg.c2d.warmup_epochs

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        if step.phase == "pretrain":
            return pretrain_shared_encoder(ctx, step, index, optimizer)
        return super().run_step(step, index, ctx, state, optimizer)  # DivideMix, warm-up clipped

    def warmup_grad_clip(self, cfg: RunConfig) -> float:
        return cfg.c2d.grad_clip


def c2d_method() -> C2DMethod:
    return C2DMethod()
