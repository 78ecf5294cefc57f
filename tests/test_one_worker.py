"""One worker on one machine trains in this process; a Ray of noisylab's own runs its workers at the
driver's priority; a run resumes from the newest checkpoint of either kind; Ray Train runs retry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import digits_config
from typer.testing import CliRunner

import noisylab.runner as runner_module
from noisylab.cli import app
from noisylab.retries import DEFAULT_MAX_FAILURES
from noisylab.runner import WORKER_NICENESS, execute, init_ray, needs_ray

runner = CliRunner()
# Not what a run computes: timings, and the flag that marks pre-training rows reused from the cache
# (the crashed attempt reuses the uninterrupted run's pre-training).
TIMING = {"seconds", "images_per_s", "pretrain_cached"}


def comparable(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(record["history_json"])]


def test_ray_of_our_own_runs_workers_at_the_drivers_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: None)
    monkeypatch.delenv(WORKER_NICENESS, raising=False)
    init_ray("auto")  # a cluster started by `ray start`: its raylets were started at their own niceness
    assert WORKER_NICENESS not in os.environ
    init_ray(None)
    assert os.environ[WORKER_NICENESS] == "0"
    monkeypatch.setenv(WORKER_NICENESS, "7")  # the user's own choice is kept
    init_ray("local")
    assert os.environ[WORKER_NICENESS] == "7"


def test_who_trains_through_ray(digits_npz: Path) -> None:
    one, two = digits_config(digits_npz, workers=1), digits_config(digits_npz, workers=2)
    assert not needs_ray(one, None) and needs_ray(one, "auto") and needs_ray(one, "local")
    assert needs_ray(two, None) and not needs_ray(digits_config(digits_npz, workers=0), "auto")


def test_one_worker_trains_in_this_process(
    digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("a one-worker run went through Ray Train")

    monkeypatch.setattr(runner_module, "_fit_with_ray", no_ray)
    args = ["run", "--dataset", "npz", "--data-root", str(digits_npz), "--storage", str(tmp_path)]
    args += ["--noise", "sym:0.2", "--method", "ce", "--profile", "tiny", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trains in this process" in result.stderr
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "state.pt").is_file() and not list(run_dir.glob("checkpoint_*"))
    assert json.loads((run_dir / "config.json").read_text())["workers"] == 1  # the same config as before


def test_retries_are_for_ray_train_runs(digits_npz: Path, tmp_path: Path) -> None:
    assert DEFAULT_MAX_FAILURES > 0  # a preempted node is survived without asking
    args = ["run", "--dataset", "npz", "--data-root", str(digits_npz), "--storage", str(tmp_path)]
    args += ["--noise", "sym:0.2", "--profile", "tiny", "--no-progress"]
    refused = runner.invoke(app, [*args, "--max-failures", "5"])
    assert refused.exit_code == 2 and refused.stderr.startswith("error: --max-failures applies to Ray Train")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_run_resumes_from_the_newest_checkpoint_of_either_kind(
    ray_session: None, digits_npz: Path, tmp_path: Path
) -> None:
    """Stopped in this process, finished through Ray Train (`--address`); stopped in Ray Train, finished
    in this process: both end where an uninterrupted run ends."""
    from ray.train import TrainingFailedError

    cfg = digits_config(digits_npz, workers=1, **{"data.train_subset": 300, "refine.threshold": 2.0})
    whole = execute(cfg, storage=tmp_path / "whole", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False, fail_at_step=3)
    via_ray = execute(cfg, storage=tmp_path / "a", progress=False)  # use_ray: as `--address` would
    assert via_ray.resumed and comparable(via_ray.record) == comparable(whole)
    assert via_ray.record["final_labels_sha256"] == whole["final_labels_sha256"]
    with pytest.raises(TrainingFailedError):
        execute(cfg, storage=tmp_path / "b", progress=False, fail_at_step=3)
    in_process = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert in_process.resumed and comparable(in_process.record) == comparable(whole)
    assert in_process.record["final_labels_sha256"] == whole["final_labels_sha256"]


@pytest.mark.slow
def test_a_ray_train_run_retries_from_its_checkpoint_by_itself(
    ray_session: None, digits_npz: Path, tmp_path: Path
) -> None:
    """A worker that dies (here: an injected failure before epoch 3) is restarted by Ray Train from the
    newest checkpoint within the same command, when max_failures allows it."""
    cfg = digits_config(digits_npz, workers=2, **{"data.train_subset": 300, "refine.threshold": 2.0})
    whole = execute(cfg, storage=tmp_path / "whole", progress=False).record
    retried = execute(cfg, storage=tmp_path / "b", progress=False, fail_at_step=3, max_failures=1)
    assert not retried.resumed  # one command: the retry happened inside it
    assert comparable(retried.record) == comparable(whole)
    assert retried.record["final_labels_sha256"] == whole["final_labels_sha256"]
