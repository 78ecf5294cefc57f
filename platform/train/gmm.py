"""A two-component 1-D Gaussian mixture fitted by EM: per-sample losses in, clean probability out.

DivideMix (Li, Socher, Hoi 2020, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning")
divides the training set by fitting such a mixture to the per-sample cross-entropy losses, min-max
normalised to [0, 1], and reading each sample's posterior of the component with the SMALLER mean as
its probability of carrying a clean label. Its code uses scikit-learn's `GaussianMixture` with
`max_iter=10, tol=1e-2, reg_covar=5e-4`; this module is the same EM written in torch (float64), so
the run needs no scikit-learn.

EM, with responsibilities r_ik of component k for sample i (Bishop 2006, §9.2):

    M-step:  n_k = Σ_i r_ik + 10·eps,  π_k = n_k / N,  μ_k = Σ_i r_ik x_i / n_k,
             σ²_k = Σ_i r_ik (x_i − μ_k)² / n_k + reg_covar
    E-step:  log p_ik = log π_k + log N(x_i | μ_k, σ²_k),  r_ik = softmax_k(log p_ik),
             lower bound L = mean_i logsumexp_k(log p_ik)

The order is scikit-learn's: parameters from the initial split, then up to `iterations` rounds of
(E-step → L, M-step), stopping once |L − L_previous| < tol; the posteriors returned come from one last
E-step under the final parameters. The initial split is deterministic (1-D 2-means started from the
smallest and largest value), so every rank that fits the same losses gets the same mixture.
scikit-learn initialises with randomly seeded k-means instead; started from the same parameters the
two fits agree (tests/test_gmm.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_EPS_MASS = 10 * torch.finfo(torch.float64).eps  # added to each component's mass, as scikit-learn does
_KMEANS_MAX_STEPS = 100  # 1-D Lloyd steps of the initial split; it settles in a handful


@dataclass(frozen=True)
class Mixture1D:
    """A fitted two-component mixture: weights, means, variances float64 [2]."""

    weights: Tensor
    means: Tensor
    variances: Tensor
    iterations: int  # EM rounds run
    converged: bool  # whether |ΔL| fell below tol within the rounds

    @property
    def clean_component(self) -> int:
        """The component with the smaller mean: low loss = clean label."""
        return int(self.means.argmin())

    def log_joint(self, x: Tensor) -> Tensor:
        """log π_k + log N(x_i | μ_k, σ²_k): float64 [N, 2] for x [N]."""
        return _log_joint(x, self.weights, self.means, self.variances)

    def posteriors(self, x: Tensor) -> Tensor:
        """Responsibilities r_ik, float64 [N, 2] (rows sum to 1)."""
        return torch.softmax(self.log_joint(x), dim=1)

    def clean_probability(self, x: Tensor) -> Tensor:
        """Posterior of the low-mean component, float64 [N]."""
        return self.posteriors(x)[:, self.clean_component]


def _log_joint(x: Tensor, weights: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    x = x.double().reshape(-1, 1)  # (N, 1) against parameters (2,)
    log_normal = -0.5 * (math.log(2 * math.pi) + variances.log() + (x - means) ** 2 / variances)
    return weights.log() + log_normal  # (N, 2)


def minmax_normalise(losses: Tensor) -> Tensor:
    """(x − min) / (max − min) in float64 [N]; a constant vector maps to zeros (no spread to divide)."""
    x = losses.double().reshape(-1)
    span = x.max() - x.min()
    if not bool(span > 0):
        return torch.zeros_like(x)
    return (x - x.min()) / span


def initial_split(x: Tensor) -> Tensor:
    """Hard responsibilities float64 [N, 2] from 1-D 2-means: column 0 the low group, 1 the high one.

    Lloyd's algorithm in 1-D is a threshold t = (c_low + c_high) / 2 moved until the two groups stop
    changing; it starts from the smallest and largest values, so it needs no random draw.
    """
    x = x.double().reshape(-1)
    low, high = x.min(), x.max()
    high_side = x > (low + high) / 2
    for _ in range(_KMEANS_MAX_STEPS):
        if bool(high_side.all()) or not bool(high_side.any()):
            break
        low, high = x[~high_side].mean(), x[high_side].mean()
        moved = x > (low + high) / 2
        if bool((moved == high_side).all()):
            break
        high_side = moved
    return torch.stack([(~high_side).double(), high_side.double()], dim=1)


def m_step(x: Tensor, resp: Tensor, *, reg_covar: float) -> tuple[Tensor, Tensor, Tensor]:
    """(weights, means, variances) float64 [2] from data x [N] and responsibilities resp [N, 2]."""
    x = x.double().reshape(-1, 1)  # (N, 1)
    mass = resp.sum(dim=0) + _EPS_MASS  # (2,)
    means = (resp * x).sum(dim=0) / mass
    variances = (resp * (x - means) ** 2).sum(dim=0) / mass + reg_covar
    return mass / x.shape[0], means, variances


def fit(
    x: Tensor,
    *,
    iterations: int = 10,
    tol: float = 1e-2,
    reg_covar: float = 5e-4,
    init: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Mixture1D:
    """EM on x [N] (N ≥ 2). Defaults are DivideMix's: 10 rounds, tol 1e-2, reg_covar 5e-4.

    `init` = (weights, means, variances) replaces the 2-means start (tests start scikit-learn and this
    fit from the same point).
    """
    x = x.double().reshape(-1)
    if x.numel() < 2:
        raise ValueError(f"a two-component mixture needs at least 2 values, got {x.numel()}")
    if iterations < 1:
        raise ValueError(f"iterations must be ≥ 1, got {iterations}")
    if init is None:
        weights, means, variances = m_step(x, initial_split(x), reg_covar=reg_covar)
    else:
        weights, means, variances = (t.double().reshape(2) for t in init)
    bound, converged, rounds = -math.inf, False, 0
    while rounds < iterations:
        rounds += 1
        log_joint = _log_joint(x, weights, means, variances)  # (N, 2)
        log_norm = torch.logsumexp(log_joint, dim=1)  # (N,)
        previous, bound = bound, float(log_norm.mean())
        weights, means, variances = m_step(x, (log_joint - log_norm[:, None]).exp(), reg_covar=reg_covar)
        if abs(bound - previous) < tol:
            converged = True
            break
    return Mixture1D(weights, means, variances, iterations=rounds, converged=converged)


def clean_probability(
    losses: Tensor, *, iterations: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4
) -> Tensor:
    """Per-sample probability of a clean label, float32 [N], from per-sample losses [N].

    The losses are used as given (DivideMix min-max normalises them first: `minmax_normalise`).
    Losses without spread carry no evidence of noise: every sample then gets probability 1.
    """
    x = losses.double().reshape(-1)
    if not bool(x.max() > x.min()):
        return torch.ones(x.shape[0])
    mixture = fit(x, iterations=iterations, tol=tol, reg_covar=reg_covar)
    return mixture.clean_probability(x).float()
