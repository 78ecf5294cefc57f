"""The command line: a happy path and the installed script (bad inputs: tests/test_bad_inputs.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.config.run import RunConfig

runner = CliRunner()
TOO_MANY = (os.cpu_count() or 1) + 1
TINY = [
    "--profile",
    "tiny",
    "--workers",
    "0",
    "--no-progress",
    "--set",
    "data.flip=false",
    "--set",
    "data.crop_padding=1",
]


def digits_args(npz: Path, storage: Path) -> list[str]:
    return [
        "run",
        "--dataset",
        "npz",
        "--data-root",
        str(npz),
        "--storage",
        str(storage),
        "--noise",
        "sym:0.2",
        *TINY,
    ]


def test_run_then_show(digits_npz: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, digits_args(digits_npz, tmp_path))
    assert result.exit_code == 0, result.output
    assert "test accuracy %" in result.stdout and "refinement" in result.stdout
    assert "profile tiny" in result.stderr
    (run_dir,) = tmp_path.iterdir()
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.json",
        "record.parquet",
        "final_labels.npy",
        "state.pt",
    }
    shown = runner.invoke(app, ["show", str(run_dir)])
    assert shown.exit_code == 0 and run_dir.name in shown.stdout
    again = runner.invoke(app, digits_args(digits_npz, tmp_path))  # same command: nothing retrained
    assert again.exit_code == 0 and "already finished" in again.stderr


def test_help_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "noisylab.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("run", "show", "fields", "profiles"):
        assert command in out


def test_fields_lists_dotted_paths() -> None:
    result = runner.invoke(app, ["fields"])
    assert result.exit_code == 0 and "refine.threshold" in result.stdout


def test_console_script_is_installed() -> None:
    exe = shutil.which("noisylab", path=str(Path(sys.executable).parent))
    assert exe is not None
    done = subprocess.run([exe, "run", "--noise", "idn:2"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: ")


def test_live_metrics_config_repeat_and_progress(digits_npz: Path, tmp_path: Path) -> None:
    from noisylab.results.live import read_metrics
    from noisylab.train.runtime import CACHED

    args = [*digits_args(digits_npz, tmp_path / "a"), "--set", "refine.threshold=0.5", "--dataset-name", "dg"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "16×16 px" in result.stderr  # the image size the run uses
    (run_dir,) = (tmp_path / "a").iterdir()
    steps = read_metrics(run_dir / "metrics.jsonl")
    history = json.loads(__import__("polars").read_parquet(run_dir / "record.parquet")["history_json"][0])
    # every epoch trained here (pre-training epochs reused from the cache were not trained, not logged)
    trained = [h["step"] for h in history if not h.get(CACHED)]
    assert [s["step"] for s in steps] == trained and trained[-1] == len(history) - 1
    assert steps[-1]["test_acc"] == pytest.approx(history[-1]["test_acc"])
    shown = runner.invoke(app, ["show", str(run_dir)])
    assert "refine.threshold" in shown.stdout and "data.name" in shown.stdout

    # The saved config repeats the run exactly (same fingerprint); an option given varies it.
    saved = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    again = runner.invoke(
        app, ["run", "--config", str(run_dir / "config.json"), "--storage", str(tmp_path / "a")]
    )
    assert again.exit_code == 0 and "already finished" in again.stderr
    varied = runner.invoke(
        app,
        ["run", "--config", str(run_dir), "--seed", "1", "--storage", str(tmp_path / "b"), "--no-progress"],
    )
    assert varied.exit_code == 0, varied.output
    (other,) = (tmp_path / "b").iterdir()
    cfg = RunConfig.from_dict(json.loads((other / "config.json").read_text()))
    assert cfg.seed == 1 and cfg.refine.threshold == 0.5 and cfg.data.name == "dg"
    assert cfg.to_dict() | {"seed": 0} == saved.to_dict()

    # An unfinished run: its progress so far.
    (other / "record.parquet").unlink()
    lines = (other / "metrics.jsonl").read_text().splitlines()
    (other / "metrics.jsonl").write_text("\n".join(lines[:2]) + '\n{"half')
    progress = runner.invoke(app, ["show", str(other)])
    assert (
        progress.exit_code == 0 and "not finished" in progress.stdout and "2 epochs logged" in progress.stdout
    )


def test_overrides_file_in_toml(digits_npz: Path, tmp_path: Path) -> None:
    from noisylab.config.files import load_config, read_overrides

    path = tmp_path / "vary.toml"
    path.write_text('method = "ce"\n[refine]\nthreshold = 0.25\n[data]\n"crop_padding" = 1\n')
    assert read_overrides(path) == {"method": "ce", "refine.threshold": 0.25, "data.crop_padding": 1}
    cfg = load_config(path, profile="tiny", data__root=str(digits_npz), data__dataset="npz")
    assert (cfg.method, cfg.refine.threshold, cfg.data.crop_padding, cfg.profile) == ("ce", 0.25, 1, "tiny")


def test_fields_have_types_and_descriptions() -> None:
    from noisylab.config.fielddocs import describe_fields
    from noisylab.config.run import field_paths

    described = describe_fields()
    assert set(described) == set(field_paths())
    missing = [path for path, (_, text) in described.items() if not text]
    assert not missing, f"fields without a comment where they are defined: {missing}"
    assert (
        "threshold" in described["refine.threshold"][1].lower() or "1.0" in described["refine.threshold"][1]
    )
    result = runner.invoke(app, ["fields"], env={"COLUMNS": "250"})
    assert "float or None" in result.stdout and "NoneType" not in result.stdout


def test_help_shows_examples_and_every_profile() -> None:
    from noisylab.config.profiles import PROFILES

    for command in ("run", "sweep", "report", "plot", "show", "labels", "fields"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "noisylab " + command in result.stdout, command
    run_help = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).stdout
    # Off a terminal help is not wrapped (click's test runner forces 80 columns, and click broke lines
    # after hyphens: "cpu-" / "memorise"): every option is one whole line.
    assert all(name in run_help for name in PROFILES), run_help
    assert any(
        line.lstrip().startswith("--max-failures") and "[default: 3]" in line
        for line in run_help.splitlines()
    )


def test_help_is_wide_on_a_wide_terminal() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "noisylab.cli", "run", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    assert "cpu-memorise" in result.stdout and max(map(len, result.stdout.splitlines())) > 80


def test_a_logger_without_its_package_is_one_line(
    digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the mlflow extra were not installed
    result = runner.invoke(app, [*digits_args(digits_npz, tmp_path), "--logger", "mlflow"])
    assert result.exit_code == 2 and "pip install -e '.[mlflow]'" in result.stderr
    result = runner.invoke(app, [*digits_args(digits_npz, tmp_path), "--logger", "wandb"])
    assert result.exit_code == 2 and "unknown --logger 'wandb'" in result.stderr
    assert not list(tmp_path.iterdir())  # refused before anything was written


# Reading commands must start fast: torch alone takes seconds to import on a small machine, Ray as
# long again, and pandas (pulled in by pyarrow's dataset layer) over a second. None of them is
# needed to read, tabulate or draw records.
HEAVY_MODULES = ("torch", "torchvision", "timm", "ray", "pandas")
_REPORT_LOADED = """
import atexit, json, sys
atexit.register(lambda: print("LOADED " + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules))))
from noisylab.cli import main
sys.argv = ["noisylab", *{args!r}]
main()
"""


def _heavy_modules_loaded(args: list[str]) -> list[str]:
    """Run `noisylab ARGS` in a fresh interpreter; the heavy modules imported when it exits."""
    code = _REPORT_LOADED.format(heavy=HEAVY_MODULES, args=args)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("LOADED ")]
    loaded: list[str] = json.loads(line.removeprefix("LOADED "))
    return loaded


def test_reading_commands_import_neither_torch_nor_ray(tmp_path: Path) -> None:
    from record_factory import iteration, make_record, stage, write_run

    from noisylab.results.live import METRICS_FILE, append_metrics

    runs = tmp_path / "runs"
    finished = write_run(runs, make_record(stages=[stage(1, 1, 0.9)], iterations=[iteration(1, 0.9, 0.8)]))
    write_run(runs, make_record(method="ce", seed=1, test_acc=0.6))
    unfinished = tmp_path / "unfinished"  # a run that crashed after one epoch: config and metrics only
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps(RunConfig().to_dict()))
    append_metrics(
        unfinished / METRICS_FILE,
        {"step": 0, "phase": "warmup", "iteration": 0, "epoch": 1, "train_loss": 1.0, "images_per_s": 9.0},
    )
    for args in (
        ["report", "--help"],
        ["report", str(runs), "--table", "all", "--vs-paper"],
        ["report", "--study", "paper_table2"],
        ["show", str(finished.parent)],
        ["show", str(unfinished)],
        ["plot", str(runs), "--output", str(tmp_path / "figures")],
    ):
        assert _heavy_modules_loaded(args) == [], args
