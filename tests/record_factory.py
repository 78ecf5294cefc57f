"""Synthetic result records shaped like `noisylab.results.records.build_record`'s output, for store and
report tests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from noisylab.config.profiles import make_config
from noisylab.noise import NoiseSpec
from noisylab.results.records import RECORD_FILE, SCHEMA_VERSION, write_record


def make_record(
    *,
    method: str = "paper",
    dataset: str = "cifar10",
    noise: str = "idn:0.2",
    seed: int = 0,
    test_acc: float = 0.5,
    test_f1: float | None = None,
    model: str = "preact_resnet18",
    profile: str = "gpu",
    study: str | None = None,
    params: dict[str, Any] | None = None,
    wall_seconds: float = 100.0,
    stages: list[dict[str, Any]] | None = None,
    iterations: list[dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One record; the pipeline's `stages`/`iterations` default to empty (a baseline run). Its saved
    config is the profile's, with the method, seed, trial parameters and `config` overrides applied."""
    spec = NoiseSpec.parse(noise)
    settings = {
        "method": method,
        "seed": seed,
        "model.name": model,
        "data.dataset": dataset,
        "data.noise": noise,
    }
    cfg = make_config(profile, settings | (params or {}) | (config or {}))
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex,
        "run_name": f"{method}-{dataset}-{noise}-s{seed}",
        "study": study,
        "params_json": json.dumps(params, sort_keys=True) if params is not None else None,
        "method": method,
        "dataset": dataset,
        "noise": spec.label(),
        "noise_kind": spec.kind,
        "noise_rate": spec.rate,
        "realised_noise_rate": spec.rate,
        "seed": seed,
        "profile": profile,
        "model": model,
        "width": 64,
        "workers": 1,
        "num_train": 1000,
        "num_test": 200,
        "num_classes": 10,
        "git_rev": "abc123",
        "fingerprint": "f" * 16,
        "config_json": cfg.to_json(),
        "started_at": "2025-01-01T00:00:00+00:00",
        "wall_seconds": wall_seconds,
        "test_acc": test_acc,
        "test_f1": test_acc if test_f1 is None else test_f1,
        "test_class_acc": [test_acc] * 10,
        "warmup_test_acc": None,
        "warmup_test_f1": None,
        "final_label_acc": iterations[-1]["label_acc"] if iterations else None,
        "final_labels_sha256": "0" * 64,
        "transition": [[1.0, 0.0], [0.0, 1.0]],
        "phases": [{"phase": "final", "iteration": 0, "epoch": 1, "test_acc": test_acc, "test_f1": test_acc}],
        "stages": stages or [],
        "iterations": iterations or [],
        "history_json": json.dumps(history or []),
    }


def stage(
    iteration: int, stage: int, precision: float, recall: float = 0.5, size: float = 100.0
) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "stage": stage,
        "epoch": stage,
        "selected_size": size,
        "selected_precision": precision,
        "selected_recall": recall,
    }


def iteration(iteration: int, label_precision: float, label_acc: float) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "consensus_size": 80.0,
        "consensus_precision": label_precision,
        "consensus_recall": 0.4,
        "consensus_label_precision": label_precision,
        "relabelled": 5.0,
        "label_acc": label_acc,
    }


def write_run(root: Path, record: dict[str, Any], *, study_layout: bool = False) -> Path:
    """Write `record` where `noisylab run` (runs/<name>/) or a sweep (<study>/runs/<name>/) would."""
    name = f"{record['run_name']}-{record['run_id'][:6]}"
    folder = root / record["study"] / "runs" / name if study_layout else root / name
    path = folder / RECORD_FILE
    write_record(record, path)
    return path
