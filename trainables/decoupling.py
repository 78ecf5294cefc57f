"""Decoupling (Malach & Shalev-Shwartz 2017, "Decoupling 'when to update' from 'how to update'",
NeurIPS): update by disagreement.

Two networks h1, h2, initialised independently, see the same mini-batches. Algorithm 1: for each
mini-batch, U = {(x, ỹ) : h1(x) ≠ h2(x)} (arg-max predictions), and BOTH networks take their update step
on U alone. While the networks are weak they disagree often and learn from the labels as CE would; once
they agree on a sample, its label, right or wrong, no longer moves them, so the noisy labels that a
network would memorise late in training are mostly never trained on.

Each network's loss is its cross entropy summed over U and divided by max(|U|, f·B) (B: the batch on this
worker, f = `decoupling.min_batch_fraction`), the official code's normalisation (emalach/
UpdateByDisagreement, `min_batch_size` = 0.1): a batch where few samples disagree takes a proportionally
smaller step. f = 0 is Algorithm 1's plain mean over U. A batch with no disagreement has loss 0 and zero
gradients, with no branch on tensor values (the masked sum is 0 and its divisor at least 1). The
optimiser still steps on those zero gradients: Adam's moments from earlier batches move the weights a
little, as in any method's step; SGD without momentum and weight decay would not move.

The first `decoupling.warmup_epochs` epochs update on every sample (the official code's `init_iter`; 0 by
default there and in Algorithm 1). Predictions come from the training forward pass itself (augmented
images, batch statistics), as in the official code: one stacked forward per batch serves the decision and
the update. Budget, learning rate and optimiser: the baseline's (`baseline.*`, `optimizer`), like `ce`.

Both networks are one `TwinNetwork` (one forward, one optimiser, one checkpoint). `test_acc` is the
ensemble's (arg-max of the mean logits); `test_acc_net1` / `test_acc_net2` each network's (the paper
reports one network's accuracy).

Epoch metrics (against the clean labels: diagnostics only, never read by training):
`disagree_fraction` (share of samples where the two networks' predictions differ), `update_fraction`
(share of samples the networks were updated on: 1 in warm-up, else the disagreeing share),
`update_noisy_share` (share of those updates made on samples whose given label is wrong; None when there
was no update) beside `seen_noisy_share` (the same share over every sample seen: the data's noise rate).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from noisylab.config.run import RunConfig
from noisylab.config.sections.baseline import baseline_epochs
from noisylab.train import losses
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, Step
from noisylab.train.runtime import Context, Trained, TrainState, train_one_epoch
from noisylab.train.twins import MEMBERS, both, evaluate_twin


def disagreement(logits: Tensor) -> Tensor:
    """Where the two members' predictions differ: logits [2, B, K] -> bool [B], arg-max₁ ≠ arg-max₂."""
    predicted = logits.detach().argmax(dim=2)  # (2, B)
    return predicted[0] != predicted[1]


def disagreement_loss(per_sample: Tensor, update: Tensor, *, min_count: float = 1.0) -> Tensor:
    """The two networks' update on the samples flagged in `update`.

    per_sample: float [2, B], member m's loss on sample b (with gradients); update: bool [B]. Returns

        L = Σ_m Σ_b update_b · ℓ_m(b) / max(Σ_b update_b, min_count)

    (the sum of the members' losses: with one optimiser over both, each member gets the gradient of its
    own term). Samples not flagged get exactly zero gradient; with none flagged, L = 0. `min_count` ≥ 1.
    """
    if per_sample.dim() != 2 or per_sample.shape[0] != MEMBERS or update.shape != per_sample.shape[1:]:
        raise ValueError(
            f"disagreement_loss needs losses [2, B] and a mask [B], got {tuple(per_sample.shape)} and "
            f"{tuple(update.shape)}"
        )
    if min_count < 1.0:
        raise ValueError(f"min_count must be ≥ 1, got {min_count}")
    mask = update.to(per_sample.dtype)  # (B,)
    count = mask.sum().clamp(min=min_count)
    # where(), not a product: a non-finite loss on a sample not updated on must not leak NaN through 0·inf
    masked = torch.where(update, per_sample, torch.zeros_like(per_sample))  # (2, B)
    return masked.sum() / count


class DecouplingMethod:
    name = "decoupling"
    networks = 2  # the worker builds a TwinNetwork

    def schedule(self, cfg: RunConfig) -> list[Step]:
        n, b = baseline_epochs(cfg), cfg.baseline
        return [Step("train", e, n, b.lr, b.weight_decay) for e in range(1, n + 1)]

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()  # never changed: Decoupling chooses when, not what

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        assert state.labels is not None
        warm = step.epoch <= ctx.cfg.decoupling.warmup_epochs
        trained = train_one_epoch(ctx, step, index, optimizer, self.loss_fn(ctx, state.labels, warm=warm))
        metrics = trained.metrics | update_metrics(trained)
        if ctx.cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate_twin(ctx)
        return metrics

    @staticmethod
    def loss_fn(ctx: Context, labels: Tensor, *, warm: bool) -> BatchFn:
        """Both members on the same weakly augmented batch (one stacked forward); the update on the
        samples where their arg-max predictions differ (on every sample when `warm`)."""
        device = ctx.train_images.device
        fraction = ctx.cfg.decoupling.min_batch_fraction

        def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
            x = ctx.augmenter.weak(ctx.train_images[idx.to(device)], gen)  # (B, C, H, W)
            y = labels[idx].to(device)
            logits = ctx.model(both(x))  # (2, B, K)
            per_sample = torch.stack([losses.cross_entropy(logits[m], y) for m in range(MEMBERS)])  # (2, B)
            disagree = disagreement(logits)  # (B,)
            update = torch.ones_like(disagree) if warm else disagree
            loss = disagreement_loss(per_sample, update, min_count=max(fraction * len(idx), 1.0))
            wrong = (labels[idx] != ctx.clean_labels[idx]).to(device)  # (B,) diagnostics only
            counts = {
                "seen": torch.tensor(float(len(idx))),
                "disagree": disagree.sum(),
                "updated": update.sum(),
                "wrong_updated": (update & wrong).sum(),
                "wrong_seen": wrong.sum(),
            }  # 0-d tensors, left where they are: the engine sums them and reads them once per epoch
            return BatchOut(loss, MEMBERS * len(idx), metrics=counts)

        return fn


def update_metrics(trained: Trained) -> dict[str, float | None]:
    """The epoch's disagreement diagnostics from the summed batch counts (all ranks)."""
    s = trained.sums
    seen, updated = s["seen"], s["updated"]
    return {
        "disagree_fraction": s["disagree"] / seen,
        "update_fraction": updated / seen,
        "update_noisy_share": s["wrong_updated"] / updated if updated else None,
        "seen_noisy_share": s["wrong_seen"] / seen,
    }


def decoupling_method() -> DecouplingMethod:
    return DecouplingMethod()
