"""What the two-network methods (Co-teaching, DivideMix, C2D, the pipeline on DivideMix) share: one
input for both members of a `models.TwinNetwork`, each member's per-sample losses through the sharded
scan, test metrics of the ensemble and of each member, the SimCLR pre-training of one encoder both
members start from, and the ensemble's log-probabilities.

Everything goes through the twin's stacked forward, (2, B, C, H, W) → (2, B, K): one call (one DDP
forward) per batch runs both members.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from noisylab.train import batches, losses
from noisylab.train.engine import Step, macro_f1, scan, to_device
from noisylab.train.evaluation import EVAL_BATCH, class_accuracy
from noisylab.train.models import TwinNetwork, share_encoder
from noisylab.train.runtime import Context, train_one_epoch

MEMBERS = 2


def both(x: Tensor) -> Tensor:
    """(B, C, H, W) → (2, B, C, H, W): the same images for both members (a view, no copy)."""
    return x.unsqueeze(0).expand(MEMBERS, *x.shape)


def ensemble_log_probs(logits: Tensor) -> Tensor:
    """log of the members' mean softmax: (2, B, K) → (B, K), log((p_1 + p_2) / 2) computed stably."""
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(MEMBERS)


def pretrain_shared_encoder(
    ctx: Context, step: Step, index: int, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """One SimCLR epoch of member 1 alone (NT-Xent, `pretrain.temperature`); after the last, member 1's
    encoder is loaded into member 2 and both get fresh heads from their own seeds (C2D's way: one
    self-supervised encoder, two networks that still differ)."""
    metrics = train_one_epoch(
        ctx, step, index, optimizer, batches.simclr(ctx, temperature=ctx.cfg.pretrain.temperature, member=0)
    ).metrics
    if step.ends_phase:
        if not isinstance(ctx.net, TwinNetwork):
            raise TypeError("a shared encoder needs a TwinNetwork")
        share_encoder(ctx.net, seed=ctx.cfg.seed)
    return metrics


def member_losses(ctx: Context, labels: Tensor, *, desc: str = "scan") -> Tensor:
    """Each member's cross entropy on every training sample against `labels` [N], no augmentation:
    float [N, 2] (column m = member m), identical on every rank (the scan all-gathers by index)."""

    def per_member(logits: Tensor, idx: Tensor) -> Tensor:
        y = to_device(labels[idx], logits.device)
        return torch.stack([losses.cross_entropy(logits[m], y) for m in range(MEMBERS)], dim=1)  # (B, 2)

    return scan(
        ctx.net,
        ctx.train_images,
        transform=lambda images: both(ctx.augmenter.plain(images)),
        fn=per_member,
        batch_size=EVAL_BATCH,
        world=ctx.world,
        progress=ctx.progress,
        desc=desc,
    )


def evaluate_twin(ctx: Context) -> dict[str, Any]:
    """Test metrics of the ensemble (arg-max of the mean of the members' logits: what the twin's plain
    forward, and so `evaluation.evaluate`, predicts) plus each member's own accuracy, in one scan."""

    def predictions(logits: Tensor, idx: Tensor) -> Tensor:  # logits (2, B, K)
        return torch.stack(
            [logits.mean(dim=0).argmax(dim=1), logits[0].argmax(dim=1), logits[1].argmax(dim=1)], 1
        )

    out = scan(
        ctx.net,
        ctx.test_images,
        transform=lambda images: both(ctx.augmenter.plain(images)),
        fn=predictions,
        batch_size=EVAL_BATCH,
        world=ctx.world,
        progress=ctx.progress,
        desc="test",
    ).long()  # (T, 3): ensemble, member 1, member 2
    labels = ctx.test_labels
    ensemble = out[:, 0]
    return {
        "test_acc": float((ensemble == labels).double().mean()),
        "test_f1": macro_f1(ensemble, labels, ctx.num_classes),
        "test_class_acc": class_accuracy(ensemble, labels, ctx.num_classes),
        "test_acc_net1": float((out[:, 1] == labels).double().mean()),
        "test_acc_net2": float((out[:, 2] == labels).double().mean()),
    }
