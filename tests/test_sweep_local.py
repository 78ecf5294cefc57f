"""`noisylab sweep --local`: a study's grid in local processes, the same store and records as a Ray
sweep, resumed without re-running anything, and the studies it refuses."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_sweep import _digest, tiny_study
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.errors import Interrupted, UserError
from noisylab.studies.local import run_sweep_local
from noisylab.sweeps import Choice, SweepProfile


def test_two_trials_at_once_then_resume_keeps_every_record(digits_npz: Path, tmp_path: Path) -> None:
    study = tiny_study(digits_npz)
    study = dataclasses.replace(
        study, profiles={"cpu": dataclasses.replace(study.profiles["cpu"], max_concurrent_trials=2)}
    )
    lines: list[str] = []
    outcome = run_sweep_local(study, profile="cpu", storage=tmp_path, write=lines.append)
    assert outcome.failed == [] and outcome.finished == 2 and len(outcome.records) == 2
    records = pl.concat([pl.read_parquet(p) for p in outcome.records]).sort("seed")
    assert records["seed"].to_list() == [0, 1] and set(records["study"].to_list()) == {"tiny"}
    assert [json.loads(p)["seed"] for p in records["params_json"]] == [0, 1]
    assert min(records["test_acc"].to_list()) > 0.1  # above chance on 10 classes
    assert any("2 at once, no Ray" in line for line in lines)
    assert lines[-1].startswith("[2/2 done · 0 running · 0 failed] finished ce")
    assert json.loads((tmp_path / "tiny" / "study.json").read_text())["study"] == "tiny"
    before = _digest(outcome.records)

    with pytest.raises(UserError, match="pass --resume"):
        run_sweep_local(study, profile="cpu", storage=tmp_path, write=lines.append)
    again = run_sweep_local(study, profile="cpu", storage=tmp_path, resume=True, write=lines.append)
    assert again.failed == [] and _digest(again.records) == before  # nothing retrained or rewritten


def test_a_failing_trial_is_reported_and_the_others_finish(digits_npz: Path, tmp_path: Path) -> None:
    study = tiny_study(digits_npz)
    one_seed = {"cpu": dataclasses.replace(study.profiles["cpu"], seeds=(0,), max_concurrent_trials=2)}
    # present (a missing file stops the sweep before it starts) but not an .npz: its trial fails alone
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"not a zip archive")
    grid = {"method": ("ce",), "data.root": (str(damaged), str(digits_npz))}
    broken = dataclasses.replace(study, grid=grid, profiles=one_seed)
    outcome = run_sweep_local(broken, profile="cpu", storage=tmp_path / "store", write=lambda _: None)
    assert outcome.finished == 1 and len(outcome.records) == 1
    assert len(outcome.failed) == 1 and "damaged.npz" in outcome.failed[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"search": {"refine.threshold": Choice((0.5, 1.0))}, "num_samples": 2}, "samples a search space"),
        ({"profiles": {"cpu": SweepProfile("tiny", workers_per_trial=2)}}, "several workers or GPUs"),
    ],
)
def test_what_local_sweeps_refuse(
    digits_npz: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    study = dataclasses.replace(tiny_study(digits_npz), **change)
    with pytest.raises(UserError, match=message):
        run_sweep_local(study, profile="cpu", storage=tmp_path, write=lambda _: None)
    assert not (tmp_path / "tiny").exists()  # nothing written


def test_local_refuses_a_cluster_address(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sweep", "fmnist_cpu", "--local", "--address", "auto"])
    assert result.exit_code == 2 and "drop --address" in result.stderr


def test_ctrl_c_says_where_the_sweep_stopped_and_resume_finishes_it(
    digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the second trial runs (sent to the sweep alone: it passes it on to the trial)."""
    import noisylab.studies.local as sweep_local

    study = tiny_study(digits_npz)  # two trials, one at a time
    real_wait = sweep_local.wait
    calls = {"n": 0}

    def interrupted_on_the_second_trial(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # once the second trial has claimed its folder, i.e. is training
            deadline = time.monotonic() + 120
            while len(list(tmp_path.glob("tiny/runs/*/config.json"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(sweep_local, "wait", interrupted_on_the_second_trial)
    with pytest.raises(Interrupted) as stopped:
        run_sweep_local(study, profile="cpu", storage=tmp_path, write=lambda _: None)
    assert str(stopped.value) == (
        "sweep 'tiny' interrupted: 1 of 2 trials finished, 1 stopped mid-run (each resumes from its last "
        "checkpoint), 0 not started"
    )
    assert len(list((tmp_path / "tiny" / "runs").glob("*/record.parquet"))) == 1
    monkeypatch.setattr(sweep_local, "wait", real_wait)
    again = run_sweep_local(study, profile="cpu", storage=tmp_path, resume=True, write=lambda _: None)
    assert again.finished == 2 and again.failed == [] and len(again.records) == 2


def test_the_cli_names_the_command_that_continues_an_interrupted_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import noisylab.studies.local as sweep_local

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise Interrupted("sweep 'fmnist_cpu' interrupted: 1 of 4 trials finished")

    monkeypatch.setattr(sweep_local, "run_sweep_local", interrupted)
    argv = ["sweep", "fmnist_cpu", "--profile", "cpu", "--storage", str(tmp_path / "my studies"), "--local"]
    result = CliRunner().invoke(app, [*argv, "--set", "data.root=/data/f mnist"])
    assert result.exit_code == 130
    assert result.stderr.strip() == (
        "error: sweep 'fmnist_cpu' interrupted: 1 of 4 trials finished; continue with: noisylab sweep "
        f"fmnist_cpu --profile cpu --storage '{tmp_path / 'my studies'}' --local --resume "
        "--set 'data.root=/data/f mnist'"
    )
