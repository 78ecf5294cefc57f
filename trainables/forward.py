"""Forward loss correction: Patrini et al. 2017, "Making Deep Neural Networks Robust to Label Noise: a
Loss Correction Approach" (CVPR).

1. Phase `estimate` (`forward.estimate_epochs`): cross entropy on the noisy labels, as `ce`.
2. At its end a no-grad scan of the training set (no augmentation) gives p(ỹ|x) for every sample, and
   the noise transition T[i, j] = P(ỹ = j | y = i) is estimated from anchor points
   (`estimate_transition`): for each class i the sample x̄_i at the 97th percentile of p(ỹ = i|x)
   (`forward.percentile`; the paper's choice on CIFAR, where the arg-max picks outliers), and
   T̂[i, :] = p(ỹ|x̄_i). T̂ goes into `TrainState.extra`, so checkpoints carry it.
3. Phase `train` (`forward.train_epochs`): the network is re-initialised (the run's initial weights,
   rebuilt from the seed) and trained with the forward-corrected loss −log((softmax(logits) @ T̂)[ỹ])
   (`losses.forward_corrected`); its softmax then estimates the clean posterior.

Budget: the paper trains two networks in full; here the two phases split `baseline.epochs` (phase 1
gets the smaller half; `noisylab.config.sections.forward` resolves the split), so `forward` costs what `ce`
costs. Both phases use `baseline.lr` and `baseline.weight_decay`. The estimate's error against the run's
realised transition matrix (`Context.noise_transition`, measured from the diagnostic clean labels when
the data was prepared, never read by training) is recorded as `transition_error` = Σ|T̂ − T| / Σ|T|
(the entry-wise L1 error of Xia et al. 2019).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from noisylab.config.run import RunConfig
from noisylab.config.sections.forward import forward_epochs
from noisylab.train import batches, losses
from noisylab.train.engine import Step, scan
from noisylab.train.evaluation import EVAL_BATCH, evaluate
from noisylab.train.models import Network, build_network
from noisylab.train.runtime import Context, TrainState, train_one_epoch

TRANSITION_KEY = "transition"


def estimate_transition(probs: Tensor, *, percentile: float = 97.0) -> Tensor:
    """Anchor-point estimate of the transition matrix from noisy-class posteriors.

    probs: float [N, C], p(ỹ|x) of every training sample (rows sum to 1). For class i the anchor is the
    sample whose p(ỹ = i|x) has nearest rank `percentile` among the N values (100 = the arg-max);
    T̂[i, :] = probs[anchor_i]. Returns float [C, C] whose rows sum to 1.
    """
    if probs.dim() != 2 or probs.shape[0] == 0:
        raise ValueError(f"estimate_transition needs probabilities [N, C], got shape {tuple(probs.shape)}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
    rank = round(percentile / 100.0 * (probs.shape[0] - 1))
    anchors = probs.argsort(dim=0, stable=True)[rank]  # (C,): column i sorted ascending, take the rank
    return probs[anchors].clone()  # (C, C): row i = p(ỹ | x̄_i)


def transition_error(estimate: Tensor, truth: Tensor) -> float:
    """Σ|T̂ − T| / Σ|T| over all entries (0 for a perfect estimate)."""
    return float((estimate.double() - truth.double()).abs().sum() / truth.double().abs().sum())


def reinitialise(ctx: Context) -> None:
    """Put the run's initial weights back into `ctx.net`: the network `worker.build_context` built after
    seeding torch with `cfg.seed`, rebuilt the same way (the global RNG stream is left untouched)."""
    if not isinstance(ctx.net, Network):
        raise RuntimeError(f"forward trains one Network, not a {type(ctx.net).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.cfg.seed)
        fresh = build_network(
            ctx.cfg.model,
            num_classes=ctx.num_classes,
            in_chans=ctx.train_images.shape[1],
            image_size=ctx.train_images.shape[-1],
            predictor=ctx.net.predictor is not None,
        )
    ctx.net.load_state_dict(fresh.state_dict())  # in place: the optimiser keeps the same parameters


class ForwardMethod:
    name = "forward"

    def schedule(self, cfg: RunConfig) -> list[Step]:
        first, second = forward_epochs(cfg)
        lr, wd = cfg.baseline.lr, cfg.baseline.weight_decay
        return [Step("estimate", e, first, lr, wd) for e in range(1, first + 1)] + [
            Step("train", e, second, lr, wd) for e in range(1, second + 1)
        ]

    def init_state(self, ctx: Context, state: TrainState) -> None:
        state.labels = ctx.noisy_labels.clone()

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        assert state.labels is not None
        if step.phase == "estimate":
            loss: batches.PerSampleLoss = losses.cross_entropy
        else:
            if step.starts_phase:
                reinitialise(ctx)
            t = state.extra[TRANSITION_KEY].to(ctx.world.device)
            loss = lambda logits, y: losses.forward_corrected(logits, y, t)  # noqa: E731
        loss_fn = batches.supervised(ctx, labels=state.labels, loss=loss)
        metrics = train_one_epoch(ctx, step, index, optimizer, loss_fn).metrics
        if step.phase == "estimate" and step.ends_phase:
            metrics |= self._estimate(ctx, state)
        if ctx.cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate(ctx)
        return metrics

    def _estimate(self, ctx: Context, state: TrainState) -> dict[str, Any]:
        """Scan the training set, estimate T̂ from anchors, keep it in the state; report its error."""
        probs = scan(
            ctx.net,
            ctx.train_images,
            transform=ctx.augmenter.plain,
            fn=lambda logits, idx: logits.softmax(dim=1),
            batch_size=EVAL_BATCH,
            world=ctx.world,
            progress=ctx.progress,
            desc="estimate T",
        )  # (N, C), identical on every rank
        estimate = estimate_transition(probs, percentile=ctx.cfg.forward.percentile)
        state.extra[TRANSITION_KEY] = estimate
        return {
            "transition_error": transition_error(estimate, ctx.noise_transition),
            "transition_estimate": estimate.tolist(),
        }
