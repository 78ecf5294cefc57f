"""The report's pipeline ("Improving Training For Noisy Labels").

1. SimCLR pre-training (`pretrain.epochs`, NT-Xent on two augmented views; projection head), or BYOL
   with `pretrain.method=byol` (noisylab.train.byol; the `paper_byol` variant).
2. Warm-up: `warmup.epochs` of softmax-weighted cross-entropy (SWCE), Adam lr 1e-4, weight decay 0.03.
3. `refine.iterations` refinement iterations (defaults 4 × [4, 7, 7, 7] epochs, Adam lr 1e-4, 1e-5,
   1e-5, 1e-6). Each trains with SWCE on the current labels; at each stage epoch ([2, 3, 4], then
   [2, 5, 7]) every sample is scored without augmentation by NCE + MAE against its current label and
   selected when the score is below `refine.threshold` (1.0 CIFAR, 0.25 medical). Samples selected at
   every stage of the iteration take the model's prediction (at the iteration's last epoch) as their
   label; the rest keep theirs. From then on each pseudo-labelled sample enters its batch with
   `refine.copies` (2) further augmented copies under the same label.

Choices where the report is silent, named here and in `config.py`: a fresh Adam per phase and per
iteration; "pseudo-labelled" means labelled by any consensus so far (its label is a prediction);
the selection scan uses the current labels (after earlier iterations' relabelling).

The scale of NCE+MAE is a field (`refine.mae_scale`): the report writes MAE = Σ|p − q| = 2(1 − p_y),
under which a sample selected at threshold 1 has p_y > 1/2, so its prediction already is its label and
consensus never relabels; the Active-Passive-Losses code it cites uses 1 − p_y, under which it does
(the `paper_apl` variant). The pre-training, selection and relabelling here also serve
`paper_dividemix` (the pipeline on top of DivideMix), which scores the two networks' mean softmax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from noisylab.config.run import MainLoss, RunConfig
from noisylab.train import batches, byol, selection
from noisylab.train.engine import BatchFn, Step, same_on_all_ranks, scan
from noisylab.train.evaluation import EVAL_BATCH, evaluate
from noisylab.train.runtime import Context, TrainState, train_one_epoch


def pretrain_steps(cfg: RunConfig) -> list[Step]:
    """The pre-training epochs (none with `pretrain.method=none`)."""
    p = cfg.pretrain
    if p.method == "none":
        return []
    return [Step("pretrain", e, p.epochs, p.lr, p.weight_decay) for e in range(1, p.epochs + 1)]


def pipeline_schedule(cfg: RunConfig, *, pretrain: bool = True) -> list[Step]:
    """Pre-training, warm-up and refinement epochs as one flat schedule."""
    w, r = cfg.warmup, cfg.refine
    steps = pretrain_steps(cfg) if pretrain else []
    steps += [Step("warmup", e, w.epochs, w.lr, w.weight_decay) for e in range(1, w.epochs + 1)]
    for it, (epochs, stages, lr) in enumerate(zip(r.epochs, r.stages, r.lrs, strict=True), start=1):
        for e in range(1, epochs + 1):
            stage = stages.index(e) + 1 if e in stages else None
            steps.append(Step("refine", e, epochs, lr, r.weight_decay, iteration=it, stage=stage))
    return steps


def warmup_loss_kind(cfg: RunConfig) -> MainLoss:
    """The loss of the warm-up: `loss.main`, or CE with `warmup.loss=ce`."""
    return "ce" if cfg.warmup.loss == "ce" else cfg.loss.main


def pretrain_loss(ctx: Context, *, member: int | None = None) -> BatchFn:
    """SimCLR's NT-Xent on two views per image; `member` pre-trains one member of a TwinNetwork."""
    return batches.simclr(ctx, temperature=ctx.cfg.pretrain.temperature, member=member)


class PaperMethod:
    """The pipeline; `name` is "paper" or one of its variants (noisylab.config.variants), which differ only in
    their config defaults."""

    def __init__(self, name: str = "paper") -> None:
        self.name = name

    def schedule(self, cfg: RunConfig) -> list[Step]:
        return pipeline_schedule(cfg)

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()  # the shared arrays are read-only: refine a copy
        state.pseudo = torch.zeros_like(state.labels, dtype=torch.bool)
        state.stage_masks = []

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        cfg = ctx.cfg
        assert state.labels is not None and state.pseudo is not None
        if step.phase == "pretrain" and cfg.pretrain.method == "byol":
            return byol.run_epoch(ctx, step, index, state, optimizer)  # BYOL keeps a target network
        if step.phase == "pretrain":
            loss_fn = pretrain_loss(ctx)
        else:
            refine = step.phase == "refine"
            loss_fn = batches.supervised(
                ctx,
                labels=state.labels,
                loss=batches.main_loss(cfg.loss.main if refine else warmup_loss_kind(cfg), cfg.loss),
                pseudo=state.pseudo if refine else None,
                copies=cfg.refine.copies if refine else 0,
            )
        metrics = train_one_epoch(ctx, step, index, optimizer, loss_fn).metrics
        if step.phase == "refine" and (step.stage is not None or step.ends_phase):
            metrics |= select_and_relabel(step, ctx, state)
        if step.phase != "pretrain" and (cfg.eval_every == "epoch" or step.ends_phase):
            metrics |= evaluate(ctx)
        return metrics


LogProbs = Callable[[Tensor], Tensor]
"""Model output for a batch -> logits or log-probabilities [B, K] for the selection score (the scores
take a log-softmax, which leaves log-probabilities as they are)."""


def select_and_relabel(
    step: Step,
    ctx: Context,
    state: TrainState,
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    log_probs: LogProbs = lambda logits: logits,
) -> dict[str, Any]:
    """Score every sample by the selection loss against its current label; record this stage's
    selection; at the iteration's end, give the consensus samples the prediction as their label.

    `transform` (default: the plain, unaugmented images) and `log_probs` say what the network sees and
    how its output becomes probabilities: one network's softmax, or an ensemble's mean softmax.
    """
    assert state.labels is not None and state.pseudo is not None
    r, labels = ctx.cfg.refine, state.labels

    def score(output: Tensor, idx: Tensor) -> Tensor:
        logp = log_probs(output)  # (B, K)
        y = labels[idx].to(logp.device)
        s = selection.selection_scores(
            logp,
            y,
            kind=r.selection_loss,
            mae_weight=r.mae_weight,
            mae_scale=r.mae_scale,
            focal_gamma=ctx.cfg.loss.focal_gamma,
        )
        return torch.stack([s, logp.argmax(dim=1).float()], dim=1)  # (B, 2): score, prediction

    out = scan(
        ctx.net,
        ctx.train_images,
        transform=transform or ctx.augmenter.plain,
        fn=score,
        batch_size=EVAL_BATCH,
        world=ctx.world,
        progress=ctx.progress,
        desc=f"select it{step.iteration}",
    )
    scores, preds = out[:, 0], out[:, 1].long()
    metrics: dict[str, Any] = {}
    if step.stage is not None:
        selected = scores < r.threshold
        state.stage_masks.append(selected)
        _track_selection(state, selected, scores, step_index=len(state.history))
        q = selection.set_quality(selected, labels, ctx.clean_labels)
        metrics |= {"stage": step.stage} | q.as_metrics("selected")
    if step.ends_phase:
        agreed = selection.consensus(state.stage_masks)
        before = selection.set_quality(agreed, labels, ctx.clean_labels)
        new_labels = selection.relabel(labels, preds, agreed)
        after = selection.set_quality(agreed, new_labels, ctx.clean_labels)
        metrics |= {
            "consensus_size": float(before.size),
            "consensus_precision": before.precision,  # their labels were right before relabelling
            "consensus_recall": before.recall,
            "consensus_label_precision": after.precision,  # their new (predicted) labels are right
            "relabelled": float(int((new_labels != labels).sum())),
            "label_acc": float((new_labels == ctx.clean_labels).double().mean()),
        }
        if not same_on_all_ranks(new_labels, ctx.world):
            raise RuntimeError("ranks disagree on the refined labels: the scan's all-gather is broken")
        changed = new_labels != labels
        relabelled = state.extra.setdefault("relabelled_iteration", torch.full_like(labels, -1))
        relabelled[changed] = step.iteration
        state.labels = new_labels
        state.pseudo = state.pseudo | agreed
        state.stage_masks = []
    return metrics


def _track_selection(
    state: TrainState, selected: torch.Tensor, scores: torch.Tensor, *, step_index: int
) -> None:
    """Per-sample bookkeeping for `noisylab labels` (samples.TRACKED), kept in the checkpointed state."""
    n = len(selected)
    extra = state.extra
    times = extra.setdefault("times_selected", torch.zeros(n, dtype=torch.int64))
    last = extra.setdefault("last_selected_step", torch.full((n,), -1, dtype=torch.int64))
    times += selected.long()
    last[selected] = step_index
    extra["last_score"] = scores.double().clone()
