"""Single-network baselines on the noisy labels: swce, focal, nce_mae (robust losses) and mixup."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import FIRST_BATCH, digits_config, digits_context
from scipy import stats

from noisylab.config.run import RunConfig, with_overrides
from noisylab.runner import execute
from noisylab.train import losses
from noisylab.train.mixing import beta_sample, mix
from noisylab.trainables import get_method
from noisylab.trainables.ce import SupervisedMethod
from noisylab.trainables.mixup import mixup_batches
from noisylab.trainables.robust_losses import apl_loss

# 600 digits, 10 epochs of the baseline: about a second per method on 2 cores.
BUDGET: dict[str, Any] = {
    "data.train_subset": 600,
    "baseline.epochs": 10,
    "baseline.lr": 3e-3,
    "batch_size": 64,
}
METHODS = ("swce", "focal", "nce_mae", "mixup")


@pytest.fixture(scope="module")
def records(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    storage = tmp_path_factory.mktemp("runs")
    return {
        m: execute(
            digits_config(digits_npz, method=m, **BUDGET), storage=storage, use_ray=False, progress=False
        ).record
        for m in METHODS
    }


@pytest.mark.parametrize("method", METHODS)
def test_each_method_learns_from_noisy_digits(records: dict[str, dict[str, Any]], method: str) -> None:
    r = records[method]
    history = json.loads(r["history_json"])
    assert r["method"] == method and len(history) == 10  # ce's budget
    assert {h["phase"] for h in history} == {"train"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert r["test_acc"] > 0.4  # ten classes: chance is 0.1


def test_the_methods_train_differently(records: dict[str, dict[str, Any]]) -> None:
    first_losses = {m: json.loads(records[m]["history_json"])[0]["train_loss"] for m in METHODS}
    assert len({round(v, 6) for v in first_losses.values()}) == len(METHODS)


def _apl_reference(row: list[float], y: int, alpha: float, beta: float) -> float:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    p = [e / sum(exps) for e in exps]
    nce = -math.log(p[y]) / sum(-math.log(pc) for pc in p)
    return alpha * nce + beta * (1.0 - p[y])  # APL's code: MAE = 1 − p_y


def test_nce_mae_is_apl_with_its_mae_scale() -> None:
    cfg = with_overrides(RunConfig(), {"loss.apl_alpha": 2.0, "loss.apl_beta": 3.0})
    logits = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    got = apl_loss(cfg)(logits, y)
    want = [_apl_reference(row, int(t), 2.0, 3.0) for row, t in zip(logits.tolist(), y, strict=True)]
    assert got.tolist() == pytest.approx(want, rel=1e-9)
    assert RunConfig().loss.apl_alpha == 1.0 and RunConfig().loss.apl_beta == 1.0  # APL's CIFAR-10 values


def test_robust_methods_read_their_settings_from_the_config() -> None:
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0])
    cfg = with_overrides(RunConfig(), {"loss.focal_gamma": 0.5, "loss.swce_detach": False})
    focal = get_method("focal")
    swce = get_method("swce")
    assert isinstance(focal, SupervisedMethod) and isinstance(swce, SupervisedMethod)
    assert torch.allclose(focal.make_loss(cfg)(logits, y), losses.focal(logits, y, gamma=0.5))
    literal = swce.make_loss(cfg)(logits.requires_grad_(), y)
    literal.sum().backward()
    grad = logits.grad
    assert grad is not None
    # with the gradient through the weight, low-p_y samples push p_y down (see losses.swce)
    detached = logits.detach().clone().requires_grad_()
    losses.swce(detached, y, detach_weight=True).sum().backward()
    assert detached.grad is not None and not torch.allclose(grad, detached.grad)


# ------------------------------------------------------------------------------------------ mixup


def test_mixed_targets_are_convex_combinations_of_the_pairs() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(8, 1, 4, 4, generator=gen)
    onehot = F.one_hot(torch.arange(8), 8).float()  # every row its own class: pairs are readable
    mixed_x, mixed_y, lam = mix(x, onehot, alpha=1.0, generator=gen)
    assert 0.0 < lam < 1.0
    assert torch.allclose(mixed_y.sum(dim=1), torch.ones(8))
    for i in range(8):
        partner = int((mixed_y[i] - lam * onehot[i]).argmax())  # the (1 − λ) entry, or i itself
        weights = lam * onehot[i] + (1 - lam) * onehot[partner]
        assert torch.allclose(mixed_y[i], weights, atol=1e-6)
        assert torch.allclose(mixed_x[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-6)
    partners = {int((mixed_y[i] - lam * onehot[i]).argmax()) for i in range(8)}
    assert partners == set(range(8))  # a permutation of the batch


@pytest.mark.parametrize("alpha", [0.5, 1.0, 4.0])
def test_lambda_follows_beta_alpha_alpha(alpha: float) -> None:
    gen = torch.Generator().manual_seed(4)
    draws = [beta_sample(alpha, gen) for _ in range(3000)]
    assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    others = [a for a in (0.5, 1.0, 4.0) if a != alpha]
    for other in others:  # and the test can tell the shapes apart
        assert stats.kstest(draws, stats.beta(other, other).cdf).pvalue < 1e-3


def test_mixup_trains_on_mixed_weak_views_in_one_forward(digits_npz: Path) -> None:
    cfg = digits_config(digits_npz, method="mixup", **{"data.train_subset": 64})
    ctx = digits_context(cfg)
    ctx.net.eval()  # the same outputs for the same inputs
    seen: list[torch.Tensor] = []
    net = ctx.model

    def recording(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return net(x)

    ctx.model = recording
    labels = ctx.noisy_labels.clone()
    idx = torch.arange(16)
    out = mixup_batches(ctx, labels=labels, alpha=1.0)(idx, torch.Generator().manual_seed(5), FIRST_BATCH)
    loss, images = out.loss, out.images
    assert len(seen) == 1 and images == 16  # one forward per step, no clean batch besides
    gen = torch.Generator().manual_seed(5)  # replay the draws by hand
    x = ctx.augmenter.weak(ctx.train_images[idx], gen)
    mixed_x, mixed_y, _ = mix(x, F.one_hot(labels[idx], 10).float(), alpha=1.0, generator=gen)
    assert torch.equal(seen[0], mixed_x) and not torch.allclose(seen[0], x)
    want = losses.soft_cross_entropy(net(mixed_x), mixed_y).mean()
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
