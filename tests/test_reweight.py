"""Importance reweighting: β on a planted softmax and T, the weighted loss and its gradient, phase 1
shared with `forward`, a run that learns and weights the wrong labels down, resume across the phases."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import digits_config, digits_context

from noisylab.config.run import validate
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train import losses
from noisylab.train.engine import Step
from noisylab.train.runtime import TrainState
from noisylab.trainables import method_names
from noisylab.trainables import reweight as reweight_module
from noisylab.trainables.forward import TRANSITION_KEY, ForwardMethod, transition_error
from noisylab.trainables.reweight import ReweightMethod, importance_weights, reweighted_cross_entropy

TIMING = {"seconds", "images_per_s"}

# A planted clean posterior p and transition T (rows: clean class, columns: noisy class).
P = [0.5, 0.3, 0.2]
T = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]]


def test_beta_is_the_clean_over_the_noisy_posterior_of_the_label() -> None:
    logits = torch.tensor([P, P, P], dtype=torch.float64).log()  # softmax(log p) = p
    labels = torch.tensor([0, 1, 2])
    beta = importance_weights(logits, labels, torch.tensor(T, dtype=torch.float64))
    # (p @ T)_j by hand: j=0: .5·.8 + .3·.2 + .2·0 = .46; j=1: .5·.1 + .3·.7 + .2·.3 = .32; j=2: .22
    assert beta.tolist() == pytest.approx([0.5 / 0.46, 0.3 / 0.32, 0.2 / 0.22], rel=1e-12)
    assert not beta.requires_grad


def test_beta_is_one_without_noise_and_bounded_by_the_diagonal() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(64, 3, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (64,), generator=gen)
    identity = importance_weights(logits, labels, torch.eye(3, dtype=torch.float64))
    assert torch.allclose(identity, torch.ones(64, dtype=torch.float64))
    t = torch.tensor(T, dtype=torch.float64)
    beta = importance_weights(logits, labels, t)
    assert (beta >= 0).all() and (beta <= 1 / t.diagonal()[labels] + 1e-12).all()
    # A label the clean posterior rules out (p_ỹ ≈ 0) gets β ≈ 0: a confidently flipped label is dropped.
    confident = torch.tensor([[30.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(importance_weights(confident, torch.tensor([2]), t)) < 1e-10


def test_the_weighted_loss_is_beta_times_ce_with_beta_held_constant() -> None:
    logits = torch.tensor([P, [0.1, 0.6, 0.3]], dtype=torch.float64).log().requires_grad_(True)
    labels = torch.tensor([1, 2])
    t = torch.tensor(T, dtype=torch.float64)
    loss, beta = reweighted_cross_entropy(logits, labels, t)
    ce = losses.cross_entropy(logits, labels)
    assert loss.item() == pytest.approx((beta * ce).mean().item())
    (grad,) = torch.autograd.grad(loss, logits)
    (ce_grad,) = torch.autograd.grad((beta * ce).mean(), logits)  # β a constant
    assert torch.allclose(grad, ce_grad, atol=1e-15)
    capped, capped_beta = reweighted_cross_entropy(logits, labels, t, max_weight=0.9)
    assert capped_beta.max() <= 0.9 and capped.item() < loss.item()


# ------------------------------------------------------------------------------------------ method

LEARNS: dict[str, Any] = {
    "method": "reweight",
    "data.train_subset": 600,
    "baseline.epochs": 10,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
}


def test_settings_are_checked(digits_npz: Path) -> None:
    cfg = digits_config(digits_npz, method="reweight", **{"baseline.epochs": 7})
    assert ReweightMethod().schedule(cfg) == ForwardMethod().schedule(cfg)  # forward's split and Steps
    for bad, message in (
        ({"baseline.epochs": 1}, "reweight needs at least 1 epoch in each phase"),
        ({"reweight.max_weight": -1.0}, "must be ≥ 0"),
    ):
        with pytest.raises(UserError, match=message):
            validate(digits_config(digits_npz, method="reweight", **bad), methods=method_names())


@pytest.mark.parametrize("restart", [False, True])
def test_phase_two_restarts_only_when_asked(
    digits_npz: Path, monkeypatch: pytest.MonkeyPatch, restart: bool
) -> None:
    overrides = {"reweight.restart": restart, "data.train_subset": 128}
    cfg = digits_config(digits_npz, method="reweight", **overrides)
    ctx = digits_context(cfg)
    calls: list[int] = []
    monkeypatch.setattr(reweight_module, "reinitialise", lambda c: calls.append(1))
    state = TrainState(labels=ctx.noisy_labels.clone())
    state.extra[TRANSITION_KEY] = torch.eye(ctx.num_classes)
    optimizer = torch.optim.SGD(ctx.net.parameters(), lr=0.0)
    metrics = ReweightMethod().run_step(Step("train", 1, 2, 0.0, 0.0), 1, ctx, state, optimizer)
    assert len(calls) == int(restart)
    assert metrics["beta_mean"] == pytest.approx(1.0)  # T̂ = I: every weight is 1
    assert metrics["beta_capped_fraction"] == 0.0


@pytest.fixture(scope="module")
def learnt(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_reweight_learns_and_weights_wrong_labels_down(learnt: dict[str, Any]) -> None:
    history = json.loads(learnt["history_json"])
    assert [h["phase"] for h in history] == ["estimate"] * 5 + ["train"] * 5
    assert learnt["test_acc"] > 0.6  # ten classes: chance is 0.1
    estimated = next(h for h in history if "transition_error" in h)
    truth = torch.tensor(learnt["transition"], dtype=torch.float64)
    assert estimated["transition_error"] < transition_error(torch.eye(10, dtype=torch.float64), truth)
    for h in history[5:]:
        assert h["beta_mean_wrong"] < h["beta_mean_right"]
    last = history[-1]
    assert last["beta_mean_wrong"] < 0.6 * last["beta_mean_right"]
    assert all(math.isfinite(h["train_loss"]) for h in history)


# ------------------------------------------------------------------------------------------ resume

SHORT: dict[str, Any] = {"data.train_subset": 300, "baseline.epochs": 4, "eval_every": "epoch"}


def comparable(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(record["history_json"])]


@pytest.fixture(scope="module")
def uninterrupted(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, method="reweight", **SHORT)
    return execute(cfg, storage=tmp_path_factory.mktemp("a"), use_ray=False, progress=False).record


def test_phase_one_is_forwards_to_the_bit(
    uninterrupted: dict[str, Any], digits_npz: Path, tmp_path: Path
) -> None:
    cfg = digits_config(digits_npz, method="forward", **SHORT)
    forward = execute(cfg, storage=tmp_path, use_ray=False, progress=False).record
    ours, theirs = comparable(uninterrupted), comparable(forward)
    assert [h["phase"] for h in ours] == [h["phase"] for h in theirs] == ["estimate"] * 2 + ["train"] * 2
    assert ours[:2] == theirs[:2]  # the same CE epochs and the same T̂
    assert "beta_mean" in ours[2] and "beta_mean" not in theirs[2]


def test_resume_across_the_phase_boundary(
    uninterrupted: dict[str, Any], digits_npz: Path, tmp_path: Path
) -> None:
    """A crash before the first epoch of phase 2: T̂ must come back from the checkpoint."""
    cfg = digits_config(digits_npz, method="reweight", **SHORT)
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path, use_ray=False, progress=False, fail_at_step=2)
    out = execute(cfg, storage=tmp_path, use_ray=False, progress=False)
    assert out.resumed
    assert comparable(out.record) == comparable(uninterrupted)
    assert out.record["test_acc"] == uninterrupted["test_acc"]
