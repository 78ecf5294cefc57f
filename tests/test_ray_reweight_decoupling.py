"""Reweight and Decoupling data-parallel: each runs under Ray Train with two workers, its per-batch
diagnostics summed over both ranks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers import digits_config

from noisylab.runner import execute

TWO_WORKERS: dict[str, Any] = {
    "workers": 2,
    "data.train_subset": 300,
    "baseline.epochs": 4,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
}


@pytest.mark.slow
def test_reweight_and_decoupling_on_two_workers(ray_session: None, digits_npz: Path, tmp_path: Path) -> None:
    for method, keys in (
        ("reweight", ("beta_mean", "beta_mean_wrong", "beta_mean_right")),
        ("decoupling", ("disagree_fraction", "update_fraction", "seen_noisy_share")),
    ):
        cfg = digits_config(digits_npz, method=method, **TWO_WORKERS)
        record = execute(cfg, storage=tmp_path / method, progress=False).record
        history = json.loads(record["history_json"])
        assert record["workers"] == 2 and len(history) == 4, method
        last = history[-1]
        assert all(math.isfinite(last[k]) for k in keys), (method, last)
        assert record["test_acc"] > 0.1, method  # above chance after 4 short epochs
    # both ranks' samples are counted: the share of wrong labels seen is the data's over the epoch
    assert last["seen_noisy_share"] == pytest.approx(record["realised_noise_rate"], abs=0.02)
