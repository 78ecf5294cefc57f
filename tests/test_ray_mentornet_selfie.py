"""MentorNet (data-driven, so the batch percentile is gathered across ranks and the mentor fitted on every
rank) and SELFIE (predictions merged across ranks into the histories) under Ray Train with two workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import digits_config

from noisylab.runner import execute

SHORT: dict[str, Any] = {"data.train_subset": 300, "baseline.epochs": 3, "batch_size": 64, "workers": 2}


@pytest.mark.slow
def test_mentornet_and_selfie_train_with_two_workers(
    ray_session: None, digits_npz: Path, tmp_path: Path
) -> None:
    mentor = {"method": "mentornet", "mentornet.clean_fraction": 0.2, "mentornet.burn_in": 0.4}
    run = execute(digits_config(digits_npz, **SHORT, **mentor), storage=tmp_path / "m", progress=False)
    history = json.loads(run.record["history_json"])
    assert run.record["workers"] == 2 and len(history) == 3
    assert [("mentor_fit_accuracy" in h) for h in history] == [False, True, False]  # fitted once, epoch 2
    assert all(h["loss_threshold"] > 0 for h in history)

    selfie = {"method": "selfie", "selfie.warmup_epochs": 1}
    run = execute(digits_config(digits_npz, **SHORT, **selfie), storage=tmp_path / "s", progress=False)
    history = json.loads(run.record["history_json"])
    assert run.record["workers"] == 2 and [h["phase"] for h in history] == ["warmup", "selfie", "selfie"]
    # q = 1: after the warm-up every sample has one prediction, recorded by whichever rank saw it; a sample
    # missing from the merged histories could not be refurbished
    assert history[1]["refurbished"] == 300 and 0 < history[1]["refurbished_precision"] <= 1
