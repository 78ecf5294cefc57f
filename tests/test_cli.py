"""The command line: a happy path and the installed script (bad inputs: tests/test_bad_inputs.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from noisylab.cli import app

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
