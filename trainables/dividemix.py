"""DivideMix (Li, Socher, Hoi 2020, "DivideMix: Learning with Noisy Labels as Semi-supervised
Learning", ICLR).

Two networks (one `TwinNetwork`, one stacked forward per batch, one optimiser, one checkpoint):

1. Warm-up (`dividemix.warmup_epochs`): cross entropy on the noisy labels, each network on its own
   weak augmentation of the same batch; for pair (asymmetric) noise plus the confidence penalty −H(p)
   (`dividemix.confidence_penalty`, as the paper: its symmetric-noise runs go without it).
2. Every later epoch starts with the division. Each network's per-sample cross entropy is scanned
   without augmentation (sharded, all-gathered by index: every rank sees the same split), min-max
   normalised and fitted by a two-component 1-D GMM (`noisylab.train.gmm`); w = the posterior of the low-mean
   component is each sample's clean probability. Co-divide: each network trains on the split made by
   the OTHER one: labelled when w_other > p_threshold, with w_other as its refinement weight.
3. Then one pass over a shuffled order. Each batch of B samples gets two weak augmentations (2B views);
   one no-grad stacked forward gives both networks' softmax on both views. For network m:
   - co-refinement of its labelled samples: t = sharpen(w·y + (1 − w)·p̄_m, T), p̄_m the mean of its
     own predictions over the two views;
   - co-guessing for its unlabelled samples: t = sharpen(mean of both networks over both views, T);
   - MixMatch: both views with their targets, mixed with a permutation of themselves, λ ~ Beta(α, α),
     λ' = max(λ, 1 − λ) (`noisylab.train.mixing.mix`), so a mixed row stays closer to its first operand,
     which decides whether it counts as labelled;
   - L_m = L_x + λ_u·r(t)·L_u + λ_r·L_reg: L_x the soft cross entropy of the labelled rows, L_u the
     mean squared error between softmax and target of the unlabelled rows (mean over rows and
     classes, as the official code), L_reg = Σ_c π_c log(π_c / p̄_c) with π uniform and p̄ the mean
     softmax of all mixed rows; r(t) = min(t / 16, 1), t = epochs since warm-up (per batch).
   Both networks train in the same step on their own mixed batches through one stacked forward:
   L = L_1 + L_2.

Paper defaults (CIFAR, §4.1 and appendix): T = 0.5, α = 4, p_threshold = 0.5, M = 2 augmentations,
λ_r = 1, warm-up 10 epochs (CIFAR-10) / 30 (CIFAR-100), λ_u from {0, 25, 50, 150} per dataset and
noise (`noisylab.config.sections.dividemix.paper_lambda_u`), GMM with reg_covar 5e-4, 10 EM rounds, tol 1e-2;
the official code averages the last 5 epochs' normalised losses before the GMM at 90 % noise and ramps
λ_u over 16 epochs.
PreAct ResNet-18, SGD lr 0.02 (÷10 after 150 epochs), momentum 0.9, weight decay 5e-4, batch 64 (code)
/ 128 (paper), 300 epochs.

Here every one of these is a `dividemix.*` field, except the training budget: `baseline.epochs` in all
(warm-up included), `baseline.lr`/`weight_decay`, and the run's `optimizer` (AdamW by default, constant
learning rate), the same as every other method of a comparison. `--set optimizer=sgd` (momentum
`sgd_momentum` = 0.9) with `baseline.lr=0.02 baseline.weight_decay=5e-4` gives the paper's optimiser.
A fresh optimiser starts after warm-up, as at every phase change of this platform.

Differences from the official code, chosen for cost (its epoch is ≈ 7× a CE epoch on a CPU, compute-
bound: six no-grad forwards of B images and a 4B-image step, per network and per labelled batch):
one pass over all samples per epoch instead of one pass over the labelled set with the unlabelled
set cycled beside it, so labelled and unlabelled samples enter each batch in their natural proportion;
one no-grad forward of 2×2B images serves both networks' refinement and guessing (the official code
makes six separate calls per network), and it runs in training mode for both networks (the official
code evaluates the network being trained in training mode and the other in eval mode); both networks
share the two augmented views, each mixes them with its own λ and permutation. Per sample and epoch
that is 4 no-grad and 4 trained image passes plus 2 in the scan, whatever the labelled share: measured
on one CPU thread (digits, 600 images, ResNet-18 at width 8, batch 64) a divided epoch takes 1.37 s,
≈ 4.9× a one-network CE epoch (0.28 s); a warm-up epoch ≈ 2×.

Datasets the paper did not run (Fashion-MNIST, the medical sets, digits): the CIFAR-10 rule for λ_u and a
10-epoch warm-up; IDN noise follows its rate like symmetric noise. Warm-up is capped at half the run so
short runs still divide. These rules live with the settings (`noisylab.config.sections.dividemix`), which
resolve them before the run: the trainable reads the values the run's config.json records. Test accuracy is
the ensemble's (the arg-max of the members' summed logits, as the paper tests); each network's own is
`test_acc_net1` / `test_acc_net2`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from noisylab.config.run import RunConfig
from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.sections.dividemix import confidence_penalty, lambda_u, loss_window, warmup_epochs
from noisylab.config.sections.paper_dividemix import LabelledLoss
from noisylab.train import gmm, losses, selection
from noisylab.train.batches import PerSampleLoss
from noisylab.train.engine import (
    BatchFn,
    BatchOut,
    BatchPlace,
    Step,
    World,
    derived_generator,
    same_on_all_ranks,
    to_device,
)
from noisylab.train.mixing import mix
from noisylab.train.runtime import Context, TrainState, train_one_epoch
from noisylab.train.twins import MEMBERS, both, evaluate_twin, member_losses

LOSS_HISTORY = "dividemix_loss_history"  # TrainState.extra key: the last epochs' normalised losses
LAYOUT_STREAM = 0x1AB  # a key of the labelled pass's generator, apart from the epoch order's (seed, step)

# ---- pure pieces ---------------------------------------------------------------------------------


def sharpen(p: Tensor, temperature: float) -> Tensor:
    """Temperature sharpening (MixMatch, Berthelot et al. 2019): p_c^(1/T) / Σ_k p_k^(1/T) along the
    last dim. T < 1 sharpens, T = 1 is the identity, T → 0 tends to one-hot. Shapes: [..., K] → [..., K]."""
    powered = p.pow(1.0 / temperature)
    return powered / powered.sum(dim=-1, keepdim=True)


def co_divide(clean: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """clean [N, 2]: column m = member m's clean probability (its own GMM). Returns (weights, labelled)
    [N, 2] for TRAINING member m: column m is the OTHER member's probability and split (> threshold)."""
    weights = clean.flip(dims=(1,))  # (N, 2): member m trains on the division made by member 1 − m
    return weights, weights > threshold


def mixmatch_targets(
    probs: Tensor, onehot: Tensor, weights: Tensor, labelled: Tensor, *, temperature: float
) -> Tensor:
    """Targets of each member for one batch, before mixing.

    probs [2, 2, B, K]: softmax of member m on view v; onehot [B, K] the noisy labels; weights [2, B]
    the clean probability member m's division uses (the other member's); labelled [2, B] bool.

    Co-refinement (labelled): sharpen(w·y + (1 − w)·mean_v p_m,v, T) with member m's own predictions.
    Co-guessing (unlabelled): sharpen(mean_{m', v} p_m',v, T), both members over both views.
    Returns [2, B, K].
    """
    own = probs.mean(dim=1)  # (2, B, K): each member's mean over its two views
    w = weights.unsqueeze(-1)  # (2, B, 1)
    refined = sharpen(w * onehot.unsqueeze(0) + (1.0 - w) * own, temperature)  # (2, B, K)
    guessed = sharpen(probs.mean(dim=(0, 1)), temperature).unsqueeze(0)  # (1, B, K)
    return torch.where(labelled.unsqueeze(-1), refined, guessed)


def semi_supervised_loss(
    logits: Tensor, targets: Tensor, labelled: Tensor, *, labelled_loss: LabelledLoss = "ce"
) -> tuple[Tensor, Tensor]:
    """(L_x, L_u) of one member's mixed batch: logits [M, K], soft targets [M, K], labelled [M] bool.

    L_x = mean over labelled rows of −Σ_c t_c log p_c (`labelled_loss="ce"`, DivideMix), or of
    w·(−Σ_c t_c log p_c) with w = ⟨p, t⟩ detached (`"swce"`: SWCE's confidence weight p_y generalised to
    soft targets; the pipeline-on-DivideMix reading of the report). L_u = mean over unlabelled rows AND
    classes of (p_c − t_c)² (the official code's scale, which λ_u is tuned for). An empty part adds 0.
    """
    zero = logits.sum() * 0.0  # keeps the graph (and DDP's view of used parameters) when a part is empty
    lx = zero
    if bool(labelled.any()):
        rows, soft = logits[labelled], targets[labelled]
        per_row = losses.soft_cross_entropy(rows, soft)  # (L,)
        if labelled_loss == "swce":
            per_row = (torch.softmax(rows.detach(), dim=1) * soft).sum(dim=1) * per_row
        lx = per_row.mean()
    unlabelled = ~labelled
    if bool(unlabelled.any()):
        lu = (torch.softmax(logits[unlabelled], dim=1) - targets[unlabelled]).pow(2).mean()
    else:
        lu = zero
    return lx, lu


def uniform_prior_penalty(logits: Tensor) -> Tensor:
    """L_reg = Σ_c π_c log(π_c / p̄_c), π_c = 1/K and p̄ = the mean softmax over the batch [M, K]:
    KL(π ‖ p̄), 0 when the batch predicts every class equally often on average (Tanaka et al. 2018,
    used by DivideMix to keep all samples from collapsing onto one class)."""
    mean_p = torch.softmax(logits, dim=1).mean(dim=0)  # (K,)
    prior = torch.full_like(mean_p, 1.0 / mean_p.shape[0])
    return (prior * (prior.log() - mean_p.log())).sum()


def negative_entropy(logits: Tensor) -> Tensor:
    """Mean over the batch of Σ_c p_c log p_c = −H(p): added to CE it penalises confident predictions
    (Pereyra et al. 2017's confidence penalty; DivideMix's warm-up under asymmetric noise)."""
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * log_p).sum(dim=1).mean()


def rampup(epochs_done: float, rampup_epochs: int) -> float:
    """r(t) = clip(t / rampup_epochs, 0, 1), t in epochs since warm-up (fractional within an epoch)."""
    if rampup_epochs == 0:
        return 1.0
    return min(max(epochs_done / rampup_epochs, 0.0), 1.0)


# ---- the method ----------------------------------------------------------------------------------


class DivideMixMethod:
    name = "dividemix"
    networks = 2  # the worker builds a TwinNetwork

    def schedule(self, cfg: RunConfig) -> list[Step]:
        b, total, warm = cfg.baseline, baseline_epochs(cfg), self.warmup_epochs(cfg)
        steps = [Step("warmup", e, warm, b.lr, b.weight_decay) for e in range(1, warm + 1)]
        rest = total - warm
        return steps + [Step("train", e, rest, b.lr, b.weight_decay) for e in range(1, rest + 1)]

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()  # never changed: targets are refined per batch only
        state.extra[LOSS_HISTORY] = []

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        assert state.labels is not None
        cfg = ctx.cfg
        if step.phase == "warmup":
            loss_fn = warmup_loss(ctx, state.labels, penalty=confidence_penalty(cfg))
            metrics = train_one_epoch(
                ctx, step, index, optimizer, loss_fn, grad_clip=self.warmup_grad_clip(cfg)
            ).metrics
        else:
            metrics = divided_epoch(step, index, ctx, state, optimizer, epochs_done=step.epoch - 1)
        if cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate_twin(ctx)
        return metrics

    def warmup_epochs(self, cfg: RunConfig) -> int:
        """Warm-up epochs within `baseline.epochs`: `dividemix.warmup_epochs`, by default the paper's."""
        return warmup_epochs(cfg)

    def warmup_grad_clip(self, cfg: RunConfig) -> float:
        """Max gradient norm during warm-up: none in DivideMix (C2D clips)."""
        return 0.0


def divided_epoch(
    step: Step,
    index: int,
    ctx: Context,
    state: TrainState,
    optimizer: torch.optim.Optimizer,
    *,
    epochs_done: int,
    labelled_loss: LabelledLoss = "ce",
    pseudo: Tensor | None = None,
    copies: int = 0,
) -> dict[str, Any]:
    """One DivideMix epoch on `state.labels`: division (scan, GMM, co-divide), then MixMatch over every
    sample. `epochs_done`: divided epochs before this one (λ_u's ramp); `labelled_loss`, `pseudo` and
    `copies` are the pipeline's grafts (see `mixmatch_loss`); DivideMix itself uses the defaults."""
    assert state.labels is not None
    weights, labelled, metrics = divide(step, ctx, state)
    counts = labelled.sum(dim=0)  # (2,): each member's labelled set
    # The official layout needs both parts for both members; a division that labels all or nothing for
    # a member trains that epoch as one pass over every sample, which handles any split.
    official = ctx.cfg.dividemix.epoch_layout == "labelled" and bool(
        ((counts > 0) & (counts < len(labelled))).all()
    )
    if official:
        half = ctx.per_rank_batch // 2
        order = labelled_pass_order(labelled, half=half, world=ctx.world, seed=ctx.cfg.seed, step=index)
        loss_fn = labelled_pass_loss(
            ctx,
            state.labels,
            weights,
            labelled,
            epochs_done=epochs_done,
            labelled_loss=labelled_loss,
            pseudo=pseudo,
            copies=copies,
        )
        trained = train_one_epoch(ctx, step, index, optimizer, loss_fn, order=order, batch_size=4 * half)
    else:
        loss_fn = mixmatch_loss(
            ctx,
            state.labels,
            weights,
            labelled,
            epochs_done=epochs_done,
            labelled_loss=labelled_loss,
            pseudo=pseudo,
            copies=copies,
        )
        trained = train_one_epoch(ctx, step, index, optimizer, loss_fn)
    metrics["epoch_layout_labelled"] = float(official)
    parts = {name: trained.mean(name) for name in ("loss_x", "loss_u", "loss_prior")}
    return metrics | trained.metrics | {"lambda_u": lambda_u(ctx.cfg)} | parts


def divide(step: Step, ctx: Context, state: TrainState) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Scan both members against `state.labels`, fit one GMM each, co-divide: (weights [N, 2],
    labelled [N, 2], metrics)."""
    assert state.labels is not None
    d = ctx.cfg.dividemix
    scanned = member_losses(ctx, state.labels, desc=f"divide {step.epoch}")  # (N, 2)
    normalised = torch.stack([gmm.minmax_normalise(scanned[:, m]) for m in range(MEMBERS)], dim=1).float()
    window = loss_window(ctx.cfg)
    history: list[Tensor] = [*state.extra.get(LOSS_HISTORY, []), normalised][-window:]
    state.extra[LOSS_HISTORY] = history if window > 1 else []
    averaged = torch.stack(history).mean(dim=0)  # (N, 2)
    clean = torch.stack(
        [
            gmm.clean_probability(
                averaged[:, m], iterations=d.gmm_iterations, tol=d.gmm_tol, reg_covar=d.gmm_reg_covar
            )
            for m in range(MEMBERS)
        ],
        dim=1,
    )  # (N, 2): column m = member m's own division
    weights, labelled = co_divide(clean, d.p_threshold)
    if not same_on_all_ranks(labelled, ctx.world):
        raise RuntimeError("ranks disagree on the division: the scan's all-gather is broken")
    metrics: dict[str, Any] = {}
    for m in range(MEMBERS):  # the division member m MADE (it trains the other member)
        made = clean[:, m] > d.p_threshold
        metrics |= selection.set_quality(made, state.labels, ctx.clean_labels).as_metrics(
            f"division_net{m + 1}"
        )
    return weights, labelled, metrics


def warmup_loss(
    ctx: Context, labels: Tensor, *, penalty: bool, loss: PerSampleLoss = losses.cross_entropy
) -> BatchFn:
    """`loss` (CE by default) for both members, each on its own weak augmentation of the batch (one
    stacked forward); with `penalty`, plus the confidence penalty −H(p) of each member."""
    device = ctx.train_images.device

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        images = ctx.train_images[to_device(idx, device)]
        x = torch.stack([ctx.augmenter.weak(images, gen) for _ in range(MEMBERS)])  # (2, B, C, H, W)
        y = to_device(labels[idx], device)
        logits = ctx.model(x)  # (2, B, K)
        total = logits.new_zeros(())
        for m in range(MEMBERS):
            total = total + loss(logits[m], y).mean()
            if penalty:
                total = total + negative_entropy(logits[m])
        return BatchOut(total, MEMBERS * len(idx))

    return fn


def mixmatch_loss(
    ctx: Context,
    labels: Tensor,
    weights: Tensor,
    labelled: Tensor,
    *,
    epochs_done: int,
    labelled_loss: LabelledLoss = "ce",
    pseudo: Tensor | None = None,
    copies: int = 0,
) -> BatchFn:
    """One DivideMix step for both members: weights/labelled [N, 2] from `co_divide`. The batch's
    metrics are L_x, L_u and L_reg, each the mean over the members. λ_u's ramp r(t) moves within the
    epoch by the batch's place, t = `epochs_done` + the share of this epoch done, as in the official code.

    The pipeline's grafts: `labelled_loss` (see `semi_supervised_loss`); `pseudo` [N] bool with `copies`:
    each sample of the batch that carries a consensus pseudo-label and is in either member's labelled set
    enters the batch `copies` more times (fresh augmentations, same label); each member treats every
    row by its own division, so a copy a member holds unlabelled is co-guessed like its original."""
    cfg = ctx.cfg.dividemix
    device = ctx.train_images.device
    weight_u = lambda_u(ctx.cfg)

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        if pseudo is not None and copies > 0:
            chosen = pseudo[idx] & labelled[idx].any(dim=1)
            idx = torch.cat([idx, idx[chosen].repeat(copies)])  # (B + copies·P,)
        batch = len(idx)
        images = ctx.train_images[to_device(idx, device)]
        views = torch.cat([ctx.augmenter.weak(images, gen), ctx.augmenter.weak(images, gen)])  # (2B, C, H, W)
        with torch.no_grad():
            probs = torch.softmax(ctx.model(both(views)), dim=-1)  # (2, 2B, K): member, view·B + b
        onehot = F.one_hot(to_device(labels[idx], device), probs.shape[-1]).float()  # (B, K)
        mine = to_device(labelled[idx], device).T  # (2, B)
        targets = mixmatch_targets(
            probs.view(MEMBERS, 2, batch, -1),  # (member, view, B, K)
            onehot,
            to_device(weights[idx], device).T.float(),
            mine,
            temperature=cfg.temperature,
        )  # (2, B, K)
        mixed = [
            mix(views, targets[m].repeat(2, 1), alpha=cfg.alpha, generator=gen, keep_first=True)
            for m in range(MEMBERS)
        ]  # per member: inputs (2B, C, H, W), targets (2B, K), λ'
        logits = ctx.model(torch.stack([x for x, _, _ in mixed]))  # (2, 2B, K)
        ramp = rampup(epochs_done + at.epoch_fraction, cfg.rampup_epochs)
        total = logits.new_zeros(())
        parts = torch.zeros(3, dtype=torch.float64, device=logits.device)  # L_x, L_u, L_reg over members
        for m in range(MEMBERS):
            lx, lu = semi_supervised_loss(
                logits[m], mixed[m][1], mine[m].repeat(2), labelled_loss=labelled_loss
            )
            prior = uniform_prior_penalty(logits[m])
            total = total + lx + weight_u * ramp * lu + cfg.prior_weight * prior
            parts += torch.stack([lx, lu, prior]).detach().double()
        parts /= MEMBERS  # exact: a power of two
        metrics = dict(zip(("loss_x", "loss_u", "loss_prior"), parts.unbind(), strict=True))
        return BatchOut(total, MEMBERS * 2 * batch, metrics=metrics)

    return fn


def _stream(pool: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """`count` indices of `pool` [P] in shuffled passes, a fresh permutation each pass (a DataLoader
    with shuffle=True iterated again and again)."""
    parts, have = [], 0
    while have < count:
        parts.append(pool[torch.randperm(len(pool), generator=generator)])
        have += len(pool)
    return torch.cat(parts)[:count]


def labelled_pass_order(labelled: Tensor, *, half: int, world: World, seed: int, step: int) -> Tensor:
    """The official code's divided epoch as this rank's sequence of sample indices.

    labelled: bool [N, 2], column m the set member m trains on as labelled (both parts non-empty for both
    members). With h = `half` samples per rank and H = h·world per step, the epoch has
    S = ⌈max_m |L_m| / H⌉ steps (the official trains each network for ⌈|L_m| / B⌉ steps; the member with
    the smaller set cycles it here, so both step together). Step s gives each member the next H of its
    shuffled labelled samples and the next H of its unlabelled ones (cycled, re-shuffled at each pass),
    and this rank takes every world-th of each. Returns int64 [S·4h]: per step [member 1's labelled h,
    its unlabelled h, member 2's labelled h, its unlabelled h]. Every rank draws the same streams (one
    generator from seed and step), so the ranks' shares never overlap."""
    gen = derived_generator(seed, step, LAYOUT_STREAM)
    width = half * world.size
    steps = -(-int(labelled.sum(dim=0).max()) // width)  # ceil
    slots = []
    for m in range(MEMBERS):
        for part in (labelled[:, m], ~labelled[:, m]):
            stream = _stream(part.nonzero().squeeze(1), steps * width, gen).view(steps, width)
            slots.append(stream[:, world.rank :: world.size])  # (S, h): this rank's share of each step
    return torch.stack(slots, dim=1).reshape(-1)  # (S·4h,)


def labelled_pass_loss(
    ctx: Context,
    labels: Tensor,
    weights: Tensor,
    labelled: Tensor,
    *,
    epochs_done: int,
    labelled_loss: LabelledLoss = "ce",
    pseudo: Tensor | None = None,
    copies: int = 0,
) -> BatchFn:
    """One step of the official code's epoch for both members, on a batch laid out by
    `labelled_pass_order`: member m's own h labelled and h unlabelled samples, each in two weak views.

    - co-refinement of its labelled samples: t = sharpen(w·y + (1 − w)·p̄_m, T), p̄_m its own mean over
      the two views, in training mode (as the official trains `net` while refining);
    - co-guessing of its unlabelled samples: t = sharpen(mean of its own two views and the OTHER
      member's two views, T), the other member in eval mode (the official's `net2.eval()`);
    - MixMatch of the 4h rows (λ' = max(λ, 1 − λ): a row counts as labelled by its first operand, as the
      official's first 2B rows do), L_x + λ_u·r(t)·L_u + λ_r·L_reg per member, both members in one step.

    The pipeline's grafts: `labelled_loss`, and `pseudo` with `copies`: member m's labelled samples that
    carry a consensus pseudo-label enter `copies` more times (fresh views, same label); both members add
    copies for as many of them as the member with fewer has, so the stacked forward keeps one shape."""
    cfg = ctx.cfg.dividemix
    device = ctx.train_images.device
    weight_u = lambda_u(ctx.cfg)
    clean = to_device(weights, device)  # (N, 2) float, column m = member m's labelled weight
    with_copies = pseudo is not None and copies > 0

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        h = len(idx) // 4
        slots = idx.view(MEMBERS, 2, h)  # (member, labelled / unlabelled, h)
        lab, unl = slots[:, 0], slots[:, 1]  # (2, h) each
        if with_copies:
            assert pseudo is not None
            chosen = [lab[m][pseudo[lab[m]]] for m in range(MEMBERS)]
            n = min(len(c) for c in chosen)
            lab = torch.stack([torch.cat([lab[m], chosen[m][:n].repeat(copies)]) for m in range(MEMBERS)])
        rows = torch.cat([lab, unl], dim=1)  # (2, L + h): L labelled rows (copies included), h unlabelled
        n_lab, n_rows = lab.shape[1], rows.shape[1]
        images = ctx.train_images[to_device(rows.reshape(-1), device)]  # (2·R, C, H, W)
        views = torch.stack(
            [ctx.augmenter.weak(images, gen), ctx.augmenter.weak(images, gen)]
        )  # (2, 2R, ...)
        views = views.view(2, MEMBERS, n_rows, *images.shape[1:]).transpose(0, 1)  # (member, view, R, ...)
        model = ctx.model
        with torch.no_grad():
            own = torch.softmax(model(views.flatten(1, 2)), dim=-1).view(MEMBERS, 2, n_rows, -1)
            model.eval()  # the other member guesses in eval mode, as the official's net2
            crossed = views[:, :, n_lab:].flip(dims=(0,)).flatten(1, 2)  # member j sees 1 − j's unlabelled
            other = torch.softmax(model(crossed), dim=-1).view(MEMBERS, 2, h, -1).flip(dims=(0,))
            model.train()
        # other[m]: the other member's predictions on member m's unlabelled views (2, h, K)
        onehot = F.one_hot(to_device(labels[lab], device), own.shape[-1]).float()  # (2, L, K)
        w = torch.stack([clean[to_device(lab[m], device), m] for m in range(MEMBERS)]).unsqueeze(-1)
        refined = sharpen(w * onehot + (1.0 - w) * own[:, :, :n_lab].mean(dim=1), cfg.temperature)
        guessed = sharpen(torch.cat([own[:, :, n_lab:], other], dim=1).mean(dim=1), cfg.temperature)
        targets = torch.cat([refined, guessed], dim=1)  # (2, R, K)
        mine = torch.zeros(n_rows, dtype=torch.bool, device=device)
        mine[:n_lab] = True  # (R,): the labelled rows of either member
        mixed = [
            mix(
                views[m].flatten(0, 1),
                targets[m].repeat(2, 1),
                alpha=cfg.alpha,
                generator=gen,
                keep_first=True,
            )
            for m in range(MEMBERS)
        ]  # per member: inputs (2R, C, H, W), targets (2R, K), λ'
        logits = model(torch.stack([x for x, _, _ in mixed]))  # (2, 2R, K)
        ramp = rampup(epochs_done + at.epoch_fraction, cfg.rampup_epochs)
        total = logits.new_zeros(())
        parts = torch.zeros(3, dtype=torch.float64, device=logits.device)  # L_x, L_u, L_reg over members
        for m in range(MEMBERS):
            lx, lu = semi_supervised_loss(logits[m], mixed[m][1], mine.repeat(2), labelled_loss=labelled_loss)
            prior = uniform_prior_penalty(logits[m])
            total = total + lx + weight_u * ramp * lu + cfg.prior_weight * prior
            parts += torch.stack([lx, lu, prior]).detach().double()
        parts /= MEMBERS
        metrics = dict(zip(("loss_x", "loss_u", "loss_prior"), parts.unbind(), strict=True))
        return BatchOut(total, MEMBERS * 2 * n_rows, metrics=metrics)

    return fn


def dividemix_method() -> DivideMixMethod:
    return DivideMixMethod()
