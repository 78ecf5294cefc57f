"""Importance reweighting: Liu & Tao 2016, "Classification with Noisy Labels by Importance Reweighting"
(TPAMI), in its multi-class form with an anchor-point transition matrix (Xia et al. 2019, "Are Anchor
Points Really Indispensable in Label-Noise Learning?", NeurIPS; its code's `reweight_loss`).

The risk on clean data is an expectation over the noisy data with each sample weighted by

    β(x, ỹ) = P(Y = ỹ | x) / P(Ỹ = ỹ | x),   P(Ỹ = j | x) = Σ_i T[i, j] · P(Y = i | x),

T[i, j] = P(ỹ = j | y = i). A sample whose given label the clean posterior finds unlikely (a flipped
label) gets a small β; a right label gets β near 1/T[ỹ, ỹ].

1. Phase `estimate`: exactly `forward`'s first phase (CE on the noisy labels, then the anchor-point
   estimate T̂ at its end, kept in `TrainState.extra` and recorded with its error `transition_error`).
2. Phase `train`: cross entropy weighted by β, L = (1/B) Σ_b β_b · CE_b, with β computed per batch from
   the network being trained: its softmax p estimates the CLEAN posterior P(Y | x), and P(Ỹ | x) = p @ T̂.
   So β_b = p_ỹ / (p @ T̂)_ỹ (`importance_weights`), held constant in the gradient (the T-Revision code
   wraps it in a new leaf tensor).

Why the clean posterior is the network's softmax and not its inverse through T̂. Minimising Σ β·CE over
the noisy data is minimising CE over the clean data: the network it trains converges to P(Y | x), not to
P(Ỹ | x). Reading its softmax as the noisy posterior and inverting T̂ (P(Y|x) = T̂⁻ᵀ P(Ỹ|x)) would
denoise twice, each step pushing further away from the data, and T̂⁻ᵀ·p has negative entries that must
be clipped. Read as the clean posterior, β ≥ 0 always and β ≤ 1/T̂[ỹ, ỹ] (the denominator holds
p_ỹ·T̂[ỹ, ỹ]), so no clipping is needed; `reweight.max_weight` caps it if a study wants to.

The loss is not normalised by Σβ: under a calibrated network E[β | x] = Σ_ỹ P(ỹ|x)·β = Σ_ỹ p_ỹ = 1, so the
weighted loss keeps CE's scale on average, and dividing by Σβ would rescale each batch's step by how
noisy its labels look (T-Revision's code divides by B too).

Phase 2 trains on from the phase-1 network by default (`reweight.restart` = false), as T-Revision's code
does (it reloads its best estimation epoch and continues); `restart` = true re-initialises it as `forward`
does. Epochs, anchors and the split of `baseline.epochs`: `forward.*`; learning rate and weight decay:
`baseline.*` (T-Revision: SGD lr 0.01, 20 estimation + 200 reweighting epochs on CIFAR-10).

Epoch metrics of phase 2 (against the clean labels: diagnostics only, never read by training):
`beta_mean`, `beta_mean_wrong` and `beta_mean_right` (mean β over the samples whose given label is wrong,
resp. right; None when the epoch had none), `beta_capped_fraction` (share of samples at the cap).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from noisylab.train import losses
from noisylab.train.engine import BatchFn, BatchOut, BatchPlace, Step
from noisylab.train.evaluation import evaluate
from noisylab.train.runtime import Context, Trained, TrainState, train_one_epoch
from noisylab.trainables.forward import TRANSITION_KEY, ForwardMethod, reinitialise


def importance_weights(logits: Tensor, targets: Tensor, transition: Tensor) -> Tensor:
    """β_b = p_ỹ / (p @ T)_ỹ with p = softmax(logits_b), the importance weight of Liu & Tao 2016 when p
    estimates the clean posterior and T[i, j] = P(ỹ = j | y = i).

    Computed in log space as exp(log p_ỹ − log (p @ T)_ỹ) = exp(forward-corrected loss − CE), finite for
    any logits, and without gradient (a weight, not a function to optimise). T = identity gives β = 1.
    Shapes: logits [B, C], targets int64 [B] (noisy labels), transition [C, C] -> float [B], β ≥ 0.
    """
    with torch.no_grad():
        logits = logits.detach().to(torch.promote_types(logits.dtype, torch.float32))  # bf16/fp16 up
        forward = losses.forward_corrected(logits, targets, transition)  # −log (p @ T)_ỹ
        return torch.exp(forward - losses.cross_entropy(logits, targets))


def reweighted_cross_entropy(
    logits: Tensor, targets: Tensor, transition: Tensor, *, max_weight: float = 0.0
) -> tuple[Tensor, Tensor]:
    """L = (1/B) Σ_b β_b · CE(logits_b, ỹ_b), β from `importance_weights`, capped at `max_weight` when
    that is > 0. Returns (L scalar, β float [B] as used, without gradient)."""
    beta = importance_weights(logits, targets, transition)  # (B,)
    if max_weight > 0:
        beta = beta.clamp(max=max_weight)
    return (beta * losses.cross_entropy(logits, targets)).mean(), beta


class ReweightMethod(ForwardMethod):
    """`forward` with another phase 2: same schedule, same first phase and T̂, importance-weighted CE."""

    name = "reweight"

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        if step.phase == "estimate":
            return super().run_step(step, index, ctx, state, optimizer)
        assert state.labels is not None
        if step.starts_phase and ctx.cfg.reweight.restart:
            reinitialise(ctx)
        t = state.extra[TRANSITION_KEY].to(ctx.world.device)
        trained = train_one_epoch(ctx, step, index, optimizer, self.weighted_fn(ctx, state.labels, t))
        metrics = trained.metrics | weight_metrics(trained)
        if ctx.cfg.eval_every == "epoch" or step.ends_phase:
            metrics |= evaluate(ctx)
        return metrics

    @staticmethod
    def weighted_fn(ctx: Context, labels: Tensor, transition: Tensor) -> BatchFn:
        """Weakly augmented batches against `labels`, loss `reweighted_cross_entropy`; β summed over the
        samples whose label is wrong / right (against the clean labels) are the batch's metrics."""
        device = ctx.train_images.device
        cap = ctx.cfg.reweight.max_weight

        def fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
            x = ctx.augmenter.weak(ctx.train_images[idx.to(device)], gen)  # (B, C, H, W)
            y = labels[idx].to(device)
            loss, beta = reweighted_cross_entropy(ctx.model(x), y, transition, max_weight=cap)
            wrong = (labels[idx] != ctx.clean_labels[idx]).to(device)  # (B,) diagnostics only
            capped = beta >= cap if cap > 0 else torch.zeros_like(wrong)
            counts = {
                "seen": torch.tensor(float(len(idx))),  # on the host: no copy to the device per batch
                "wrong": wrong.sum(),
                "beta": beta.sum(),
                "beta_wrong": (beta * wrong).sum(),
                "capped": capped.sum(),
            }  # 0-d tensors left on the device: the engine sums them and reads them once per epoch
            return BatchOut(loss, len(idx), metrics=counts)

        return fn


def weight_metrics(trained: Trained) -> dict[str, float | None]:
    """The epoch's β diagnostics from the summed batch counts (all ranks)."""
    s = trained.sums
    seen, wrong = s["seen"], s["wrong"]
    right = seen - wrong
    return {
        "beta_mean": s["beta"] / seen,
        "beta_mean_wrong": s["beta_wrong"] / wrong if wrong else None,
        "beta_mean_right": (s["beta"] - s["beta_wrong"]) / right if right else None,
        "beta_capped_fraction": s["capped"] / seen,
    }


def reweight_method() -> ReweightMethod:
    return ReweightMethod()
