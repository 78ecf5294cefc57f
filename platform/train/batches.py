"""Batch functions that methods hand to `engine.train_epoch`: each turns a batch of sample indices into
a scalar loss, building its inputs from the uint8 images on the device with batched augmentation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from noisylab.config.run import LossConfig, MainLoss
from noisylab.train import losses
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, to_device
from noisylab.train.runtime import Context

PerSampleLoss = Callable[[Tensor, Tensor], Tensor]
"""(logits [B, K], targets [B]) -> per-sample losses [B]."""


def main_loss(kind: MainLoss, cfg: LossConfig) -> PerSampleLoss:
    if kind == "swce" and cfg.swce_norm == "class":
        return losses.swce_class_normalised
    if kind == "swce":
        return lambda logits, y: losses.swce(logits, y, detach_weight=cfg.swce_detach)
    if kind == "focal":
        return lambda logits, y: losses.focal(logits, y, gamma=cfg.focal_gamma)
    return losses.cross_entropy


def supervised(
    ctx: Context, *, labels: Tensor, loss: PerSampleLoss, pseudo: Tensor | None = None, copies: int = 0
) -> BatchFn:
    """Weakly augmented batch against `labels`; each sample flagged in `pseudo` [N] also enters the
    batch as `copies` further augmented versions with the same label (the report's augmentation)."""
    device = ctx.train_images.device

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        if pseudo is not None and copies > 0:
            extra = idx[pseudo[idx]].repeat(copies)  # (copies·P,) pseudo-labelled samples, repeated
            idx = torch.cat([idx, extra])
        x = ctx.augmenter.weak(ctx.train_images[to_device(idx, device)], gen)  # (B', C, H, W) float
        y = to_device(labels[idx], device)
        return BatchOut(loss(ctx.model(x), y).mean(), len(idx))

    return fn


def simclr(ctx: Context, *, temperature: float, member: int | None = None) -> BatchFn:
    """Two SimCLR views of each image through one forward call (one DDP forward per step), NT-Xent.
    `member`: pre-train only that member of a `TwinNetwork` (the encoder both networks start from)."""
    device = ctx.train_images.device
    options: dict[str, Any] = {"project": True} | ({"member": member} if member is not None else {})

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        images = ctx.train_images[to_device(idx, device)]
        views = torch.cat([ctx.augmenter.simclr(images, gen), ctx.augmenter.simclr(images, gen)])  # (2B, ...)
        z1, z2 = ctx.model(views, **options).chunk(2)  # (B, proj_dim) each
        return BatchOut(losses.nt_xent(z1, z2, temperature=temperature).mean(), 2 * len(idx))

    return fn
