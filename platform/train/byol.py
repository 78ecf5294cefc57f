"""BYOL pre-training (Grill et al. 2020, "Bootstrap Your Own Latent"), the report's variant of the
pipeline's first phase (`pretrain.method=byol`, the `paper_byol` method).

Online network: the run's `Network`, backbone → projector → predictor (`net(x, predict=True)`), trained
by the phase's optimiser like every other phase. Target network: a copy of backbone → projector whose
parameters follow the online ones as an exponential moving average, ξ ← τ·ξ + (1 − τ)·θ after every
optimiser step, with τ raised from `pretrain.byol_tau` (τ_base = 0.996) to `pretrain.byol_tau_final` (1)
along a cosine over the K optimiser steps of pre-training (BYOL §3.2). The loss is `losses.byol` on two
views per image; the views are the SimCLR augmentations (`Augmenter.simclr`) of the SimCLR phase, so the
two pre-training methods differ only in their objective (BYOL's own augmentation pair differs in its
blur and solarisation probabilities).

Between epochs the target's weights live in `TrainState.extra[TARGET_KEY]`, so every checkpoint holds
them and a resumed run continues exactly; they are dropped when pre-training ends.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from noisylab.train import losses
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, Step, to_device
from noisylab.train.models import Network
from noisylab.train.runtime import Context, TrainState, train_one_epoch

TARGET_KEY = "byol_target"


class Target(nn.Module):
    """The target network: copies of the online backbone and projector, never trained by gradients."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(net.backbone)
        self.projector = copy.deepcopy(net.projector)
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.backbone(x))  # (B, proj_dim)


def ema_rate(step: int, total: int, *, base: float, final: float) -> float:
    """τ for the EMA update after optimiser step `step` (0-based) of `total`:
    τ = final − (final − base)·(cos(π·step/total) + 1)/2, i.e. `base` at the start, `final` at the end."""
    return final - (final - base) * (math.cos(math.pi * step / max(total, 1)) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: Target, net: Network, tau: float) -> None:
    """ξ ← τ·ξ + (1 − τ)·θ for every parameter of backbone and projector.

    Buffers (BatchNorm running statistics) are left alone: the target always normalises with batch
    statistics (it runs in train mode, like BYOL's), so they are never read; they are also the one part
    that differs between ranks, which see different batches."""
    for mine, online in ((target.backbone, net.backbone), (target.projector, net.projector)):
        for t, o in zip(mine.parameters(), online.parameters(), strict=True):
            t.lerp_(o, 1.0 - tau)  # t + (1 − τ)(o − t)


def byol_batches(ctx: Context, target: Target) -> BatchFn:
    """The engine's batch function for one BYOL epoch: the loss of two views per image, then, after the
    optimiser step, the EMA update at the rate of that step, `ema_rate(k, K)` with k the step's index
    within pre-training and K = epochs × batches per epoch."""
    net = online_network(ctx)
    cfg = ctx.cfg.pretrain

    def follow(at: BatchPlace) -> None:
        k = (at.step.epoch - 1) * at.batches + at.index  # the optimiser step just taken
        tau = ema_rate(k, at.step.epochs * at.batches, base=cfg.byol_tau, final=cfg.byol_tau_final)
        ema_update(target, net, tau)

    def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        images = ctx.train_images[to_device(idx, ctx.train_images.device)]
        views = torch.cat([ctx.augmenter.simclr(images, gen), ctx.augmenter.simclr(images, gen)])  # (2B, ...)
        q1, q2 = ctx.model(views, predict=True).chunk(2)  # online predictions (B, proj_dim) each
        target.train()  # BatchNorm on batch statistics, as the online network
        with torch.no_grad():
            z1, z2 = target(views).chunk(2)  # target projections (B, proj_dim) each
        return BatchOut(losses.byol(q1, q2, z1, z2).mean(), 2 * len(idx), after_step=lambda: follow(at))

    return fn


def online_network(ctx: Context) -> Network:
    if not isinstance(ctx.net, Network):
        raise RuntimeError(f"BYOL pre-trains one Network, not a {type(ctx.net).__name__}")
    return ctx.net


def load_target(ctx: Context, state: TrainState) -> Target:
    """The target as the last epoch left it; at the start of pre-training, a copy of the online network."""
    target = Target(online_network(ctx))
    saved = state.extra.get(TARGET_KEY)
    if saved is not None:
        target.load_state_dict(saved)
    return target


def run_epoch(
    ctx: Context, step: Step, index: int, state: TrainState, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """One BYOL pre-training epoch through the shared engine; the target goes back into `state.extra`.
    `byol_tau` in the metrics: the rate of the epoch's last EMA update."""
    target = load_target(ctx, state)
    trained = train_one_epoch(ctx, step, index, optimizer, byol_batches(ctx, target))
    batches = trained.batches // ctx.world.size  # per rank, as the step index k counts them
    last = step.epoch * batches - 1
    tau = ema_rate(
        last, step.epochs * batches, base=ctx.cfg.pretrain.byol_tau, final=ctx.cfg.pretrain.byol_tau_final
    )
    if step.ends_phase:
        state.extra.pop(TARGET_KEY, None)  # pre-training is over: the target is not needed again
    else:
        state.extra[TARGET_KEY] = {k: v.detach().cpu().clone() for k, v in target.state_dict().items()}
    return trained.metrics | {"byol_tau": tau}
