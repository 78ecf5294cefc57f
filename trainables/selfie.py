"""SELFIE (Song, Kim, Lee 2019, "SELFIE: Refurbishing Unclean Samples for Robust Deep Learning", ICML;
code: kaist-dmlab/SELFIE), the selective refurbishment the report cites for its consensus step.

Every sample keeps the classes predicted for it in its last q training forwards (one per epoch, the
arg-max of the same logits the batch trains on). Its predictive uncertainty is the normalised entropy of
that history,

    F(x; q) = −(1 / log C) Σ_j P(j | x; q) log P(j | x; q),   P(j | x; q) = (1/q) Σ_t 1[ŷ_t(x) = j],

and a sample with a full history and F ≤ ε is refurbishable: its label becomes the most frequent class of
its history (the first of tied classes). A refurbished sample keeps its last refurbished label for the rest
of the run even when its history later disagrees (the official `corrected_labels` "reuse").

After `selfie.warmup_epochs` of plain cross entropy on the noisy labels, each batch of B is trained on

    U = R ∪ S,   L = (1/|U|) Σ_{i ∈ U} −log p(y'_i | x_i),

R its refurbished samples with their refurbished labels y', S its ⌈(1 − τ)·B⌉ samples of smallest cross
entropy against the noisy labels (with y' = the noisy label, or the refurbished one where there is one),
τ the noise rate. One forward over the whole batch serves the ranking, the loss and the history (the
official code runs a second forward on U alone, so BatchNorm there sees only U).

The history decides once per epoch: a sample is visited once per epoch and its own prediction enters its
history after its own batch, so the refurbished labels are computed for all samples at the epoch's start
and the epoch's predictions (written per batch into a device vector, merged over ranks with a max) enter
the ring buffer [N, q] at its end; this is the official per-batch order. Histories start empty (the
official code pads them with class 0; it needs q ≤ warm-up epochs, so they are full before refurbishing
starts), and only full histories may refurbish.

Restarts (`selfie.restarts`, paper 2): each further round re-initialises the network (the run's initial
weights) and empties the histories, keeps the refurbished labels, and trains the whole budget again:
warm-up on the noisy labels, then SELFIE with the kept refurbished labels from its first epoch. Budget per
round: the baseline's (`baseline_epochs`, `baseline.lr`, `optimizer`); the paper's step-wise learning
rate is left out, as for the other baselines.

State (`TrainState.extra`, so a resumed run continues exactly): the history ring buffer int64 [N, q]
(−1 = empty slot), the per-sample count of predictions int64 [N] (the next slot is count mod q), and the
refurbished labels int64 [N] (−1 = none). `TrainState.labels` holds the labels in effect (refurbished
where refurbished, else noisy), so `noisylab labels` and the record's label accuracy show them.

Epoch metrics of the SELFIE epochs: `refurbished` (samples with a refurbished label this epoch),
`refurbished_new` (of them, refurbished for the first time), `refurbished_precision` (share of refurbished
labels equal to the clean label), `small_loss_precision` (share of the small-loss selections whose noisy
label is right), `update_fraction` (|U| / B over the epoch) and `update_precision` (share of U whose
training label is right); all against the clean labels, diagnostics only. Every epoch:
`effective_label_acc` (share of the labels in effect that are right).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from noisylab.config.run import RunConfig
from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.sections.selfie import settings
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, Step, World
from noisylab.train.evaluation import evaluate
from noisylab.train.runtime import Context, TrainState, train_one_epoch
from noisylab.trainables.forward import reinitialise

HISTORY_KEY = "selfie_history"  # int64 [N, q]: predicted classes, a ring buffer per sample; −1 = empty
COUNT_KEY = "selfie_count"  # int64 [N]: predictions recorded since the round began
REFURBISHED_KEY = "selfie_refurbished"  # int64 [N]: refurbished label, −1 = never refurbished
NONE = -1


# ---- the mechanism: pure functions ---------------------------------------------------------------------


def class_counts(history: Tensor, num_classes: int) -> Tensor:
    """Occurrences of each class in each history: int64 [N, q] (−1 = empty) → float [N, C]."""
    filled = history >= 0
    counts = torch.zeros(history.shape[0], num_classes + 1, device=history.device)  # last column: empty slots
    slot_class = torch.where(filled, history, torch.full_like(history, num_classes))
    counts.scatter_add_(1, slot_class, torch.ones_like(history, dtype=counts.dtype))
    return counts[:, :num_classes]


def uncertainty(history: Tensor, num_classes: int) -> Tensor:
    """F(x; q) = −(1/log C) Σ_j P_j log P_j with P_j = (count of j) / q, per sample: [N, q] → float [N] in
    [0, 1] (0: every prediction the same class; 1: predictions spread evenly over all classes)."""
    q = history.shape[1]
    p = class_counts(history, num_classes) / q  # (N, C)
    return -torch.xlogy(p, p).sum(dim=1) / math.log(num_classes)  # 0·log 0 = 0


def refurbish(
    history: Tensor, count: Tensor, refurbished: Tensor, *, num_classes: int, threshold: float
) -> tuple[Tensor, Tensor]:
    """The refurbished labels after this epoch's decision: samples whose history is full (count ≥ q) and
    whose uncertainty is ≤ ε take the most frequent class of their history; the others keep theirs (−1 if
    never refurbished). Returns (labels int64 [N], refurbishable now bool [N])."""
    q = history.shape[1]
    certain = (count >= q) & (uncertainty(history, num_classes) <= threshold)
    mode = class_counts(history, num_classes).argmax(dim=1)  # first of tied classes (as numpy's argmax)
    return torch.where(certain, mode, refurbished), certain


def record_predictions(history: Tensor, count: Tensor, predictions: Tensor) -> None:
    """Append predictions int64 [N] (−1 = none this epoch) to the ring buffers, in place."""
    seen = predictions >= 0
    rows = seen.nonzero().squeeze(1)
    slots = count[rows] % history.shape[1]
    history[rows, slots] = predictions[rows]
    count[rows] += 1


def clean_count(batch: int, noise_rate: float) -> int:
    """⌈(1 − τ)·B⌉ small-loss samples kept of a batch of B (the official `np.ceil`); the product is rounded
    to 9 decimals first, so (1 − 0.3)·10 counts as 7, not 7.000…1 → 8."""
    return min(batch, math.ceil(round((1.0 - noise_rate) * batch, 9)))


def small_loss(loss: Tensor, keep: int) -> Tensor:
    """bool [B]: the `keep` samples of smallest loss (ties: the earlier sample)."""
    order = torch.argsort(loss.detach(), stable=True)[:keep]
    return torch.zeros_like(loss, dtype=torch.bool).index_fill_(0, order, True)


def selfie_loss(
    logits: Tensor, noisy: Tensor, refurbished: Tensor, *, keep: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The SELFIE update of one batch.

    logits [B, K]; noisy int64 [B]; refurbished int64 [B] (−1 = none); keep = |S|. S = the `keep` smallest
    cross entropies against the noisy labels; U = S ∪ {refurbished}; targets y' = refurbished label where
    there is one, else the noisy label; L = mean over U of −log p(y'). The mean is a masked sum (no
    data-dependent shape, so no host read). Returns (L, targets [B], S bool [B], U bool [B]).
    """
    log_p = torch.log_softmax(logits.float(), dim=1)  # (B, K)
    ce_noisy = -log_p.gather(1, noisy.unsqueeze(1)).squeeze(1)  # (B,)
    chosen = small_loss(ce_noisy, keep)
    has_label = refurbished >= 0
    targets = torch.where(has_label, refurbished, noisy)
    used = chosen | has_label
    ce = -log_p.gather(1, targets.unsqueeze(1)).squeeze(1)
    loss = (ce * used).sum() / used.sum().clamp(min=1)
    return loss, targets, chosen, used


def merge_predictions(predictions: Tensor, world: World) -> Tensor:
    """Each rank wrote the epoch's predictions of its own shard (−1 elsewhere): the element-wise max over
    ranks has every visited sample's (a sample both ranks saw, from the shard padding, keeps the larger)."""
    if world.size > 1:
        dist.all_reduce(predictions, op=dist.ReduceOp.MAX)
    return predictions


# ---- the method ---------------------------------------------------------------------------------------


class SelfieMethod:
    name = "selfie"

    def schedule(self, cfg: RunConfig) -> list[Step]:
        s, n, b = settings(cfg), baseline_epochs(cfg), cfg.baseline
        warm = s.warmup_epochs
        assert warm is not None
        rounds = s.restarts + 1
        steps = []
        for r in range(1, rounds + 1):
            it = r if rounds > 1 else 0
            steps += [Step("warmup", e, warm, b.lr, b.weight_decay, iteration=it) for e in range(1, warm + 1)]
            steps += [
                Step("selfie", e, n - warm, b.lr, b.weight_decay, iteration=it)
                for e in range(1, n - warm + 1)
            ]
        return steps

    def init_state(self, ctx: Context, state: TrainState) -> None:
        n, q = len(ctx.noisy_labels), settings(ctx.cfg).history
        assert q is not None
        state.labels = ctx.noisy_labels.clone()
        state.extra[HISTORY_KEY] = torch.full((n, q), NONE, dtype=torch.int64)
        state.extra[COUNT_KEY] = torch.zeros(n, dtype=torch.int64)
        state.extra[REFURBISHED_KEY] = torch.full((n,), NONE, dtype=torch.int64)

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        s, device = settings(ctx.cfg), ctx.world.device
        if step.phase == "warmup" and step.starts_phase and step.iteration > 1:
            reinitialise(ctx)  # a restart: fresh weights, empty histories, refurbished labels kept
            state.extra[HISTORY_KEY].fill_(NONE)
            state.extra[COUNT_KEY].zero_()
        history = state.extra[HISTORY_KEY].to(device)
        count = state.extra[COUNT_KEY].to(device)
        before = state.extra[REFURBISHED_KEY].to(device)
        metrics: dict[str, Any] = {}
        refurbished = before
        if step.phase == "selfie":
            refurbished, _ = refurbish(
                history, count, before, num_classes=ctx.num_classes, threshold=s.threshold
            )
        predictions = torch.full_like(count, NONE)  # this epoch's predictions, written by the batches
        trained = train_one_epoch(
            ctx,
            step,
            index,
            optimizer,
            self.loss_fn(ctx, step, refurbished, predictions, noise_rate=s.noise_rate),
        )
        record_predictions(history, count, merge_predictions(predictions, ctx.world))
        state.extra[HISTORY_KEY], state.extra[COUNT_KEY] = history.cpu(), count.cpu()
        state.extra[REFURBISHED_KEY] = refurbished.cpu()
        state.labels = torch.where(refurbished.cpu() >= 0, refurbished.cpu(), ctx.noisy_labels)
        metrics |= trained.metrics | {
            "effective_label_acc": float((state.labels == ctx.clean_labels).double().mean())
        }
        if step.phase == "selfie":
            metrics |= self._report(ctx, trained.sums, before.cpu(), refurbished.cpu())
        if ctx.cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate(ctx)
        return metrics

    @staticmethod
    def loss_fn(
        ctx: Context, step: Step, refurbished: Tensor, predictions: Tensor, *, noise_rate: float | None
    ) -> BatchFn:
        """Weakly augmented batch; cross entropy on the noisy labels in warm-up, the SELFIE update after.
        Every batch writes its arg-max predictions into `predictions` (device, [N]) for the histories."""
        device = ctx.train_images.device
        noisy_all, right_noisy = ctx.noisy_labels, ctx.noisy_labels == ctx.clean_labels  # right: diagnostics
        clean_all = ctx.clean_labels.to(device)  # diagnostics only
        warmup = step.phase == "warmup"

        def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
            idx_d = idx.to(device)
            x = ctx.augmenter.weak(ctx.train_images[idx_d], gen)  # (B, C, H, W)
            noisy = noisy_all[idx].to(device)
            logits = ctx.model(x)  # (B, K)
            predictions.index_copy_(0, idx_d, logits.detach().argmax(dim=1))
            if warmup:
                loss = torch.nn.functional.cross_entropy(logits.float(), noisy)
                return BatchOut(loss, len(idx))
            assert noise_rate is not None
            loss, targets, chosen, used = selfie_loss(
                logits, noisy, refurbished[idx_d], keep=clean_count(len(idx), noise_rate)
            )
            right = right_noisy[idx].to(device)
            counts = {
                "seen": torch.tensor(float(len(idx))),  # a CPU scalar: no copy to the device
                "chosen": chosen.sum(),
                "chosen_right": (chosen & right).sum(),
                "used": used.sum(),
                "used_right": (used & (targets == clean_all[idx_d])).sum(),
            }  # 0-d, left on the device: summed by the engine, read once per epoch
            return BatchOut(loss, len(idx), metrics=counts)

        return fn

    @staticmethod
    def _report(ctx: Context, sums: dict[str, float], before: Tensor, after: Tensor) -> dict[str, Any]:
        """The epoch's refurbishment and selection against the clean labels (diagnostics only)."""
        has = after >= 0
        n = int(has.sum())
        right = int((after[has] == ctx.clean_labels[has]).sum())
        return {
            "refurbished": n,
            "refurbished_new": int((has & (before < 0)).sum()),
            "refurbished_precision": right / n if n else math.nan,
            "small_loss_precision": sums["chosen_right"] / max(sums["chosen"], 1.0),
            "update_fraction": sums["used"] / max(sums["seen"], 1.0),
            "update_precision": sums["used_right"] / max(sums["used"], 1.0),
        }


def selfie_method() -> SelfieMethod:
    return SelfieMethod()
