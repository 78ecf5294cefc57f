"""SELFIE: the uncertainty of planted histories, refurbishment, the small-loss count and the union update,
the settings' defaults, a run that learns, and a crash-and-resume across a restart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import digits_config

from noisylab.config.run import validate
from noisylab.config.sections.selfie import settings
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.trainables import method_names
from noisylab.trainables.selfie import (
    SelfieMethod,
    clean_count,
    record_predictions,
    refurbish,
    selfie_loss,
    small_loss,
    uncertainty,
)

TIMING = {"seconds", "images_per_s"}
LEARNS: dict[str, Any] = {
    "method": "selfie",
    "data.train_subset": 600,
    "baseline.epochs": 8,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
    "selfie.warmup_epochs": 3,
}


def test_uncertainty_is_the_normalised_entropy_of_the_history() -> None:
    history = torch.tensor(
        [
            [2, 2, 2, 2],  # constant: 0
            [0, 0, 1, 2],  # P = (1/2, 1/4, 1/4, 0): H = (1/2)ln2 + (1/2)ln4 = 1.5 ln2; / ln4 = 0.75
            [0, 1, 2, 3],  # even over all 4 classes: 1
            [3, 1, 3, 3],  # P = (0, 1/4, 0, 3/4)
        ]
    )
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(4)
    assert uncertainty(history, 4).tolist() == pytest.approx([0.0, 0.75, 1.0, expected])
    # the paper's setting: q = 15, 10 classes, one dissenting prediction already exceeds ε = 0.05
    one_off = torch.tensor([[4] * 14 + [7]])
    by_hand = -(14 / 15 * math.log(14 / 15) + 1 / 15 * math.log(1 / 15)) / math.log(10)  # 0.1064
    assert uncertainty(one_off, 10).item() == pytest.approx(by_hand) and by_hand > 0.05


def test_a_constant_history_is_refurbished_with_its_class_and_a_mixed_one_is_not() -> None:
    history = torch.tensor([[2, 2, 2], [2, 1, 2], [0, 0, -1], [3, 1, 0], [1, 1, 1]])
    count = torch.tensor([3, 3, 2, 5, 4])  # row 2 is not full yet; rows 3 and 4 wrapped around
    before = torch.tensor([-1, -1, -1, 2, -1])  # row 3 was refurbished in an earlier epoch
    labels, certain = refurbish(history, count, before, num_classes=4, threshold=0.05)
    assert certain.tolist() == [True, False, False, False, True]
    assert labels.tolist() == [2, -1, -1, 2, 1]  # mixed: nothing new; an earlier refurbishment is kept
    loose, _ = refurbish(history, count, before, num_classes=4, threshold=0.6)
    assert loose.tolist() == [2, 2, -1, 2, 1]  # (2, 1, 2): F = 0.459 ≤ 0.6, the mode 2


def test_the_history_is_a_ring_buffer() -> None:
    history = torch.full((2, 3), -1)
    count = torch.zeros(2, dtype=torch.int64)
    for epoch in range(4):
        record_predictions(history, count, torch.tensor([epoch, -1 if epoch == 1 else 9]))
    assert history.tolist() == [[3, 1, 2], [9, 9, 9]]  # row 0 overwrote its oldest slot
    assert count.tolist() == [4, 3]  # row 1 was not visited in epoch 1


def test_the_small_loss_selection_keeps_exactly_the_ceiling_share() -> None:
    assert [clean_count(10, r) for r in (0.0, 0.3, 0.25, 0.5, 0.99)] == [10, 7, 8, 5, 1]  # ⌈(1 − τ)·B⌉
    assert clean_count(64, 0.3) == 45  # ⌈44.8⌉
    loss = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.3, 2.0, 0.05])
    for keep in range(1, 8):
        chosen = small_loss(loss, keep)
        assert chosen.sum().item() == keep
        assert loss[chosen].max() <= loss[~chosen].min() if keep < 7 else True
    assert small_loss(loss, 3).tolist() == [False, True, False, True, False, False, True]  # tie: the earlier


def test_the_update_is_the_mean_over_the_union_with_refurbished_labels() -> None:
    logits = torch.log(
        torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]])
    ).requires_grad_()
    noisy = torch.tensor([0, 1, 0, 2])  # sample 2 and 3 look mislabelled
    refurbished = torch.tensor([-1, -1, 2, -1])  # sample 2 refurbished to class 2
    loss, targets, chosen, used = selfie_loss(logits, noisy, refurbished, keep=2)
    assert chosen.tolist() == [True, True, False, False]  # CE: 0.36, 0.22, 1.61, 1.39
    assert used.tolist() == [True, True, True, False]
    assert targets.tolist() == [0, 1, 2, 2]
    assert loss.item() == pytest.approx(-(math.log(0.7) + math.log(0.8) + math.log(0.6)) / 3, rel=1e-5)
    loss.backward()
    assert logits.grad is not None and logits.grad[3].abs().sum().item() == 0.0  # left out of the update


def test_defaults_follow_the_paper_within_the_budget(digits_npz: Path) -> None:
    s = settings(digits_config(digits_npz, method="selfie", **{"baseline.epochs": 100}))
    assert (s.history, s.warmup_epochs, s.threshold, s.noise_rate, s.restarts) == (15, 25, 0.05, 0.3, 0)
    small = settings(digits_config(digits_npz, method="selfie", **{"baseline.epochs": 8}))
    assert (small.warmup_epochs, small.history) == (2, 2)  # a quarter, and q capped at the warm-up

    def refused(match: str, **overrides: Any) -> None:
        with pytest.raises(UserError, match=match):
            validate(digits_config(digits_npz, method="selfie", **overrides), methods=method_names())

    refused(r"selfie\.noise_rate", **{"data.noise": "file:labels.npy"})
    longer = {"selfie.history": 5, "selfie.warmup_epochs": 3, "baseline.epochs": 10}
    refused("is longer than selfie.warmup_epochs", **longer)
    refused("leaves no SELFIE epoch", **{"baseline.epochs": 4, "selfie.warmup_epochs": 4})
    refused(r"selfie\.threshold must lie in \[0, 1\]", **{"selfie.threshold": 1.5})


def test_the_schedule_repeats_the_budget_per_restart(digits_npz: Path) -> None:
    cfg = digits_config(digits_npz, method="selfie", **{"baseline.epochs": 4, "selfie.restarts": 1})
    steps = SelfieMethod().schedule(cfg)
    assert [(s.phase, s.iteration, s.epoch) for s in steps] == [
        ("warmup", 1, 1),
        ("selfie", 1, 1),
        ("selfie", 1, 2),
        ("selfie", 1, 3),
        ("warmup", 2, 1),
        ("selfie", 2, 1),
        ("selfie", 2, 2),
        ("selfie", 2, 3),
    ]


@pytest.fixture(scope="module")
def record(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_selfie_learns_and_refurbishes_mostly_right(record: dict[str, Any]) -> None:
    history = json.loads(record["history_json"])
    assert record["test_acc"] > 0.5  # ten classes: chance is 0.1
    selfie = [h for h in history if h["phase"] == "selfie"]
    assert len(selfie) == 5 and all("refurbished" not in h for h in history[:3])
    last = selfie[-1]
    assert last["refurbished"] > 0 and last["refurbished_precision"] > 1 - record["realised_noise_rate"]
    assert last["small_loss_precision"] > 1 - record["realised_noise_rate"] + 0.05
    assert 0.7 <= last["update_fraction"] <= 1.0  # at least the ⌈0.7·B⌉ small-loss samples
    assert last["effective_label_acc"] > 1 - record["realised_noise_rate"]


def test_resume_across_a_restart_matches_an_uninterrupted_run(digits_npz: Path, tmp_path: Path) -> None:
    short = LEARNS | {"data.train_subset": 300, "baseline.epochs": 2, "selfie.warmup_epochs": 1}
    short |= {"selfie.restarts": 1}  # steps: round 1 warm-up, SELFIE; round 2 the same
    cfg = digits_config(digits_npz, **short)
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=3)
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert out.resumed

    def comparable(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(r["history_json"])]

    assert comparable(out.record) == comparable(whole)
    assert out.record["final_labels_sha256"] == whole["final_labels_sha256"]
    history = comparable(whole)
    assert [h["phase"] for h in history] == ["warmup", "selfie"] * 2
    assert history[3]["refurbished"] >= history[1]["refurbished"] > 0  # kept across the restart
