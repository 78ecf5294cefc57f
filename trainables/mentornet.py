"""MentorNet (Jiang, Zhou, Leung, Li, Fei-Fei 2018, "MentorNet: Learning Data-Driven Curriculum for Very
Deep Neural Networks on Corrupted Labels", ICML; code: google/mentornet).

The student (the classifier) minimises the weighted cross entropy of each batch of B samples,

    L = (1/B) Σ_i v_i · ℓ_i,   ℓ_i = −log p(ỹ_i | x_i),   v_i ∈ [0, 1] without gradient,

the official student's `reduce_mean(loss · v)` (a dropped sample still counts in B). The weights follow a
loss threshold λ: every batch, its p-th percentile loss (nearest rank, over the global batch) enters the
moving average λ ← d·λ + (1 − d)·percentile (λ₀ = 0), and then, at training progress t ∈ [0, 1):

- MentorNet-PD (pre-defined curriculum, the default; the official `vstar_mentornet_pd`, which the
  official code distils into a mentor network first, evaluated here in closed form):
    t < burn-in:            v = 1
    burn-in ≤ t < 0.9:      v = 1[ℓ ≤ λ]                       (self-paced: the paper's closed form, λ₂ = 0)
    t ≥ 0.9:                v = clip(1 − (ℓ − λ)/γ, 0, 1)      (linear self-paced curriculum, γ = λ₂)
- MentorNet-DD (data-driven, `mentornet.clean_fraction` > 0): a clean subset of the training samples is
  drawn (seeded, balanced over the noisy classes) and its TRUE labels are given to the method, the one case
  in which training reads clean labels, and only there. When training first passes the burn-in, the
  student's loss on each subset sample is scanned (no augmentation) and a mentor network is fitted to
  predict v* = 1[noisy label = true label] from (ℓ, ℓ − λ), λ there being the p-th percentile of the
  scanned losses, with the binary cross entropy (the official DD target; its data use the 90th);
  from then on v = sigmoid(mentor(ℓ, ℓ − λ)) for every training sample (the subset included, with its
  noisy label: the true labels reach the student only through the mentor), and v = 1 before.
  Simplifications of the official mentor (a bidirectional LSTM over the one-step sequence (ℓ, ℓ − λ), a
  label embedding and a fixed random epoch embedding, then 20 tanh units): here (ℓ, ℓ − λ) → 20 tanh units
  → 1. The official code feeds label 0 for every sample ("Every label is set to 0 in the current version")
  and, for DD, fixes the epoch input at the burn-in epoch, so neither carries information after burn-in;
  both are left out. The mentor is fitted once, full-batch, on one snapshot of the subset's losses, not on
  the official dump of student losses over a whole run.

Either way, after the curriculum the official example drop-out zeroes the weights of a random share of each
batch (`mentornet.dropout_rates` over `dropout_until`). The percentile, decay, burn-in, tail and drop-out
defaults are the official CIFAR-10 PD run's (see `noisylab.config.sections.mentornet`). Budget: the baseline's
(`baseline_epochs`, `baseline.lr`, `optimizer`), like `ce`; the official step-wise learning-rate decay and
the scaling of weight decay by Σv/B are left out.

State (`TrainState.extra`, so a resumed run continues exactly): λ, and for DD the subset's indices and the
mentor's parameters. λ lives on the device during an epoch and is updated in the batch function without
reading it back; it is stored at the end of the epoch.

Epoch metrics: `loss_threshold` (λ at the epoch's end), `weight_mean`, `weight_right` / `weight_wrong`
(the mean weight of the samples whose noisy label is right / wrong, against the clean labels: diagnostics
only, never read by training), `dropout_rate` (the rate at the epoch's start); for DD also
`clean_subset_size` (the number of samples whose true labels were revealed) and, in the epoch that fits it,
`mentor_fit_accuracy` (v thresholded at 1/2 against v* on the subset) and `mentor_weight_right` /
`mentor_weight_wrong` (its mean weight on the subset's right and wrong labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from noisylab.config.run import RunConfig
from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.sections.mentornet import is_data_driven
from noisylab.errors import UserError
from noisylab.train import losses
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, Step, World, derived_generator, scan
from noisylab.train.evaluation import EVAL_BATCH, evaluate
from noisylab.train.runtime import Context, TrainState, train_one_epoch

EMA_KEY = "mentornet_loss_threshold"  # λ: 0-d float tensor
SUBSET_KEY = "mentornet_clean_subset"  # DD: int64 [S], indices of the samples with revealed labels
MENTOR_KEY = "mentornet_mentor"  # DD: the mentor's parameters, {name: tensor}; absent until fitted
SUBSET_STREAM = 0x5EED_C1EA  # derived-generator key of the subset draw (independent of every other stream)
MENTOR_STREAM = 0x5EED_3E27  # derived-generator key of the mentor's initial weights


# ---- the curriculum ---------------------------------------------------------------------------------


def batch_percentile(values: Tensor, p: float) -> Tensor:
    """The nearest-rank p-quantile of a 1-d tensor: its ascending sort at rank round(p·(n − 1)), as
    `tf.contrib.distributions.percentile` (interpolation 'nearest') in the official code. 0-d, no host
    read."""
    rank = round(p * (values.numel() - 1))
    return values.sort().values[rank]


def update_threshold(ema: Tensor, value: Tensor, *, decay: float) -> None:
    """λ ← decay·λ + (1 − decay)·value, in place (the official `loss_moving_avg.assign`)."""
    ema.mul_(decay).add_(value.to(ema.dtype), alpha=1.0 - decay)


def pd_weights(
    loss: Tensor, threshold: Tensor, *, progress: float, burn_in: float, linear_from: float, gamma: float
) -> Tensor:
    """MentorNet-PD's weights [B] of the losses [B] at training progress t (a host number):
    1 while t < burn_in; 1[ℓ ≤ λ] until `linear_from`; clip(1 − (ℓ − λ)/γ, 0, 1) after."""
    if progress < burn_in:
        return torch.ones_like(loss)
    diff = loss - threshold
    if progress < linear_from:
        return (diff <= 0).to(loss.dtype)
    return (1.0 - diff / gamma).clamp(0.0, 1.0)


def dropout_rate(progress: float, rates: tuple[float, ...], until: tuple[float, ...]) -> float:
    """The example drop-out rate at progress t: rates[k] for the first k with t < until[k]."""
    return next((r for r, u in zip(rates, until, strict=True) if progress < u), rates[-1])


def example_dropout(weights: Tensor, rate: float, generator: torch.Generator) -> Tensor:
    """Keep the weights of ⌊B·(1 − rate)⌋ samples drawn uniformly without replacement, zero the rest (the
    official `probabilistic_sample(v, rate, 'random')`). The draw is on the CPU generator, so a resumed run
    draws the same samples; only the kept indices travel to the device."""
    batch = weights.numel()
    keep = math.floor(round(batch * (1.0 - rate), 9))
    kept = torch.randperm(batch, generator=generator)[:keep].to(weights.device)
    return torch.zeros_like(weights).index_fill_(0, kept, 1.0) * weights


# ---- MentorNet-DD: the mentor network -----------------------------------------------------------------


def mentor_features(loss: Tensor, threshold: Tensor | float) -> Tensor:
    """(ℓ, ℓ − λ) per sample: [B] → [B, 2]."""
    return torch.stack([loss, loss - threshold], dim=1)


def init_mentor(hidden: int, generator: torch.Generator) -> dict[str, Tensor]:
    """The mentor's parameters: 2 → `hidden` tanh units → 1 logit, weights ~ N(0, 1/fan_in)."""
    return {
        "w1": torch.randn(2, hidden, generator=generator) / math.sqrt(2.0),
        "b1": torch.zeros(hidden),
        "w2": torch.randn(hidden, 1, generator=generator) / math.sqrt(hidden),
        "b2": torch.zeros(1),
    }


def mentor_logits(params: dict[str, Tensor], features: Tensor) -> Tensor:
    """features [B, 2] → logits [B] of v: tanh(f·W₁ + b₁)·W₂ + b₂."""
    hidden = torch.tanh(features @ params["w1"] + params["b1"])  # (B, H)
    return (hidden @ params["w2"] + params["b2"]).squeeze(1)


@dataclass(frozen=True)
class MentorFit:
    steps: int
    lr: float
    grad_clip: float  # max global gradient norm; 0: none


def fit_mentor(
    features: Tensor, target: Tensor, *, hidden: int, fit: MentorFit, generator: torch.Generator
) -> dict[str, Tensor]:
    """Fit the mentor to v* ∈ {0, 1} [S] from features [S, 2]: full-batch Adam on the mean binary cross
    entropy of its logits (the official mentor's loss for binary targets). CPU, float32, seeded: every rank
    computes the same parameters."""
    params = {k: v.requires_grad_() for k, v in init_mentor(hidden, generator).items()}
    optimizer = torch.optim.Adam(params.values(), lr=fit.lr)
    x, y = features.float().cpu(), target.float().cpu()
    with torch.enable_grad():
        for _ in range(fit.steps):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(mentor_logits(params, x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if fit.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params.values(), fit.grad_clip)
            optimizer.step()
    return {k: v.detach() for k, v in params.items()}


def clean_subset(noisy: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """Indices int64 [S] of a `fraction` of the samples, drawn without replacement within each noisy class
    (round(fraction·n_c) of class c; the draw never looks at the true labels). Sorted."""
    picked = []
    for c in torch.unique(noisy).tolist():
        members = (noisy == c).nonzero().squeeze(1)
        take = round(fraction * len(members))
        picked.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.cat(picked).sort().values


# ---- the method ---------------------------------------------------------------------------------------


def gather_batch(values: Tensor, world: World) -> Tensor:
    """Every rank's batch values concatenated (all ranks' batches have one size): the global batch, on the
    device, without a host read."""
    if world.size == 1:
        return values
    parts = [torch.empty_like(values) for _ in range(world.size)]
    dist.all_gather(parts, values.contiguous())
    return torch.cat(parts)


def progress_of(at: BatchPlace) -> float:
    """Share of the run's training done before this batch, in [0, 1) (the official epoch percentage / 100)."""
    return (at.step.epoch - 1 + at.epoch_fraction) / at.step.epochs


class MentorNetMethod:
    name = "mentornet"

    def schedule(self, cfg: RunConfig) -> list[Step]:
        n, b = baseline_epochs(cfg), cfg.baseline
        return [Step("train", e, n, b.lr, b.weight_decay) for e in range(1, n + 1)]

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()  # never changed: MentorNet weighs, it does not relabel
        state.extra[EMA_KEY] = torch.zeros(())  # λ₀ = 0, as the official moving average starts
        if is_data_driven(ctx.cfg):
            gen = derived_generator(ctx.cfg.seed, SUBSET_STREAM)
            subset = clean_subset(ctx.noisy_labels, ctx.cfg.mentornet.clean_fraction, gen)
            if len(subset) < 2:
                raise UserError(
                    f"mentornet.clean_fraction {ctx.cfg.mentornet.clean_fraction} reveals {len(subset)} of "
                    f"{len(ctx.noisy_labels)} training samples: the mentor needs at least 2; raise it"
                )
            state.extra[SUBSET_KEY] = subset

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        assert state.labels is not None
        m = ctx.cfg.mentornet
        metrics: dict[str, Any] = {}
        if is_data_driven(ctx.cfg):
            metrics["clean_subset_size"] = len(state.extra[SUBSET_KEY])
            if MENTOR_KEY not in state.extra and step.epoch / step.epochs > m.burn_in:
                metrics |= self._fit_mentor(ctx, state)  # the first epoch that reaches past the burn-in
        ema = state.extra[EMA_KEY].to(ctx.world.device, torch.float32).clone()
        trained = train_one_epoch(ctx, step, index, optimizer, self.loss_fn(ctx, state, ema))
        state.extra[EMA_KEY] = ema.cpu()  # the epoch's one read of λ
        s = trained.sums
        metrics = (
            trained.metrics
            | {
                "loss_threshold": float(state.extra[EMA_KEY]),
                "weight_mean": s["weight"] / max(s["seen"], 1.0),
                "weight_right": s["weight_right"] / max(s["right"], 1.0),
                "weight_wrong": s["weight_wrong"] / max(s["seen"] - s["right"], 1.0),
                "dropout_rate": dropout_rate(
                    (step.epoch - 1) / step.epochs, m.dropout_rates, m.dropout_until
                ),
            }
            | metrics
        )
        if ctx.cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate(ctx)
        return metrics

    @staticmethod
    def loss_fn(ctx: Context, state: TrainState, ema: Tensor) -> BatchFn:
        """Weakly augmented batch, cross entropy against the noisy labels weighted by the curriculum; λ
        (`ema`, on the device) is updated in place by every batch before it weighs."""
        assert state.labels is not None
        labels, m, world = state.labels, ctx.cfg.mentornet, ctx.world
        device = ctx.train_images.device
        mentor = {k: v.to(device) for k, v in state.extra.get(MENTOR_KEY, {}).items()}
        right_all = ctx.noisy_labels == ctx.clean_labels  # (N,) diagnostics only

        def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
            x = ctx.augmenter.weak(ctx.train_images[idx.to(device)], gen)  # (B, C, H, W)
            per_sample = losses.cross_entropy(ctx.model(x), labels[idx].to(device))  # (B,)
            t = progress_of(at)
            with torch.no_grad():
                loss = per_sample.detach().float()
                update_threshold(
                    ema, batch_percentile(gather_batch(loss, world), m.percentile), decay=m.ema_decay
                )
                if t < m.burn_in or not mentor:
                    v = pd_weights(
                        loss,
                        ema,
                        progress=t,
                        burn_in=m.burn_in,
                        linear_from=m.linear_from,
                        gamma=m.linear_gamma,
                    )
                else:  # DD after burn-in (a fitted mentor exists from the first epoch past it)
                    v = torch.sigmoid(mentor_logits(mentor, mentor_features(loss, ema)))
                v = example_dropout(v, dropout_rate(t, m.dropout_rates, m.dropout_until), gen)
            right = right_all[idx].to(device)
            counts = {
                "seen": torch.tensor(float(len(idx))),  # a CPU scalar: no copy to the device
                "right": right.sum().double(),
                "weight": v.sum().double(),
                "weight_right": (v * right).sum().double(),
                "weight_wrong": (v * ~right).sum().double(),
            }  # 0-d, left on the device: summed by the engine, read once per epoch
            return BatchOut((v * per_sample).sum() / len(idx), len(idx), metrics=counts)

        return fn

    @staticmethod
    def _fit_mentor(ctx: Context, state: TrainState) -> dict[str, Any]:
        """Scan the student's loss on the clean subset (no augmentation), fit the mentor to v* there, keep
        its parameters in the state; report how well it separates the subset's right and wrong labels."""
        m = ctx.cfg.mentornet
        subset = state.extra[SUBSET_KEY]
        noisy = ctx.noisy_labels[subset]

        def loss_on_subset(logits: Tensor, idx: Tensor) -> Tensor:
            return losses.cross_entropy(logits.float(), noisy[idx].to(logits.device))

        loss = scan(
            ctx.net,
            ctx.train_images[subset.to(ctx.train_images.device)],
            transform=ctx.augmenter.plain,
            fn=loss_on_subset,
            batch_size=EVAL_BATCH,
            world=ctx.world,
            progress=ctx.progress,
            desc="mentor",
        )[:, 0]  # (S,), identical on every rank
        threshold = float(batch_percentile(loss, m.percentile))  # λ of the subset's own losses
        target = (noisy == ctx.clean_labels[subset]).float()  # v*: the revealed clean labels, used only here
        params = fit_mentor(
            mentor_features(loss, threshold),
            target,
            hidden=m.mentor_hidden,
            fit=MentorFit(m.mentor_steps, m.mentor_lr, m.mentor_grad_clip),
            generator=derived_generator(ctx.cfg.seed, MENTOR_STREAM),
        )
        state.extra[MENTOR_KEY] = params
        return mentor_report(params, mentor_features(loss, threshold), target)


def mentor_report(params: dict[str, Tensor], features: Tensor, target: Tensor) -> dict[str, float]:
    """How the fitted mentor weighs the subset it was fitted on."""
    with torch.no_grad():
        v = torch.sigmoid(mentor_logits(params, features))
    right = target > 0.5
    return {
        "mentor_fit_accuracy": float(((v > 0.5) == right).double().mean()),
        "mentor_weight_right": float(v[right].mean()) if bool(right.any()) else math.nan,
        "mentor_weight_wrong": float(v[~right].mean()) if bool((~right).any()) else math.nan,
    }


def mentornet_method() -> MentorNetMethod:
    return MentorNetMethod()
