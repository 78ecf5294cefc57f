"""Test-set evaluation through the sharded scan: accuracy and macro-F1."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from noisylab.train.engine import macro_f1, scan
from noisylab.train.runtime import Context

EVAL_BATCH = 512  # images per no-grad forward: larger batches are cheaper per image on CPU


def predict(ctx: Context, images: Tensor) -> Tensor:
    """Arg-max class of every image [N] (no augmentation), identical on every rank."""
    out = scan(
        ctx.net,
        images,
        transform=ctx.augmenter.plain,
        fn=lambda logits, idx: logits.argmax(dim=1, keepdim=True),
        batch_size=EVAL_BATCH,
        world=ctx.world,
        progress=ctx.progress,
        desc="test",
    )
    return out[:, 0].long()


def class_accuracy(preds: Tensor, labels: Tensor, num_classes: int) -> list[float]:
    """Recall of each class [K] (NaN for a class absent from `labels`): shows classes a method gave up on."""
    right = torch.bincount(labels[preds == labels], minlength=num_classes).double()
    total = torch.bincount(labels, minlength=num_classes).double()
    return (right / total).tolist()  # 0/0 → NaN


def evaluate(ctx: Context) -> dict[str, Any]:
    preds = predict(ctx, ctx.test_images)
    return {
        "test_acc": float((preds == ctx.test_labels).double().mean()),
        "test_f1": macro_f1(preds, ctx.test_labels, ctx.num_classes),
        "test_class_acc": class_accuracy(preds, ctx.test_labels, ctx.num_classes),
    }
