"""Plain cross-entropy training: the reference every noisy-label method is measured against.

By default it gets the pipeline's supervised budget (warm-up + refinement epochs) from scratch,
Adam lr 1e-3 (the optimiser of the published Fashion-MNIST CE anchors, Yao et al. 2021), on the
noisy labels, with the same weak augmentation, batch size and backbone. Every number is
`baseline.*` in the config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from noisylab.config.run import RunConfig
from noisylab.config.sections.baseline import baseline_epochs
from noisylab.train import batches, losses
from noisylab.train.engine import BatchFn, Step
from noisylab.train.evaluation import evaluate
from noisylab.train.runtime import Context, TrainState, train_one_epoch


class SupervisedMethod:
    """Training on the given (noisy) labels with one per-sample loss, built from the run's config by
    `make_loss`; `ce` is this with CE. Subclasses change what one batch does through `loss_fn`."""

    def __init__(
        self, name: str, make_loss: Callable[[RunConfig], batches.PerSampleLoss], description: str = ""
    ) -> None:
        self.name = name
        self.make_loss = make_loss
        self.description = description  # what `noisylab methods` says (else its module's docstring)

    def schedule(self, cfg: RunConfig) -> list[Step]:
        n, b = baseline_epochs(cfg), cfg.baseline
        return [Step("train", e, n, b.lr, b.weight_decay) for e in range(1, n + 1)]

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        metrics = train_one_epoch(ctx, step, index, optimizer, self.loss_fn(ctx, state)).metrics
        if ctx.cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate(ctx)
        return metrics

    def loss_fn(self, ctx: Context, state: TrainState) -> BatchFn:
        """The engine's batch function: weakly augmented batches against the current labels."""
        assert state.labels is not None
        return batches.supervised(ctx, labels=state.labels, loss=self.make_loss(ctx.cfg))


def ce_method() -> SupervisedMethod:
    return SupervisedMethod("ce", lambda cfg: losses.cross_entropy)
