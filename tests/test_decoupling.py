"""Decoupling: gradients only from the samples the two networks disagree on, nothing when they all agree,
the warm-up on every sample, a run that learns, resume mid-run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import digits_config

from noisylab.config.run import validate
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.trainables import method_names
from noisylab.trainables.decoupling import disagreement, disagreement_loss

TIMING = {"seconds", "images_per_s"}


def test_only_the_disagreeing_samples_carry_gradient() -> None:
    planted = torch.tensor([[0.5, 1.0, 2.0, 4.0], [3.0, 0.25, 1.5, 8.0]], requires_grad=True)
    update = torch.tensor([False, True, False, True])
    loss = disagreement_loss(planted, update)
    assert loss.item() == pytest.approx((1.0 + 4.0 + 0.25 + 8.0) / 2)  # each member's mean over U
    loss.backward()
    assert planted.grad is not None
    assert planted.grad.tolist() == [[0.0, 0.5, 0.0, 0.5], [0.0, 0.5, 0.0, 0.5]]  # agreeing rows: exactly 0


def test_all_agreeing_is_a_zero_loss_with_zero_gradient() -> None:
    planted = torch.tensor([[0.5, 1.0, 2.0], [3.0, float("inf"), 1.5]], requires_grad=True)
    loss = disagreement_loss(planted, torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert planted.grad is not None and planted.grad.tolist() == [[0.0] * 3] * 2  # no NaN from the inf


def test_the_denominator_floor_scales_down_a_step_on_few_samples() -> None:
    planted = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]], requires_grad=True)
    update = torch.tensor([False, False, True, False])
    assert disagreement_loss(planted, update, min_count=2.0).item() == pytest.approx((3.0 + 1.0) / 2)
    assert disagreement_loss(planted, update, min_count=1.0).item() == pytest.approx(3.0 + 1.0)
    with pytest.raises(ValueError, match="min_count"):
        disagreement_loss(planted, update, min_count=0.5)
    with pytest.raises(ValueError, match=r"\[2, B\]"):
        disagreement_loss(planted[0], update)


def test_disagreement_compares_the_arg_max_of_the_two_members() -> None:
    logits = torch.tensor(
        [
            [[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 1.0]],  # member 1 predicts 0, 2, 1
            [[1.0, 2.0, 0.0], [0.0, 1.0, 5.0], [9.0, 3.0, 1.0]],  # member 2 predicts 1, 2, 0
        ]
    )
    assert disagreement(logits).tolist() == [True, False, True]


def test_settings_are_checked(digits_npz: Path) -> None:
    for bad, message in (
        ({"decoupling.warmup_epochs": 2, "baseline.epochs": 2}, "leaves no epoch of updates by disagreement"),
        ({"decoupling.warmup_epochs": -1}, r"warmup_epochs must be ≥ 0"),
        ({"decoupling.min_batch_fraction": 1.5}, r"must lie in \[0, 1\]"),
    ):
        with pytest.raises(UserError, match=message):
            validate(digits_config(digits_npz, method="decoupling", **bad), methods=method_names())


# ------------------------------------------------------------------------------------------ runs

LEARNS: dict[str, Any] = {
    "method": "decoupling",
    "data.train_subset": 600,
    "baseline.epochs": 8,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
    "decoupling.warmup_epochs": 1,
}


@pytest.fixture(scope="module")
def record(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_decoupling_learns_and_updates_on_disagreements_only(record: dict[str, Any]) -> None:
    history = json.loads(record["history_json"])
    assert record["test_acc"] > 0.5  # ten classes: chance is 0.1
    last = history[-1]
    assert last["test_acc_net1"] > 0.5 and last["test_acc_net2"] > 0.5
    warm, *rest = history
    assert warm["update_fraction"] == 1.0
    assert warm["update_noisy_share"] == pytest.approx(warm["seen_noisy_share"])
    for h in rest:
        assert h["update_fraction"] == h["disagree_fraction"] < 1.0
        assert h["seen_noisy_share"] == pytest.approx(record["realised_noise_rate"], abs=0.01)
    # the networks come to agree: updates fall from most of the batch to a small share of it
    assert rest[-1]["update_fraction"] < 0.5 * warm["disagree_fraction"]


SHORT: dict[str, Any] = LEARNS | {"data.train_subset": 300, "baseline.epochs": 4, "eval_every": "epoch"}


def comparable(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(r["history_json"])]


def test_resume_after_the_warm_up_matches_an_uninterrupted_run(digits_npz: Path, tmp_path: Path) -> None:
    cfg = digits_config(digits_npz, **SHORT)
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):  # after warm-up and one epoch by disagreement
        execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=2)
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert out.resumed
    assert comparable(out.record) == comparable(whole)
    assert out.record["test_acc"] == whole["test_acc"]
