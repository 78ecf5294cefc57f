"""The report's pipeline on top of DivideMix (`paper_dividemix`): what the report's "Our Method" cells
were made with ("The following results were obtained after implementing our pipeline on top of
Dividemix", section V).

The report names the ingredients but not the graft; this module is a RECONSTRUCTION, and every choice
below is a config field:

1. SimCLR pre-training of one backbone (`pretrain.*`, as `paper`), loaded into both DivideMix networks,
   each network's classifier head freshly initialised from its own seed (C2D's way;
   `twins.pretrain_shared_encoder`). `pretrain.method=none` starts from two random networks.
2. Warm-up of both networks with the report's warm-up: `warmup.epochs` (5) of `loss.main` (SWCE), lr
   `warmup.lr`; `warmup.loss=ce` swaps in cross entropy. DivideMix's confidence penalty is added under
   pair noise only, as in DivideMix (`dividemix.confidence_penalty`).
3. The report's `refine.iterations` (4) iterations of `refine.epochs` ([4, 7, 7, 7]) epochs at
   `refine.lrs` (1e-4, 1e-5, 1e-5, 1e-6). Every epoch is a DivideMix epoch (per-member loss scan → GMM →
   co-divide → MixMatch with co-refinement and co-guessing; `dividemix.*`) on the CURRENT labels, so a
   relabelled sample is divided, co-refined and mixed under its new label. λ_u ramps over the divided
   epochs counted across iterations. The labelled part of MixMatch is weighted as SWCE by default
   (`paper_dividemix.loss=swce`: w = ⟨p, t⟩, SWCE's p_y for soft targets), since the report trains with
   SWCE; `ce` is DivideMix's own.
4. At each stage epoch ([2, 3, 4], then [2, 5, 7]) every sample is scored, without augmentation, by
   NCE + β·MAE (`refine.selection_loss`, `refine.mae_weight`, `refine.mae_scale`) of the two networks'
   MEAN softmax against its current label, and selected below `refine.threshold`. At the iteration's
   end the samples selected at every stage take the ensemble's prediction as their label (`paper`'s
   `select_and_relabel`; labels on either scale as that docstring says).
5. Each sample that carries a consensus pseudo-label and is in either network's labelled set enters its
   batch with `refine.copies` (2) further augmented copies under the same label; each network treats a
   copy by its own division, like the original (`dividemix.mixmatch_loss`).

Choices where the report is silent: the graft points above; the ensemble (mean softmax) as the one
network the report's selection scores; a fresh optimiser per iteration (the report's per-iteration
learning rates); DivideMix's λ_u, α, T, GMM settings unchanged from `dividemix`.
"""

from __future__ import annotations

from typing import Any

import torch

from noisylab.config.sections.dividemix import confidence_penalty
from noisylab.train import batches
from noisylab.train.engine import Step
from noisylab.train.runtime import Context, TrainState, train_one_epoch
from noisylab.train.twins import both, ensemble_log_probs, evaluate_twin, pretrain_shared_encoder
from noisylab.trainables.dividemix import LOSS_HISTORY, divided_epoch, warmup_loss
from noisylab.trainables.paper import PaperMethod, select_and_relabel, warmup_loss_kind


class PaperDivideMixMethod(PaperMethod):
    """The pipeline's schedule and label state, DivideMix's epochs; `name` is "paper_dividemix" or one of
    its variants (noisylab.config.variants)."""

    networks = 2  # the worker builds a TwinNetwork

    def __init__(self, name: str = "paper_dividemix") -> None:
        super().__init__(name)

    def init_state(self, ctx: Context, state: TrainState) -> None:
        super().init_state(ctx, state)
        state.extra[LOSS_HISTORY] = []  # DivideMix's window of normalised losses

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        assert state.labels is not None and state.pseudo is not None
        cfg = ctx.cfg
        if step.phase == "pretrain":
            return pretrain_shared_encoder(ctx, step, index, optimizer)
        if step.phase == "warmup":
            loss = batches.main_loss(warmup_loss_kind(cfg), cfg.loss)
            loss_fn = warmup_loss(ctx, state.labels, penalty=confidence_penalty(cfg), loss=loss)
            metrics = train_one_epoch(ctx, step, index, optimizer, loss_fn).metrics
        else:
            done = sum(1 for s in self.schedule(cfg)[:index] if s.phase == "refine")  # for λ_u's ramp
            metrics = divided_epoch(
                step,
                index,
                ctx,
                state,
                optimizer,
                epochs_done=done,
                labelled_loss=cfg.paper_dividemix.loss,
                pseudo=state.pseudo,
                copies=cfg.refine.copies,
            )
            if step.stage is not None or step.ends_phase:
                metrics |= select_and_relabel(
                    step,
                    ctx,
                    state,
                    transform=lambda images: both(ctx.augmenter.plain(images)),
                    log_probs=ensemble_log_probs,
                )
        if cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate_twin(ctx)
        return metrics
