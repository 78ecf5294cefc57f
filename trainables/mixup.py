"""mixup on the noisy labels: Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization" (ICLR).

Each weakly augmented batch is mixed with a permutation of itself (`noisylab.train.mixing.mix`):
x̃ = λ·x + (1 − λ)·x[π], ỹ = λ·onehot(ỹ) + (1 − λ)·onehot(ỹ[π]), λ ~ Beta(α, α) once per batch, and the
network is trained on (x̃, ỹ) with the soft cross entropy `losses.soft_cross_entropy`: one forward per
step, no clean batch besides. α = 1 (λ uniform on [0, 1]) is the paper's CIFAR-10/100 setting (§3.2);
it is `mixup.alpha`. Budget and optimiser are `ce`'s (`baseline.epochs`, `baseline.lr`,
`baseline.weight_decay`); λ and π come from the engine's per-step generator, so a resumed run replays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from noisylab.train import losses
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, to_device
from noisylab.train.mixing import mix
from noisylab.train.runtime import Context, TrainState
from noisylab.trainables.ce import SupervisedMethod


def mixup_batches(ctx: Context, *, labels: Tensor, alpha: float) -> BatchFn:
    """Weakly augmented, mixed batches against mixed one-hot targets; soft cross entropy."""
    device = ctx.train_images.device

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        x = ctx.augmenter.weak(ctx.train_images[to_device(idx, device)], gen)  # (B, C, H, W) float
        onehot = F.one_hot(to_device(labels[idx], device), ctx.num_classes).float()  # (B, K)
        mixed_x, mixed_y, _ = mix(x, onehot, alpha=alpha, generator=gen)
        return BatchOut(losses.soft_cross_entropy(ctx.model(mixed_x), mixed_y).mean(), len(idx))

    return fn


class MixupMethod(SupervisedMethod):
    def __init__(self) -> None:
        super().__init__("mixup", lambda cfg: losses.cross_entropy)  # the loss of unmixed batches

    def loss_fn(self, ctx: Context, state: TrainState) -> BatchFn:
        assert state.labels is not None
        return mixup_batches(ctx, labels=state.labels, alpha=ctx.cfg.mixup.alpha)
