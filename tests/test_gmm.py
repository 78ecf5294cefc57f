"""The two-component 1-D GMM: separates planted clean/noisy losses and matches scikit-learn's EM."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from noisylab.train import gmm


def planted(clean: int, noisy: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses shaped like DivideMix's after warm-up: clean samples near 0 (a gamma tail), noisy ones
    spread high. Returns (losses [N] shuffled, is_clean [N])."""
    rng = np.random.default_rng(seed)
    losses = np.concatenate([rng.gamma(1.0, 0.25, clean), rng.normal(3.0, 0.7, noisy).clip(0.5)])
    is_clean = np.concatenate([np.ones(clean, bool), np.zeros(noisy, bool)])
    order = rng.permutation(clean + noisy)
    return torch.tensor(losses[order]), torch.tensor(is_clean[order])


@pytest.mark.parametrize(("clean", "noisy"), [(700, 300), (200, 800)])  # clean majority and minority
def test_planted_clean_and_noisy_losses_are_separated(clean: int, noisy: int) -> None:
    losses, is_clean = planted(clean, noisy)
    prob = gmm.clean_probability(gmm.minmax_normalise(losses))
    assert prob.shape == (clean + noisy,) and prob.dtype == torch.float32
    picked = prob > 0.5
    precision = float((picked & is_clean).sum() / picked.sum())
    recall = float((picked & is_clean).sum() / is_clean.sum())
    assert precision > 0.97 and recall > 0.97
    # the clean component is the low-loss one, whichever is larger
    assert float(prob[is_clean].mean()) > 0.9 > 0.1 > float(prob[~is_clean].mean())


def _sklearn(x: torch.Tensor, **kwargs: Any) -> GaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, **kwargs).fit(x.numpy()[:, None])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_matches_scikit_learn_from_the_same_start(seed: int) -> None:
    losses, _ = planted(600, 400, seed=seed)
    x = gmm.minmax_normalise(losses)
    weights, means, variances = gmm.m_step(x, gmm.initial_split(x), reg_covar=5e-4)
    mine = gmm.fit(x)  # starts from exactly these parameters
    reference = _sklearn(
        x,
        weights_init=weights.numpy(),
        means_init=means.numpy()[:, None],
        precisions_init=(1.0 / variances.numpy())[:, None, None],
    )
    assert mine.iterations == reference.n_iter_ and mine.converged == reference.converged_
    assert np.allclose(mine.means.numpy(), reference.means_[:, 0], atol=1e-10)
    assert np.allclose(mine.variances.numpy(), reference.covariances_[:, 0, 0], atol=1e-10)
    assert np.allclose(mine.weights.numpy(), reference.weights_, atol=1e-10)
    expected = reference.predict_proba(x.numpy()[:, None])[:, reference.means_[:, 0].argmin()]
    assert np.allclose(mine.clean_probability(x).numpy(), expected, atol=1e-9)


def test_the_deterministic_start_lands_where_scikit_learns_k_means_start_does() -> None:
    losses, _ = planted(650, 350, seed=4)
    x = gmm.minmax_normalise(losses)
    mine = gmm.clean_probability(x).double().numpy()
    reference = _sklearn(x, random_state=0)  # DivideMix's call: k-means initialisation
    expected = reference.predict_proba(x.numpy()[:, None])[:, reference.means_[:, 0].argmin()]
    assert np.abs(mine - expected).max() < 0.02
    assert ((mine > 0.5) == (expected > 0.5)).mean() > 0.995


def test_em_never_lowers_the_likelihood_and_stops_at_tol() -> None:
    losses, _ = planted(500, 500, seed=5)
    x = gmm.minmax_normalise(losses)
    bounds = [
        float(gmm.fit(x, iterations=k, tol=0.0).log_joint(x).logsumexp(dim=1).mean()) for k in range(1, 8)
    ]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(bounds))
    assert gmm.fit(x, iterations=50, tol=0.0).iterations == 50
    loose = gmm.fit(x, iterations=50, tol=1.0)  # the second round's change is below 1 nat
    assert loose.converged and loose.iterations == 2


def test_normalisation_and_degenerate_inputs() -> None:
    x = gmm.minmax_normalise(torch.tensor([2.0, 4.0, 3.0]))
    assert torch.equal(x, torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64))
    assert torch.equal(gmm.minmax_normalise(torch.full((4,), 7.0)), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(
        gmm.clean_probability(torch.zeros(5)), torch.ones(5)
    )  # no spread: no evidence of noise
    split = gmm.initial_split(torch.tensor([0.0, 0.1, 0.2, 0.9, 1.0]))
    assert split[:, 0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="at least 2 values"):
        gmm.fit(torch.tensor([1.0]))
