"""A run interrupted mid-way and started again ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import digits_config

from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train.runtime import CACHED

# Not part of what a run computes: timings, and the flag saying pre-training came from the shared cache
# (a crashed first attempt may have filled it, so the resumed run reuses it where the fixture did not).
TIMING = {"seconds", "images_per_s", CACHED}
SHORT: dict[str, Any] = {"data.train_subset": 300, "refine.threshold": 2.0}  # selects samples even early


def comparable(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(record["history_json"])]


@pytest.fixture(scope="module")
def uninterrupted(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **SHORT)
    return execute(cfg, storage=tmp_path_factory.mktemp("a"), use_ray=False, progress=False).record


@pytest.mark.parametrize("crash_before", [1, 3, 5])  # in warm-up, mid-iteration (stage 1 done), last step
def test_resume_matches_an_uninterrupted_run(
    uninterrupted: dict[str, Any],
    digits_npz: Path,
    tmp_path: Path,
    crash_before: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cache of its own: with the session's, an earlier test's pre-training is reused, the run starts at
    # step 1 and a crash there leaves no checkpoint, so the run gives its folder back (nothing to resume).
    monkeypatch.setenv("NOISYLAB_CACHE", str(tmp_path / "cache"))
    cfg = digits_config(digits_npz, **SHORT)
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path, use_ray=False, progress=False, fail_at_step=crash_before)
    run_dir = next(p for p in tmp_path.iterdir() if p.name != "cache")
    assert not (run_dir / "record.parquet").exists()  # nothing half-written
    out = execute(cfg, storage=tmp_path, use_ray=False, progress=False)
    assert out.resumed
    assert comparable(out.record) == comparable(uninterrupted)
    assert out.record["final_labels_sha256"] == uninterrupted["final_labels_sha256"]
    assert out.record["test_acc"] == uninterrupted["test_acc"]
    assert any(s["selected_size"] > 0 for s in out.record["stages"])  # the selection state was exercised


def test_finished_run_is_reported_not_retrained(
    uninterrupted: dict[str, Any], digits_npz: Path, tmp_path: Path
) -> None:
    cfg = digits_config(digits_npz, **SHORT)
    first = execute(cfg, storage=tmp_path, use_ray=False, progress=False)
    again = execute(cfg, storage=tmp_path, use_ray=False, progress=False)
    assert again.already_done and again.record["run_id"] == first.record["run_id"]


def test_a_checkpoint_from_another_config_is_refused(digits_npz: Path, tmp_path: Path) -> None:
    cfg = digits_config(digits_npz, **SHORT)
    with pytest.raises(RuntimeError):
        execute(cfg, storage=tmp_path, name="mine", use_ray=False, progress=False, fail_at_step=2)
    before = sorted(p.name for p in (tmp_path / "mine").iterdir())
    other = digits_config(digits_npz, **(SHORT | {"refine.threshold": 1.5}))
    with pytest.raises(UserError, match="was started with another config"):
        execute(other, storage=tmp_path, name="mine", use_ray=False, progress=False)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == before  # nothing touched


def test_a_diverged_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once per epoch the loss is checked: the epoch that turned it NaN is not checkpointed."""
    import noisylab.train.runtime as runtime
    from noisylab.trainables import get_method

    cfg = digits_config(digits_npz, **SHORT)
    method = get_method(cfg.method)
    schedule = method.schedule(cfg)
    real_check = runtime.check_finite_loss

    def nan_at_third(metrics: dict[str, Any], step: Any) -> None:
        if step == schedule[2]:
            metrics = metrics | {"train_loss": float("nan")}
        real_check(metrics, step)

    monkeypatch.setattr(runtime, "check_finite_loss", nan_at_third)
    with pytest.raises(UserError, match=rf"loss became nan at {schedule[2].place}; the last good checkpoint"):
        execute(cfg, storage=tmp_path, name="nan", use_ray=False, progress=False)
    saved = runtime.load_payload(tmp_path / "nan" / runtime.STATE_FILE)
    assert saved["state"]["step"] == 2  # the two good epochs, not the diverged one
    assert not (tmp_path / "nan" / "record.parquet").exists()


@pytest.mark.parametrize("existed", [False, True], ids=["new folder", "folder there before"])
def test_a_run_that_stops_before_its_first_checkpoint_gives_its_name_back(
    digits_npz: Path, tmp_path: Path, existed: bool
) -> None:
    """Its config.json alone would refuse the corrected command as started with another config."""
    cfg = digits_config(digits_npz, **SHORT)
    run_dir = tmp_path / "hb"
    if existed:
        run_dir.mkdir()
        (run_dir / "notes.txt").write_text("mine\n")
    with pytest.raises(RuntimeError, match="injected failure"):
        # Without the pre-training cache: a cached first epoch would start the run after the failure.
        execute(cfg, storage=tmp_path, name="hb", use_ray=False, fail_at_step=0, pretrain_cache=False)
    if existed:
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "notes.txt"]
    else:
        assert not run_dir.exists()
    corrected = digits_config(digits_npz, **(SHORT | {"method": "ce", "baseline.epochs": 2}))
    out = execute(corrected, storage=tmp_path, name="hb", use_ray=False, progress=False)
    assert not out.resumed and out.record["method"] == "ce"


def test_a_run_that_stops_after_a_checkpoint_keeps_its_claim(digits_npz: Path, tmp_path: Path) -> None:
    cfg = digits_config(digits_npz, **SHORT)
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path, name="hb", use_ray=False, fail_at_step=2, pretrain_cache=False)
    assert {"config.json", "state.pt"} <= {p.name for p in (tmp_path / "hb").iterdir()}
    other = digits_config(digits_npz, **(SHORT | {"method": "ce"}))
    with pytest.raises(UserError, match="was started with another config"):
        execute(other, storage=tmp_path, name="hb", use_ray=False, progress=False)


def test_the_wall_time_of_a_resumed_run_counts_every_attempt(
    digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first attempt made slow (0.5 s more per checkpoint), killed before its fourth epoch, then
    resumed: the record sums both attempts and keeps them apart, and `show` says so."""
    from typer.testing import CliRunner

    import noisylab.train.runtime as runtime
    from noisylab.cli import app

    cfg = digits_config(digits_npz, **SHORT)
    real_report = runtime.LocalReporter.report

    def slow(self: runtime.LocalReporter, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        time.sleep(0.5)
        real_report(self, metrics, payload)

    monkeypatch.setattr(runtime.LocalReporter, "report", slow)
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path, use_ray=False, progress=False, fail_at_step=3, pretrain_cache=False)
    monkeypatch.setattr(runtime.LocalReporter, "report", real_report)
    out = execute(cfg, storage=tmp_path, use_ray=False, progress=False, pretrain_cache=False)
    assert out.resumed
    first, last = out.record["attempt_seconds"]
    assert first >= 1.0  # the sleeps before its second and third checkpoints, at least
    assert out.record["wall_seconds"] == pytest.approx(first + last)
    history = json.loads(out.record["history_json"])
    assert out.record["wall_seconds"] >= sum(h["seconds"] for h in history)  # every epoch counted
    shown = CliRunner().invoke(app, ["show", str(out.directory)], env={"COLUMNS": "200"})
    total = out.record["wall_seconds"]
    assert f"{total:.0f} s over 2 attempts ({first:.0f} + {last:.0f} s)" in shown.stdout
