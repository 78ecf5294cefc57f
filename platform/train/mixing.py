"""Mixup of inputs and soft targets, shared by `mixup` and DivideMix's MixMatch step.

mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): with λ ~ Beta(α, α) and a
permutation π of the batch, x̃ = λ·x + (1 − λ)·x[π] and ỹ = λ·y + (1 − λ)·y[π]. MixMatch/DivideMix
(Berthelot et al. 2019; Li et al. 2020) take λ' = max(λ, 1 − λ) so the mixed batch stays closer to its
first operand, which keeps labelled and unlabelled halves apart.
"""

from __future__ import annotations

import torch
from torch import Tensor


def beta_sample(alpha: float, generator: torch.Generator) -> float:
    """One λ ~ Beta(α, α) from the caller's generator. torch's Beta takes no generator, so it samples
    under a forked global RNG seeded from `generator`: runs replay exactly and the global stream is
    left untouched."""
    if alpha <= 0:
        return 1.0  # α → 0 puts all mass on {0, 1}; no mixing is the conventional reading of α = 0
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    local = torch.Generator().manual_seed(seed)  # a CPU stream derived from the caller's, so runs replay
    with torch.random.fork_rng(devices=[]):
        torch.random.set_rng_state(local.get_state())
        lam = torch.distributions.Beta(alpha, alpha).sample().item()
    return float(lam)


def mix(
    x: Tensor, targets: Tensor, *, alpha: float, generator: torch.Generator, keep_first: bool = False
) -> tuple[Tensor, Tensor, float]:
    """Mix a batch with a permutation of itself.

    x: float [B, C, H, W]; targets: float [B, K] (one-hot or soft). Returns (x̃ [B, C, H, W], ỹ [B, K], λ).
    `keep_first` uses λ' = max(λ, 1 − λ) (MixMatch / DivideMix).
    """
    lam = beta_sample(alpha, generator)
    if keep_first:
        lam = max(lam, 1.0 - lam)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    mixed_x = lam * x + (1.0 - lam) * x[perm]
    mixed_y = lam * targets + (1.0 - lam) * targets[perm]
    return mixed_x, mixed_y, lam
