"""Co-teaching (Han et al. 2018, "Co-teaching: Robust Training of Deep Neural Networks with Extremely
Noisy Labels", NeurIPS).

Two networks see the same mini-batches. Each ranks the batch by its own per-sample cross entropy and
keeps the ⌊(1 − R(t))·B⌋ samples with the smallest losses; each network is then updated on the samples
the OTHER network kept (the cross update), so the two filter different errors for each other. The
share dropped grows over the first epochs, while networks still fit the clean samples first:

    R(t) = τ · min(t / T_k, 1),  t = epochs done (0 in the first epoch),

the official code's schedule (its first epoch drops nothing; its T_k-th drops τ·(T_k−1)/T_k).

Paper defaults: τ = the noise rate ε (known in its experiments), T_k = 10, Adam lr 0.001, batch 128,
200 epochs, the learning rate decayed linearly to 0 from epoch 80 (and Adam's β1 from 0.9 to 0.1).
Here: `coteaching.forget_rate` (None = the run's noise rate, resolved in
`noisylab.config.sections.coteaching`;
label-file noise must set it) and `coteaching.gradual_epochs` = T_k; budget, learning rate and optimiser
are the baseline's (`baseline.epochs`, `baseline.lr` = Adam's 1e-3, `optimizer`), constant within the
run, like `ce`, so the comparison holds budget and optimiser fixed.

Both networks are one `TwinNetwork`: one stacked forward per batch, one optimiser over both (equal to
one per network: the state is per parameter), one checkpoint. Test accuracy (`test_acc`) is the
ensemble's, the arg-max of the mean of the two networks' logits; each network's own accuracy is
recorded as `test_acc_net1` / `test_acc_net2` (the official code logs the two networks separately, so
`test_acc_net1` is the figure to set beside the paper's).

Epoch metrics: `forget_rate` (R(t)), `kept_fraction` (samples kept per network / samples seen),
`kept_precision_net1`/`_net2` (share of each network's kept samples whose label is right, against the
clean labels: diagnostics only, never read by training) and `seen_precision` (the same over all).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from noisylab.config.run import RunConfig
from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.sections.coteaching import forget_rate
from noisylab.train import losses
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, Step, to_device
from noisylab.train.runtime import Context, TrainState, train_one_epoch
from noisylab.train.twins import MEMBERS, both, evaluate_twin


def drop_rate(epochs_done: int, *, tau: float, gradual_epochs: int) -> float:
    """R(t) = τ · min(t / T_k, 1): the share of each batch dropped after `epochs_done` = t epochs."""
    return tau * min(epochs_done / gradual_epochs, 1.0)


def kept_count(rate: float, batch: int) -> int:
    """⌊(1 − R)·B⌋ samples kept of a batch of B (at least 1). The product is rounded to 9 decimals
    first, so (1 − 0.2)·10 counts as 8, not 7.999…; the official code keeps int((1 − R)·B)."""
    return max(1, math.floor(round((1.0 - rate) * batch, 9)))


def coteaching_loss(per_sample: Tensor, *, keep: int) -> tuple[Tensor, Tensor]:
    """The cross update of one batch.

    per_sample: float [2, B], member m's loss on sample b (with gradients). Member m selects the `keep`
    samples of smallest loss (ties: the earlier sample); member m is trained on the selection of the
    other member 1 − m:

        L = mean_{b ∈ S_2} ℓ_1(b) + mean_{b ∈ S_1} ℓ_2(b),   S_m = the `keep` smallest of ℓ_m

    (the sum of the two networks' losses: with one optimiser over both, each network gets the gradient
    of its own term). Returns (L scalar, selections bool [2, B], row m = S_m).
    """
    members, batch = per_sample.shape
    if members != MEMBERS:
        raise ValueError(
            f"coteaching_loss needs the losses of 2 members [2, B], got {tuple(per_sample.shape)}"
        )
    if not 1 <= keep <= batch:
        raise ValueError(f"keep must lie in [1, {batch}], got {keep}")
    order = torch.argsort(per_sample.detach(), dim=1, stable=True)[:, :keep]  # (2, keep)
    selected = torch.zeros_like(per_sample, dtype=torch.bool).scatter_(1, order, True)  # (2, B)
    loss = per_sample[0][selected[1]].mean() + per_sample[1][selected[0]].mean()
    return loss, selected


class CoteachingMethod:
    name = "coteaching"
    networks = 2  # the worker builds a TwinNetwork

    def schedule(self, cfg: RunConfig) -> list[Step]:
        n, b = baseline_epochs(cfg), cfg.baseline
        return [Step("train", e, n, b.lr, b.weight_decay) for e in range(1, n + 1)]

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()  # never changed: Co-teaching selects, it does not relabel

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        assert state.labels is not None
        cfg = ctx.cfg
        rate = drop_rate(step.epoch - 1, tau=forget_rate(cfg), gradual_epochs=cfg.coteaching.gradual_epochs)
        trained = train_one_epoch(ctx, step, index, optimizer, self.loss_fn(ctx, state.labels, rate))
        seen, kept = trained.sums["seen"], trained.sums["kept"]
        metrics = trained.metrics | {
            "forget_rate": rate,
            "kept_fraction": kept / seen,
            "kept_precision_net1": trained.sums["right_kept_net1"] / kept,
            "kept_precision_net2": trained.sums["right_kept_net2"] / kept,
            "seen_precision": trained.sums["right_seen"] / seen,
        }
        if cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate_twin(ctx)
        return metrics

    @staticmethod
    def loss_fn(ctx: Context, labels: Tensor, rate: float) -> BatchFn:
        """Both members on the same weakly augmented batch (one stacked forward), the cross update of
        `coteaching_loss`; its counts against the clean labels are the batch's metrics (diagnostics)."""
        device = ctx.train_images.device

        def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
            x = ctx.augmenter.weak(ctx.train_images[to_device(idx, device)], gen)  # (B, C, H, W)
            y = to_device(labels[idx], device)
            logits = ctx.model(both(x))  # (2, B, K)
            per_sample = torch.stack([losses.cross_entropy(logits[m], y) for m in range(MEMBERS)])  # (2, B)
            keep = kept_count(rate, len(idx))
            loss, selected = coteaching_loss(per_sample, keep=keep)
            right = to_device(labels[idx] == ctx.clean_labels[idx], device)  # (B,) diagnostics only
            counts = {
                "seen": torch.tensor(float(len(idx))),
                "kept": torch.tensor(float(keep)),
                "right_kept_net1": (selected[0] & right).sum(),
                "right_kept_net2": (selected[1] & right).sum(),
                "right_seen": right.sum(),
            }  # 0-d tensors, left on the device: the engine sums them and reads them once per epoch
            return BatchOut(loss, MEMBERS * len(idx), metrics=counts)

        return fn


def coteaching_method() -> CoteachingMethod:
    return CoteachingMethod()
