"""The report's pipeline ("Improving Training For Noisy Labels").

1. SimCLR pre-training (`pretrain.epochs`, NT-Xent on two augmented views; projection head), or BYOL
   with `pretrain.method=byol` (noisylab.byol; the `paper_byol` variant).
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
"""

from __future__ import annotations

from typing import Any

import torch

from noisylab import batches, byol, selection
from noisylab.config import RunConfig
from noisylab.engine import Step, same_on_all_ranks, scan
from noisylab.evaluation import EVAL_BATCH, evaluate
from noisylab.runtime import Context, TrainState, train_one_epoch


def pipeline_schedule(cfg: RunConfig, *, pretrain: bool = True) -> list[Step]:
    """Pre-training, warm-up and refinement epochs as one flat schedule."""
    steps: list[Step] = []
    p, w, r = cfg.pretrain, cfg.warmup, cfg.refine
    if pretrain and p.method != "none":
        steps += [Step("pretrain", e, p.epochs, p.lr, p.weight_decay) for e in range(1, p.epochs + 1)]
    steps += [Step("warmup", e, w.epochs, w.lr, w.weight_decay) for e in range(1, w.epochs + 1)]
    for it, (epochs, stages, lr) in enumerate(zip(r.epochs, r.stages, r.lrs, strict=True), start=1):
        for e in range(1, epochs + 1):
            stage = stages.index(e) + 1 if e in stages else None
            steps.append(Step("refine", e, epochs, lr, r.weight_decay, iteration=it, stage=stage))
    return steps


class PaperMethod:
    """The pipeline; `name` is "paper" or one of its variants (noisylab.variants), which differ only in
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
            loss_fn = batches.simclr(ctx, temperature=cfg.pretrain.temperature)
        else:
            refine = step.phase == "refine"
            loss_fn = batches.supervised(
                ctx,
                labels=state.labels,
                loss=batches.main_loss(cfg.loss.main, cfg.loss),
                pseudo=state.pseudo if refine else None,
                copies=cfg.refine.copies if refine else 0,
            )
        metrics = train_one_epoch(ctx, step, index, optimizer, loss_fn)
        if step.phase == "refine" and (step.stage is not None or step.ends_phase):
            metrics |= self._select(step, ctx, state)
        if step.phase != "pretrain" and (cfg.eval_every == "epoch" or step.ends_phase):
            metrics |= evaluate(ctx)
        return metrics

    def _select(self, step: Step, ctx: Context, state: TrainState) -> dict[str, Any]:
        """Score every sample; record this stage's selection; at the iteration's end, relabel."""
        assert state.labels is not None and state.pseudo is not None
        r, labels = ctx.cfg.refine, state.labels

        def score(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            y = labels[idx].to(logits.device)
            s = selection.selection_scores(
                logits,
                y,
                kind=r.selection_loss,
                mae_weight=r.mae_weight,
                focal_gamma=ctx.cfg.loss.focal_gamma,
            )
            return torch.stack([s, logits.argmax(dim=1).float()], dim=1)  # (B, 2): score, prediction

        out = scan(
            ctx.net,
            ctx.train_images,
            transform=ctx.augmenter.plain,
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
