"""LSL: Kim, Lee, Lee 2024, "Learning with Structural Labels for Learning with Noisy Labels" (CVPR).

What could be read: the paper's abstract (no official code is public) and the summary of an unofficial
re-implementation built on SSR (Feng et al. 2022, "SSR: An Efficient and Robust Framework for Learning
with Unknown Label Noise", BMVC; github.com/MrChenFeng/SSR_BMVC2022, whose `main_cifar.py` was read).
The abstract: methods that "select correct labels and refine noisy ones" still overfit the noise that
is left; LSL adds "additional distribution information — structural labels", made with "a reverse
k-NN", which helps the model reach "a better feature manifold". The re-implementation: reverse k-NN over
the feature space (k = 20), each sample's current label voted into its neighbours' counts, rows
normalised into soft structural labels, an extra soft cross-entropy term (λ_st = 1) beside the
classification loss, with mixup on strong views.

One epoch here (`phase` "train"):

1. Scan (`engine.scan`, no augmentation, no gradients, sharded and all-gathered, so every rank holds the
   same result): pooled backbone features f_i [F] and classifier logits of every training sample.
   z_i = f_i / ‖f_i‖ (`lsl.features` = logits uses the normalised logits instead).
2. SSR's relabelling and selection (`lsl.selection`, as SSR's `evaluate`, from the given labels afresh
   every epoch): y_i = arg-max p_i where max p_i > θ_r (`lsl.relabel_threshold`), else the given ỹ_i.
   Selection: the `lsl.select_k` nearest neighbours of z_i by cosine similarity (itself included, as
   SSR's code) vote with their labels y_j; each class's votes are divided by its share π_c of the labels;
   i is selected when vote[y_i] / max_c vote[c] ≥ θ_s (`lsl.select_threshold`; 1: y_i wins the vote).
3. Structural labels (`structural_labels`): each sample i votes its current label y_i into the counts of
   its k nearest neighbours (`lsl.k`, cosine similarity, i itself excluded): C[j, c] = #{i : j ∈ kNN(i),
   y_i = c}, S_j = C[j] / Σ_c C[j, c]. A sample nobody counts among its neighbours (an anti-hub) has no
   votes: its S_j is the one-hot of its own current label (it then adds nothing beyond the
   classification term). The N×N similarity is never held: `nearest_neighbours` takes `lsl.chunk` rows at
   a time on the device, one top-k per block.
4. Training, one pass of the engine's epoch (N / B batches): each batch's B labelled samples are drawn
   from the selected set, class-balanced (`lsl.balanced`, weights 1 / n_c of the selected samples with
   label c, with replacement, from the engine's per-step generator); without selection, the engine's
   batch itself. Each sample enters as `lsl.views` strong views (V·B images); targets [one-hot(y) | S]
   are mixed with the images by one λ and one permutation (`mixing.mix`, λ ~ Beta(α, α), λ' = max(λ,
   1 − λ) with `lsl.keep_first`); then (`lsl_loss`)

       L = CE_soft(g(x̃), ỹ) + λ_st · CE_soft(h(x̃), S̃),

   g the classifier, h the structural head (`lsl.head` = separate: a second linear layer on the same
   pooled features; shared: h = g).

Choices made where nothing reachable says (each is a field, or named here):
- Structural head: separate by default. The abstract credits structural labels with shaping the feature
  manifold; a second head lets them do that through the shared features while the classifier keeps its
  own targets. `lsl.head=shared` fits the classifier to both (a neighbour-smoothed target).
- Voters and counts: every sample votes with its current (SSR-relabelled) label, not only the selected
  ones; the structural term is taken on the same mixed labelled batch as the classification term.
- Anti-hubs (no votes): their own label's one-hot (above). Ties of the similarity: torch's top-k order.
- Features: the backbone's pooled features (F = 8·`model.width` for ResNet-18/34, 512 at width 64),
  L2-normalised; the projection head is not used (nothing trains it here).
- Strong views: this platform's SimCLR augmentation (`lsl.view` = simclr; SSR uses padded crop, flip and
  AutoAugment's CIFAR-10 policy, which is not implemented here); `lsl.view=weak` for crop and flip.
- SSR's relabelling and k-NN selection are kept (the abstract places LSL on top of selection and
  refinement, the re-implementation on SSR, and the published numbers are SSR's level); SSR's optional
  feature-consistency term (a SimSiam loss on two views of every sample, λ_fc = 1) is left out: nothing
  read ties it to LSL and it doubles the forward passes.
- Scans use the plain (un-augmented) images; SSR extracts its features from weakly augmented ones.
- `lsl.warmup_epochs` (default 0, as SSR): first epochs of mixup on all samples against the given
  labels, without selection or structural term.

Budget, learning rate and optimiser are the baseline's (`baseline_epochs`, `baseline.lr`,
`baseline.weight_decay`, `optimizer`), constant within a phase, like every baseline here (SSR: SGD lr
0.02, momentum 0.9, weight decay 5e-4, cosine schedule, batch 128, 300 epochs, PreAct ResNet-18). Cost per
sample and epoch: V trained passes (2 by default) and one scan.

Measured here (CPU, seed 0, ResNet-18 width 8, AdamW). Fashion-MNIST IDN 30 %, `cpu-small` (1,500
images, 30 epochs): `ce` 66.2 %, `lsl` 59.8 % (SimCLR views), `lsl.view=weak` 69.3 %; with weak views the
structural labels end at 73.1 % right (the given labels 71.9 %), the selection at 95.0 % precision.
Digits (400 images, sym 30 %, 7 epochs, batch 64, lr 3e-3, k = 10, select_k = 20, weak views): `ce`
69.5 %, `lsl` 82.5 %, shared head 83.5 %, λ_st = 0 (SSR alone) 81.5 %, without selection 71.5 %, SimCLR
views 58.5 %; structural labels 82.5 % right against the given labels' 71 %. At these budgets SSR's
selection carries the gain and the SimCLR view slows learning; the structural term's own share is
within a seed's noise.

Epoch metrics (diagnostics against the clean labels, which training never reads): `structural_acc`
(share of samples whose structural label's arg-max is the clean label), `structural_clean_mass` (mean
S_i[clean_i]), `structural_acc_mislabelled` (the first over samples whose given label is wrong), beside
`noisy_label_acc` (the given labels' own accuracy) and `current_label_acc` (after relabelling);
`unvoted_fraction` (anti-hubs), `relabelled` (samples whose label differs from the given one),
`selection_size` / `_precision` / `_recall`; `loss_ce`, `loss_st` (the two terms, batch means).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisylab.config.run import RunConfig
from noisylab.config.sections.baseline import baseline_epochs
from noisylab.config.sections.lsl import LslConfig
from noisylab.train import losses, selection
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, Step, same_on_all_ranks, scan
from noisylab.train.evaluation import EVAL_BATCH, evaluate
from noisylab.train.mixing import mix
from noisylab.train.models import Network
from noisylab.train.runtime import Context, TrainState, train_one_epoch

_EMPTY_SHARE = 1e-10  # SSR's floor on a class's label share before dividing its votes by it

# ---- structural labels: reverse k-NN voting --------------------------------------------------------


def nearest_neighbours(features: Tensor, k: int, *, chunk: int) -> Tensor:
    """Indices [N, k] of each row's k most cosine-similar rows of `features` [N, D] (rows L2-normalised;
    each row is its own nearest, up to ties), most similar first. Blocks of `chunk` rows: a [chunk, N]
    similarity at a time, on the features' device."""
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in 1..{n} (the number of rows), got {k}")
    if chunk < 1:
        raise ValueError(f"chunk must be ≥ 1, got {chunk}")
    blocks = []
    for start in range(0, n, chunk):
        sim = features[start : start + chunk] @ features.T  # (C, N) cosine similarities
        blocks.append(sim.topk(k, dim=1).indices)  # (C, k)
    return torch.cat(blocks)


def without_self(neighbours: Tensor, k: int) -> Tensor:
    """The first k entries of each row of `neighbours` [N, m ≥ k + 1] that are not the row's own index:
    [N, k]. A row lists itself at most once, so k others always remain."""
    n, m = neighbours.shape
    if m < k + 1:
        raise ValueError(f"need k + 1 = {k + 1} neighbours a row to drop the sample itself, got {m}")
    others = neighbours != torch.arange(n, device=neighbours.device).unsqueeze(1)  # (N, m)
    keep = others & (others.cumsum(dim=1) <= k)  # the first k others of each row
    return neighbours[keep].view(n, k)


def reverse_knn_votes(neighbours: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Vote counts int64 [N, K]: C[j, c] = #{i : j ∈ neighbours[i], labels[i] = c}.

    `neighbours` [N, k]: sample i's k nearest neighbours (itself excluded); `labels` [N] int64. Each sample
    votes its own label into the counts of its neighbours: j's row counts the samples that have j among
    their neighbours (its reverse neighbours), by their labels.
    """
    n, k = neighbours.shape
    voter_labels = labels.to(neighbours.device).unsqueeze(1).expand(n, k)  # (N, k)
    slots = neighbours * num_classes + voter_labels  # (N, k): flat index of (receiver, class)
    return torch.bincount(slots.reshape(-1), minlength=n * num_classes).view(n, num_classes)


def structural_labels(votes: Tensor, labels: Tensor) -> Tensor:
    """Soft labels float [N, K]: each row of `votes` [N, K] normalised to sum 1; a row without votes takes
    the one-hot of its own `labels` [N]."""
    total = votes.sum(dim=1, keepdim=True)  # (N, 1)
    own = F.one_hot(labels.to(votes.device), votes.shape[1]).float()
    return torch.where(total > 0, votes.float() / total.clamp(min=1).float(), own)


# ---- SSR's relabelling and selection ---------------------------------------------------------------


def relabel(given: Tensor, probs: Tensor, threshold: float) -> Tensor:
    """SSR: the classifier's arg-max where its confidence exceeds `threshold`, else the given label.
    given [N] int64, probs [N, K] -> [N] int64."""
    confidence, predicted = probs.max(dim=1)
    return torch.where(confidence > threshold, predicted, given)


def knn_selection(neighbours: Tensor, labels: Tensor, num_classes: int, threshold: float) -> Tensor:
    """SSR's k-NN selection, bool [N]: neighbours [N, k] (the sample itself included) vote with their
    labels; each class's votes are divided by its share of `labels`; sample i is selected when
    vote[labels[i]] / max vote ≥ `threshold`."""
    labels = labels.to(neighbours.device)
    votes = F.one_hot(labels[neighbours], num_classes).sum(dim=1).double()  # (N, K)
    share = torch.bincount(labels, minlength=num_classes).double() / len(labels) + _EMPTY_SHARE  # (K,)
    balanced = votes / share
    own = balanced.gather(1, labels.unsqueeze(1)).squeeze(1)  # (N,)
    return own / balanced.max(dim=1).values >= threshold


def draw_weights(selected: Tensor, labels: Tensor, num_classes: int, *, balanced: bool) -> Tensor:
    """Sampling weights float [N] of the labelled batches: 0 outside the selection; inside it 1, or
    1 / (selected samples of the sample's class) so every class present is drawn equally often."""
    if not balanced:
        return selected.double()
    per_class = torch.bincount(labels[selected], minlength=num_classes).double()  # (K,)
    return torch.where(selected, 1.0 / per_class[labels].clamp(min=1.0), 0.0)


# ---- the loss ------------------------------------------------------------------------------------


def lsl_loss(
    logits: Tensor, structural_logits: Tensor, targets: Tensor, structural: Tensor, *, weight: float
) -> tuple[Tensor, Tensor, Tensor]:
    """L = mean CE_soft(logits, targets) + λ_st · mean CE_soft(structural_logits, structural).

    logits, structural_logits [B, K] (the same tensor when the head is shared); targets, structural
    [B, K] (mixed one-hot labels and mixed structural labels, rows summing to 1); weight = λ_st.
    Returns (L, classification term, structural term), the terms as batch means.
    """
    ce = losses.soft_cross_entropy(logits, targets).mean()
    st = losses.soft_cross_entropy(structural_logits, structural).mean()
    return ce + weight * st, ce, st


def lsl_batches(
    ctx: Context,
    *,
    labels: Tensor,
    settings: LslConfig,
    structural: Tensor | None = None,
    draw: Tensor | None = None,
) -> BatchFn:
    """Mixed strong views against mixed one-hot `labels` [N] and, when given, mixed `structural` labels
    [N, K] (on the device) weighted by λ_st. `draw` [N] (CPU): weights from which each batch's samples are
    drawn with replacement instead of the engine's batch (SSR's labelled set); None: the engine's batch."""
    device = ctx.train_images.device
    strong: Callable[[Tensor, torch.Generator], Tensor] = (
        ctx.augmenter.simclr if settings.view == "simclr" else ctx.augmenter.weak
    )
    separate = settings.head == "separate"
    k = ctx.num_classes

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        if draw is not None:
            idx = torch.multinomial(draw, len(idx), replacement=True, generator=gen)  # (B,)
        on_device = idx.to(device)
        images = ctx.train_images[on_device]
        views = torch.cat([strong(images, gen) for _ in range(settings.views)])  # (V·B, C, H, W)
        targets = F.one_hot(labels[idx], k).float().to(device)  # (B, K)
        if structural is not None:
            targets = torch.cat([targets, structural[on_device]], dim=1)  # (B, 2K): labels | structural
        x, t, _ = mix(
            views,
            targets.repeat(settings.views, 1),
            alpha=settings.alpha,
            generator=gen,
            keep_first=settings.keep_first,
        )  # (V·B, C, H, W), (V·B, K or 2K)
        if structural is None:
            ce = losses.soft_cross_entropy(ctx.model(x), t).mean()
            return BatchOut(ce, len(x), metrics={"loss_ce": ce.detach()})
        if separate:
            logits, structural_logits = ctx.model(x, structural=True).unbind(0)  # (V·B, K) each
        else:
            logits = structural_logits = ctx.model(x)
        loss, ce, st = lsl_loss(logits, structural_logits, t[:, :k], t[:, k:], weight=settings.weight)
        return BatchOut(loss, len(x), metrics={"loss_ce": ce.detach(), "loss_st": st.detach()})

    return fn


# ---- one epoch's preparation: scan, relabel, select, vote --------------------------------------------


class _PooledAndLogits(nn.Module):
    """A scan's view of a `Network`: pooled features and classifier logits side by side, [B, F + K]."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)  # the scan puts the network back in this mode

    def forward(self, x: Tensor) -> Tensor:
        feats = self.net(x, features=True)  # (B, F)
        return torch.cat([feats, self.net.head(feats)], dim=1)


@dataclass(frozen=True)
class Prepared:
    """What an epoch trains on (all identical on every rank) and what it tells about it."""

    labels: Tensor  # current labels int64 [N] (CPU)
    structural: Tensor  # structural labels float [N, K] (on the device)
    draw: Tensor | None  # sampling weights [N] of the labelled batches (CPU); None: every sample, in order
    metrics: dict[str, Any]


def prepare_epoch(ctx: Context, step: Step) -> Prepared:
    """Scan the training set, relabel and select as SSR, vote the structural labels (steps 1–3)."""
    if not isinstance(ctx.net, Network):
        raise RuntimeError(f"lsl trains one Network, not a {type(ctx.net).__name__}")
    s, k, device = ctx.cfg.lsl, ctx.num_classes, ctx.world.device
    scanned = scan(
        _PooledAndLogits(ctx.net),
        ctx.train_images,
        transform=ctx.augmenter.plain,
        fn=lambda out, idx: out,
        batch_size=EVAL_BATCH,
        world=ctx.world,
        progress=ctx.progress,
        desc=f"neighbours {step.epoch}",
    )  # (N, F + K), identical on every rank
    logits = scanned[:, -k:]
    space = logits if s.features == "logits" else scanned[:, :-k]
    z = F.normalize(space.to(device), dim=1)  # (N, D)
    n = len(z)
    given = ctx.noisy_labels
    labels = relabel(given, logits.softmax(dim=1), s.relabel_threshold) if s.selection else given.clone()
    reverse_k, select_k = min(s.k, n - 1), min(s.select_k, n)
    neighbours = nearest_neighbours(z, max(reverse_k + 1, select_k if s.selection else 1), chunk=s.chunk)
    votes = reverse_knn_votes(without_self(neighbours[:, : reverse_k + 1], reverse_k), labels, k)
    structural = structural_labels(votes, labels)  # (N, K) on the device
    draw = None
    metrics: dict[str, Any] = {}
    if s.selection:
        chosen = knn_selection(neighbours[:, :select_k], labels, k, s.select_threshold).cpu()
        if not bool(chosen.any()):  # never seen in practice; an empty set would leave nothing to draw
            chosen = torch.ones(n, dtype=torch.bool)
        if not same_on_all_ranks(chosen, ctx.world):
            raise RuntimeError("ranks disagree on the selection: the scan's all-gather is broken")
        draw = draw_weights(chosen, labels, k, balanced=s.balanced)
        metrics |= selection.set_quality(chosen, labels, ctx.clean_labels).as_metrics("selection")
    metrics |= structural_quality(structural.cpu(), votes.cpu(), labels, given, ctx.clean_labels)
    return Prepared(labels, structural, draw, metrics)


def structural_quality(
    structural: Tensor, votes: Tensor, labels: Tensor, given: Tensor, clean: Tensor
) -> dict[str, Any]:
    """Diagnostics of one epoch's labels against the clean ones (never read by training)."""
    right = structural.argmax(dim=1) == clean
    wrong_given = given != clean
    return {
        "structural_acc": float(right.double().mean()),
        "structural_clean_mass": float(structural.gather(1, clean.unsqueeze(1)).double().mean()),
        "structural_acc_mislabelled": float(right[wrong_given].double().mean())
        if bool(wrong_given.any())
        else float("nan"),
        "noisy_label_acc": float((given == clean).double().mean()),
        "current_label_acc": float((labels == clean).double().mean()),
        "relabelled": float((labels != given).sum()),
        "unvoted_fraction": float((votes.sum(dim=1) == 0).double().mean()),
    }


# ---- the method --------------------------------------------------------------------------------------


class LslMethod:
    name = "lsl"

    def model_options(self, cfg: RunConfig) -> dict[str, Any]:
        """A separate structural head is a second classifier on the network (`models.Network`)."""
        return {"structural_head": cfg.lsl.head == "separate"}

    def schedule(self, cfg: RunConfig) -> list[Step]:
        b, total, warm = cfg.baseline, baseline_epochs(cfg), cfg.lsl.warmup_epochs
        steps = [Step("warmup", e, warm, b.lr, b.weight_decay) for e in range(1, warm + 1)]
        rest = total - warm
        return steps + [Step("train", e, rest, b.lr, b.weight_decay) for e in range(1, rest + 1)]

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        s = ctx.cfg.lsl
        if step.phase == "warmup":
            trained = train_one_epoch(
                ctx, step, index, optimizer, lsl_batches(ctx, labels=ctx.noisy_labels, settings=s)
            )
            metrics = trained.metrics | {"loss_ce": trained.mean("loss_ce")}
        else:
            # Everything here derives from the checkpointed weights, so a resumed run recomputes it.
            prepared = prepare_epoch(ctx, step)
            state.labels = prepared.labels
            loss_fn = lsl_batches(
                ctx,
                labels=prepared.labels,
                settings=s,
                structural=prepared.structural,
                draw=prepared.draw,
            )
            trained = train_one_epoch(ctx, step, index, optimizer, loss_fn)
            parts = {name: trained.mean(name) for name in ("loss_ce", "loss_st")}
            metrics = prepared.metrics | trained.metrics | parts
        if ctx.cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate(ctx)
        return metrics
