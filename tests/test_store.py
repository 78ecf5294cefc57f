"""Reading a results store: every layout, old schemas, URIs, and each kind of bad input in one line."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from helpers import digits_config
from record_factory import make_record, write_run
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.errors import UserError
from noisylab.results.records import RECORD_FILE, write_record
from noisylab.results.store import PATH_COLUMN, filter_study, read_records
from noisylab.runner import RunOutcome, execute

runner = CliRunner()


@pytest.fixture(scope="module")
def genuine(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> RunOutcome:
    """One real (tiny, in-process) cross-entropy run: its record is what `noisylab run` writes."""
    storage = tmp_path_factory.mktemp("genuine")
    return execute(
        digits_config(
            digits_npz,
            method="ce",
            **{"baseline.epochs": 1, "data.train_subset": 100, "data.test_subset": 50},
        ),
        storage=storage,
        use_ray=False,
        progress=False,
        epoch_lines=False,
    )


def _store(root: Path) -> dict[str, Path]:
    """Two plain runs and a two-trial sweep, beside files a Tune experiment folder holds."""
    paths = {
        "plain_ce": write_run(root / "runs", make_record(method="ce", seed=0)),
        "plain_paper": write_run(root / "runs", make_record(method="paper", seed=0)),
        "trial0": write_run(
            root / "studies", make_record(study="s1", params={"method": "ce", "seed": 0}), study_layout=True
        ),
        "trial1": write_run(
            root / "studies", make_record(study="s1", params={"method": "ce", "seed": 1}), study_layout=True
        ),
    }
    (root / "studies" / "s1" / "experiment_state-2025.json").write_text("{}")
    (root / "studies" / "s1" / "run_trial_0").mkdir()
    (root / "studies" / "s1" / "run_trial_0" / "result.json").write_text("{}")
    return paths


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_finds_records_at_every_level(tmp_path: Path) -> None:
    paths = _store(tmp_path)
    before = _digest(tmp_path)
    assert read_records([str(tmp_path)]).height == 4
    assert read_records([str(tmp_path / "studies")]).height == 2
    assert read_records([str(tmp_path / "studies" / "s1")]).height == 2
    one = read_records([str(paths["trial0"].parent)])
    assert one.height == 1 and one[PATH_COLUMN][0] == str(paths["trial0"])
    assert read_records([str(paths["plain_ce"])])["method"].to_list() == ["ce"]  # the file itself
    assert _digest(tmp_path) == before  # reading wrote nothing


def test_study_filter(tmp_path: Path) -> None:
    _store(tmp_path)
    records = read_records([str(tmp_path)])
    assert filter_study(records, "s1").height == 2
    assert filter_study(records, "other").height == 0


def test_the_same_file_through_overlapping_locations_counts_once(tmp_path: Path) -> None:
    paths = _store(tmp_path)
    warned: list[str] = []
    records = read_records(
        [str(tmp_path), str(paths["trial0"].parent), f"{tmp_path}/./runs"], warn=warned.append
    )
    assert records.height == 4 and not warned


def test_a_copied_run_is_kept_once_with_a_warning(tmp_path: Path) -> None:
    paths = _store(tmp_path)
    shutil.copytree(paths["plain_ce"].parent, tmp_path / "runs" / "copy-of-ce")
    warned: list[str] = []
    records = read_records([str(tmp_path)], warn=warned.append)
    assert records.height == 4
    assert len(warned) == 1 and "2 records" in warned[0] and "copy-of-ce" in warned[0]


def test_file_uri_reads_the_same_rows(tmp_path: Path) -> None:
    _store(tmp_path)
    by_path = read_records([str(tmp_path)])
    by_uri = read_records([tmp_path.resolve().as_uri()])
    assert sorted(by_uri["run_id"].to_list()) == sorted(by_path["run_id"].to_list())
    assert all(p.startswith("file://") for p in by_uri[PATH_COLUMN].to_list())


def test_missing_uri_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_records([(tmp_path / "nowhere").as_uri()])


def test_older_records_lacking_columns_read_as_nulls(tmp_path: Path) -> None:
    new = make_record(method="paper", study="s1", params={"seed": 0})
    old = {k: v for k, v in make_record(method="ce").items() if k not in ("study", "params_json", "stages")}
    old["schema_version"] = 0
    write_record(new, tmp_path / "new" / RECORD_FILE)
    write_record(old, tmp_path / "old" / RECORD_FILE)
    records = read_records([str(tmp_path)]).sort("method")
    assert records["method"].to_list() == ["ce", "paper"]
    assert records["study"].to_list() == [None, "s1"]
    assert records["stages"].to_list()[0] is None
    # Records with no column the reader needs at all still get it, as nulls.
    only_old = read_records([str(tmp_path / "old")])
    assert only_old["study"].dtype == pl.String and only_old["study"].to_list() == [None]


def test_genuine_record_reads_beside_synthetic_ones(genuine: RunOutcome, tmp_path: Path) -> None:
    shutil.copytree(genuine.directory, tmp_path / "real")
    write_run(tmp_path, make_record(method="paper", dataset="npz", noise="sym:0.3"))
    records = read_records([str(tmp_path)])
    assert records.height == 2
    real = records.filter(pl.col("run_id") == genuine.record["run_id"]).row(0, named=True)
    assert real["test_acc"] == pytest.approx(genuine.record["test_acc"])
    assert real["method"] == "ce" and real["noise"] == "sym:0.3" and real["stages"] == []
    result = runner.invoke(app, ["report", str(tmp_path), "--format", "csv", "--table", "cells"])
    assert result.exit_code == 0, result.output
    cells = pl.read_csv(result.stdout.encode())
    ce = cells.filter(pl.col("method") == "ce").row(0, named=True)
    assert ce["n"] == 1 and ce["mean_pct"] == pytest.approx(100 * genuine.record["test_acc"])


# ------------------------------------------------------------------------------------- bad input


def _corrupt(root: Path) -> Path:
    path = root / "runs" / "broken" / RECORD_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this was cut short while copying")
    return path


def _foreign(root: Path) -> Path:
    path = root / "runs" / "other-tool" / RECORD_FILE
    path.parent.mkdir(parents=True)
    pl.DataFrame({"loss": [0.1, 0.2], "step": [1, 2]}).write_parquet(path)
    return path


def _empty_parquet(root: Path) -> Path:
    path = root / "runs" / "empty" / RECORD_FILE
    path.parent.mkdir(parents=True)
    pl.DataFrame([make_record()]).clear().write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_corrupt, "is not a readable Parquet file"),
        (_foreign, "lacks the record columns"),
        (_empty_parquet, "has no rows"),
    ],
)
def test_bad_record_files_are_named(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    write_run(tmp_path / "runs", make_record())  # a good record beside the bad one
    bad = make(tmp_path)
    with pytest.raises(UserError, match=message) as info:
        read_records([str(tmp_path)])
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_empty_locations(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_records([str(tmp_path / "nowhere")])
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(UserError, match=r"holds no record\.parquet"):
        read_records([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="no location"):
        read_records([])


def _refused(args: list[str], *messages: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(m in lines[0] for m in messages), lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["report", "plot"])
@pytest.mark.parametrize(
    ("make", "message"),
    [(_corrupt, "not a readable Parquet"), (_foreign, "not a noisylab result record")],
)
def test_cli_refuses_bad_records_and_leaves_them_alone(
    tmp_path: Path, command: str, make: Callable[[Path], Path], message: str
) -> None:
    write_run(tmp_path / "runs", make_record())
    bad = make(tmp_path)
    before = _digest(tmp_path)
    extra = ["--out", str(tmp_path / "figures")] if command == "plot" else []
    _refused([command, str(tmp_path), *extra], str(bad), message)
    assert _digest(tmp_path) == before
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("command", ["report", "plot"])
def test_cli_refuses_empty_and_missing_folders(tmp_path: Path, command: str) -> None:
    (tmp_path / "empty").mkdir()
    extra = ["--out", str(tmp_path / "figures")] if command == "plot" else []
    _refused([command, str(tmp_path / "empty"), *extra], "holds no record.parquet")
    _refused([command, str(tmp_path / "missing"), *extra], "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
