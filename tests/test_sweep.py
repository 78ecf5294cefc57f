"""Studies as code, `noisylab sweep`, and a real two-trial sweep through Ray Tune on the digits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.errors import UserError
from noisylab.studies.progress import SweepProgress, trial_label
from noisylab.studies.tune import STUDY_FILE, check_cluster, plan, run_sweep
from noisylab.sweeps import Choice, Study, SweepProfile, Uniform, get_study, study_names

runner = CliRunner()


def digits_overrides(npz: Path) -> dict[str, Any]:
    return {
        "data.dataset": "npz",
        "data.root": str(npz),
        "data.noise": "sym:0.3",
        "data.train_subset": 300,
        "data.test_subset": 200,
        "model.width": 8,
        "data.crop_padding": 1,
        "data.flip": False,
        "baseline.epochs": 3,
    }


def tiny_study(npz: Path, **kwargs: Any) -> Study:
    return Study(
        name="tiny",
        description="ce on the digits, two seeds",
        grid={"method": ("ce",)},
        profiles={"cpu": SweepProfile("tiny", digits_overrides(npz), seeds=(0, 1), max_concurrent_trials=1)},
        **kwargs,
    )


def test_every_shipped_study_plans_on_both_profiles() -> None:
    for name in study_names():
        study = get_study(name)
        study.check()
        for profile in ("cpu", "gpu"):
            points = study.grid_points(profile)
            seeds = study.profile(profile).seeds
            assert len(points) == len(seeds) * len(points) // len(seeds)
            assert {p["seed"] for p in points} == set(seeds)
            assert study.num_trials(profile) == len(points) * (study.num_samples if study.search else 1)


def test_grid_is_the_cartesian_product_with_seed_fastest(digits_npz: Path) -> None:
    study = Study(
        name="g",
        description="",
        grid={"method": ("ce", "paper"), "data.noise": ("sym:0.2", "sym:0.4")},
        profiles={"cpu": SweepProfile("tiny", seeds=(3, 4))},
    )
    points = study.grid_points("cpu")
    assert len(points) == 8
    assert points[0] == {"method": "ce", "data.noise": "sym:0.2", "seed": 3}
    assert points[1]["seed"] == 4 and points[-1] == {"method": "paper", "data.noise": "sym:0.4", "seed": 4}


def test_a_study_naming_a_missing_field_is_refused(digits_npz: Path) -> None:
    bad = tiny_study(digits_npz, search={"refine.treshold": Uniform(0.1, 1.0)})
    with pytest.raises(UserError, match=r"refine.treshold.*not a config field"):
        plan(bad, "cpu", {})


def test_plan_checks_every_search_domain_end(digits_npz: Path) -> None:
    bad = tiny_study(digits_npz, search={"refine.threshold": Choice((0.5, -1.0))})
    with pytest.raises(UserError, match="threshold"):
        plan(bad, "cpu", {})
    good = tiny_study(digits_npz, search={"refine.threshold": Choice((0.5, 1.0))})
    configs = plan(good, "cpu", {})
    assert [c.seed for c in configs] == [0, 1] and all(c.profile == "tiny" for c in configs)


def test_unknown_study_and_missing_profile(digits_npz: Path) -> None:
    with pytest.raises(UserError, match="unknown study 'nope'"):
        get_study("nope")
    with pytest.raises(UserError, match="has no 'gpu' profile"):
        tiny_study(digits_npz).profile("gpu")


def test_cli_dry_run_lists_trials_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # CIFAR's files where the study reads them (data/<name>), present by name
    for folder, names in (("cifar10/cifar-10-batches-py", ("batches.meta", "test_batch")),
                          ("cifar100/cifar-100-python", ("meta", "train", "test"))):  # fmt: skip
        (tmp_path / "data" / folder).mkdir(parents=True)
        for name in (*names, *(f"data_batch_{i}" for i in range(1, 6))):
            (tmp_path / "data" / folder / name).touch()
    result = runner.invoke(
        app, ["sweep", "paper_table2", "--dry-run", "--profile", "gpu", "--storage", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    assert "234 trials" in result.output and "dividemix" in result.output and "cifar100" in result.output
    assert not (tmp_path / "s").exists()


def test_cli_study_from_a_user_file(tmp_path: Path, digits_npz: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "from noisylab.sweeps import Study, SweepProfile\n"
        "STUDY = Study(name='mine', description='two methods', grid={'method': ('ce', 'mixup')},\n"
        f"    profiles={{'cpu': SweepProfile('tiny', {digits_overrides(digits_npz)!r}, seeds=(0,))}})\n"
    )
    result = runner.invoke(app, ["sweep", str(path), "--dry-run", "--profile", "cpu"])
    assert result.exit_code == 0, result.output
    assert "2 trials" in result.output and "mixup" in result.output


def test_existing_sweep_needs_resume_and_the_same_options(tmp_path: Path, digits_npz: Path) -> None:
    study = tiny_study(digits_npz)
    directory = tmp_path / "tiny"
    directory.mkdir()
    marker = directory / STUDY_FILE
    marker.write_text(
        json.dumps({"format": "noisylab-study/1", "study": "tiny", "profile": "cpu", "overrides": {}})
    )
    before = marker.read_bytes()
    with pytest.raises(UserError, match="pass --resume"):
        run_sweep(study, profile="cpu", storage=tmp_path)
    with pytest.raises(UserError, match="started with overrides"):
        run_sweep(study, profile="cpu", storage=tmp_path, resume=True, user_overrides={"seed": 3})
    with pytest.raises(UserError, match="nothing to resume"):
        run_sweep(study, profile="cpu", storage=tmp_path / "elsewhere", resume=True)
    marker.write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        run_sweep(study, profile="cpu", storage=tmp_path, resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tiny").mkdir()
    (tmp_path / "other" / "tiny" / "data.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="not a noisylab sweep"):
        run_sweep(study, profile="cpu", storage=tmp_path / "other")
    assert (tmp_path / "other" / "tiny" / "data.bin").read_bytes() == b"x"
    marker.write_bytes(before)


def test_gpu_profile_on_a_cpu_cluster_is_refused(ray_session: None) -> None:
    gpu = SweepProfile("gpu", gpus_per_trial=0.5)
    with pytest.raises(UserError, match=r"asks for 0.5 GPU\(s\) per trial, but this machine has 0"):
        check_cluster(gpu, "gpu", "paper_table2", None)
    check_cluster(gpu, "gpu", "paper_table2", None, autoscaling=True)  # nodes come on demand
    with pytest.raises(UserError, match="asks for 64 CPUs"):
        check_cluster(SweepProfile("cpu", cpus_per_trial=64), "cpu", "s", None)


def test_progress_lines_count_trial_states() -> None:
    class FakeTrial:
        def __init__(self, status: str, seed: int) -> None:
            self.status = status
            self.config = {
                "grid": {"method": "ce", "data.noise": "idn:0.3", "seed": seed},
                "refine.threshold": 0.5,
            }
            self.last_result = {"test_acc": 0.8125}
            self.local_path = "/x"

    lines: list[str] = []
    trials = [
        FakeTrial("TERMINATED", 0),
        FakeTrial("RUNNING", 1),
        FakeTrial("ERROR", 2),
        FakeTrial("PENDING", 3),
    ]
    progress = SweepProgress(4, lines.append)
    progress.on_trial_complete(0, trials, trials[0])
    progress.on_trial_error(0, trials, trials[2])
    assert (
        lines[0]
        == "[1/4 done · 1 running · 1 failed] finished ce idn:0.3 seed 0 threshold=0.5: test acc 81.25 %"
    )
    assert lines[1].startswith("[1/4 done · 1 running · 1 failed] FAILED ce idn:0.3 seed 2")
    assert trial_label({"grid": {"method": "paper", "seed": 1}}) == "paper seed 1"


def _digest(paths: list[Path]) -> dict[str, str]:
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.mark.slow
def test_two_trial_sweep_through_tune_then_resume_keeps_every_record_once(
    ray_session: None, digits_npz: Path, tmp_path: Path
) -> None:
    study = tiny_study(digits_npz)
    lines: list[str] = []
    outcome = run_sweep(study, profile="cpu", storage=tmp_path, write=lines.append, loggers=("tensorboard",))
    assert outcome.failed == [] and outcome.finished == 2
    # Ray's TensorBoard logger callback wrote each trial's epochs into its Tune folder
    events = list((tmp_path / "tiny").rglob("events.out.tfevents.*"))
    assert len(events) == 2 and all(b"ray/tune/train_loss" in e.read_bytes() for e in events)
    assert len(outcome.records) == 2
    records = pl.concat([pl.read_parquet(p) for p in outcome.records])
    assert sorted(records["seed"].to_list()) == [0, 1]
    assert set(records["study"].to_list()) == {"tiny"}
    assert [json.loads(p)["seed"] for p in records.sort("seed")["params_json"]] == [0, 1]
    assert min(records["test_acc"].to_list()) > 0.1  # above chance on 10 classes after 3 epochs
    assert records["profile"].to_list() == ["tiny", "tiny"]
    before = _digest(outcome.records)

    # A resumed sweep re-runs nothing: the same records, byte for byte, and no new ones; and pickles
    # planted where Tune keeps its state are never loaded.
    marker = tmp_path / "PWNED"
    plant_tune_state(tmp_path / "tiny", marker)
    again = run_sweep(study, profile="cpu", storage=tmp_path, resume=True, write=lines.append)
    assert not marker.exists()
    assert again.failed == []
    assert _digest(again.records) == before
    assert len(list((tmp_path / "tiny" / "runs").glob("*/record.parquet"))) == 2
    assert any("resuming sweep 'tiny'" in line for line in lines)


class _Payload:
    """Pickles into a call of os.system, as a planted tuner.pkl would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def plant_tune_state(directory: Path, marker: Path) -> None:
    """A study folder holding someone else's pickles where Tune keeps its experiment state."""
    import pickle

    directory.mkdir(parents=True, exist_ok=True)
    for name in ("tuner.pkl", "trainable.pkl"):
        (directory / name).write_bytes(pickle.dumps(_Payload(marker)))
    (directory / "experiment_state-2000-01-01_00-00-00.json").write_text("{}")


def test_resume_never_unpickles_the_study_folder(
    ray_session: None, digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--resume builds a new Tuner; whatever Tune state lies in the folder is never loaded."""
    from ray import tune

    study = tiny_study(digits_npz)
    directory = tmp_path / "tiny"
    directory.mkdir()
    (directory / STUDY_FILE).write_text(
        json.dumps({"format": "noisylab-study/1", "study": "tiny", "profile": "cpu", "overrides": {}})
    )
    marker = tmp_path / "PWNED"
    plant_tune_state(directory, marker)

    class Stop(Exception):
        pass

    def stop(self: object) -> None:
        raise Stop  # the sweep got as far as fitting: every restore would have happened before

    monkeypatch.setattr(tune.Tuner, "fit", stop)
    with pytest.raises(Stop):
        run_sweep(study, profile="cpu", storage=tmp_path, resume=True, write=lambda line: None)
    assert not marker.exists()


def test_dry_run_shows_every_axis_and_names_the_trial_of_a_bad_value(
    tmp_path: Path, digits_npz: Path
) -> None:
    def study(thresholds: tuple[float, ...]) -> Path:
        path = tmp_path / "axes.py"
        path.write_text(
            "from noisylab.sweeps import Study, SweepProfile\n"
            "STUDY = Study(name='axes', description='thresholds',\n"
            f"    grid={{'method': ('paper',), 'refine.threshold': {thresholds!r}}},\n"
            f"    profiles={{'cpu': SweepProfile('tiny', {digits_overrides(digits_npz)!r}, seeds=(0,))}})\n"
        )
        return path

    ok = runner.invoke(
        app, ["sweep", str(study((0.5, 1.5))), "--dry-run", "--profile", "cpu"], env={"COLUMNS": "200"}
    )
    assert ok.exit_code == 0, ok.output
    assert "refine.threshold" in ok.output and "1.5" in ok.output
    bad = runner.invoke(app, ["sweep", str(study((0.5, -1.0))), "--dry-run", "--profile", "cpu"])
    assert bad.exit_code == 2
    assert "trial 2 (" in bad.output and "refine.threshold=-1.0" in bad.output, bad.output
