"""Co-teaching: the cross update on planted losses, the R(t) schedule in a real run, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import digits_config

from noisylab.config.run import validate
from noisylab.config.sections.coteaching import forget_rate
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train.engine import split_batches
from noisylab.trainables import method_names
from noisylab.trainables.coteaching import coteaching_loss, drop_rate, kept_count

TIMING = {"seconds", "images_per_s"}
LEARNS: dict[str, Any] = {
    "method": "coteaching",
    "data.train_subset": 600,
    "baseline.epochs": 7,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
    "coteaching.gradual_epochs": 3,
}


def test_each_member_is_updated_only_on_the_others_small_loss_selection() -> None:
    # member 1 ranks samples 0 < 1 < ... < 5; member 2 ranks them the other way round
    planted = torch.tensor(
        [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]], requires_grad=True
    )
    loss, selected = coteaching_loss(planted, keep=2)
    assert selected.tolist() == [
        [True, True, False, False, False, False],
        [False, False, False, False, True, True],
    ]
    assert float(loss.detach()) == pytest.approx((0.5 + 0.6) / 2 + (0.9 + 0.8) / 2)  # ℓ_1 on S_2, ℓ_2 on S_1
    loss.backward()
    assert planted.grad is not None
    assert planted.grad[0].tolist() == [0.0, 0.0, 0.0, 0.0, 0.5, 0.5]  # member 1: the samples member 2 kept
    assert planted.grad[1].tolist() == [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]  # member 2: the samples member 1 kept
    with pytest.raises(ValueError, match="keep must lie"):
        coteaching_loss(planted, keep=0)


def test_schedule_and_counts() -> None:
    assert [drop_rate(t, tau=0.4, gradual_epochs=10) for t in (0, 5, 10, 30)] == pytest.approx(
        [0, 0.2, 0.4, 0.4]
    )
    assert [kept_count(r, 10) for r in (0.0, 0.2, 0.3, 0.999)] == [10, 8, 7, 1]
    assert kept_count(0.3, 64) == 44  # ⌊0.7 · 64⌋


def test_forget_rate_defaults_to_the_noise_rate_and_label_files_need_one(digits_npz: Path) -> None:
    def tau(**overrides: Any) -> float:
        return forget_rate(digits_config(digits_npz, method="coteaching", **overrides))

    assert tau() == 0.3  # sym:0.3
    assert tau(**{"coteaching.forget_rate": 0.1}) == 0.1
    assert tau(**{"data.noise": "none"}) == 0.0
    on_file = digits_config(digits_npz, method="coteaching", **{"data.noise": "file:labels.npy"})
    with pytest.raises(UserError, match=r"coteaching\.forget_rate"):
        validate(on_file, methods=method_names())
    with pytest.raises(UserError, match=r"forget_rate must lie in \[0, 1\)"):
        validate(digits_config(digits_npz, **{"coteaching.forget_rate": 1.0}), methods=method_names())


@pytest.fixture(scope="module")
def record(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_kept_fraction_follows_the_schedule_every_epoch(record: dict[str, Any]) -> None:
    history = json.loads(record["history_json"])
    batches = [len(b) for b in split_batches(torch.arange(600), 64)]  # one worker: the whole batch
    for epoch, h in enumerate(history, start=1):
        rate = 0.3 * min((epoch - 1) / 3, 1.0)
        assert h["forget_rate"] == pytest.approx(rate)
        assert h["kept_fraction"] == pytest.approx(sum(kept_count(rate, b) for b in batches) / 600)
    assert history[0]["kept_fraction"] == 1.0 and history[-1]["kept_fraction"] < 0.71


def test_coteaching_learns_and_keeps_cleaner_samples_than_it_sees(record: dict[str, Any]) -> None:
    history = json.loads(record["history_json"])
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < 0.6 * losses[0]
    assert record["test_acc"] > 0.5  # ten classes: chance is 0.1
    last = history[-1]
    assert last["test_acc_net1"] > 0.5 and last["test_acc_net2"] > 0.5
    seen = last["seen_precision"]
    assert seen == pytest.approx(1 - record["realised_noise_rate"], abs=0.01)
    assert last["kept_precision_net1"] > seen + 0.05 and last["kept_precision_net2"] > seen + 0.05
    assert record["method"] == "coteaching" and record["final_labels_sha256"]


def test_resume_mid_ramp_matches_an_uninterrupted_run(digits_npz: Path, tmp_path: Path) -> None:
    short = LEARNS | {"data.train_subset": 300, "baseline.epochs": 4}
    cfg = digits_config(digits_npz, **short)
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=2)
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert out.resumed

    def comparable(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(r["history_json"])]

    assert comparable(out.record) == comparable(whole)
    assert out.record["final_labels_sha256"] == whole["final_labels_sha256"]
