"""What the study benchmarks share: their command line, and running (or resuming) the study before
reading its records."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import polars as pl

from noisylab.results.store import read_records


def study_records(study: str, description: str | None, *, local: bool = False) -> pl.DataFrame:
    """Parse `--storage` and `--report-only`; unless the latter, run `noisylab sweep STUDY --profile cpu`
    (resuming an existing sweep; `local`: without Ray); return the study's records."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--storage", default="studies")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    directory = Path(args.storage) / study
    if not args.report_only:
        cmd = [sys.executable, "-m", "noisylab.cli", "sweep", study, "--profile", "cpu"]
        cmd += ["--storage", args.storage] + (["--local"] if local else [])
        cmd += ["--resume"] if (directory / "study.json").exists() else []
        subprocess.run(cmd, check=True)
    return read_records([str(directory)])
