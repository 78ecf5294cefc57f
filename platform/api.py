"""noisylab from Python (notebooks, scripts): the CLI's four verbs as functions.

    from noisylab.api import load_config, read_records, run, sweep

    cfg = load_config(profile="tiny", method="ce", data__dataset="npz", data__root="digits.npz")
    record = run(cfg, storage="runs")              # dict: one result record
    frame = read_records("runs")                   # Polars: one row per run, `history` nested

Every function raises `noisylab.errors.UserError` (one line that says what to fix) for bad input, as the
CLI would print it. Runs default to `workers=0` (in this process, no Ray); pass workers=2 or more for
Ray Train (one worker trains in this process too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from noisylab.config.files import load_config as _load_config
from noisylab.config.files import read_overrides
from noisylab.config.run import RunConfig

__all__ = ["load_config", "read_records", "run", "sweep"]


def run(
    config: RunConfig | str | Path | None = None,
    *,
    storage: str | Path = "runs",
    name: str | None = None,
    progress: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train one run to the end (or resume it, or return its record when it had finished) and return
    its result record. `config`: a RunConfig, a saved config.json / overrides file, or None; keyword
    `overrides` use '__' for '.' (refine__threshold=0.5) and may name `profile`."""
    from noisylab.config.run import unresolved, validate, with_overrides
    from noisylab.runner import execute, needs_ray
    from noisylab.trainables import method_names

    if isinstance(config, RunConfig):
        given = {k.replace("__", "."): v for k, v in overrides.items()}
        # Unresolved first: the paper defaults `config` holds were chosen for its own noise and budget.
        cfg = validate(with_overrides(unresolved(config), given), methods=method_names())
    else:
        cfg = load_config(config, **overrides)
    outcome = execute(
        cfg,
        storage=Path(storage),
        name=name,
        progress=progress,
        use_ray=needs_ray(cfg, None),
        epoch_lines=progress,
    )
    return outcome.record


def load_config(path: str | Path | None = None, *, profile: str | None = None, **overrides: Any) -> RunConfig:
    """A checked RunConfig: `profile` (default: the file's, else cpu) ← the file (a saved config.json,
    a run folder, or a TOML/JSON overrides file) ← keyword overrides ('__' for '.':
    refine__threshold=0.5). Unless the file or the overrides say otherwise, `workers` is 0: the run
    trains in this process, without starting Ray."""
    from_file = read_overrides(Path(path)) if path is not None else {}
    if "workers" not in from_file:
        overrides.setdefault("workers", 0)
    return _load_config(path, profile=profile, **overrides)


def sweep(
    study: str,
    *,
    profile: str = "cpu",
    storage: str | Path = "studies",
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    address: str | None = None,
) -> pl.DataFrame:
    """Run a study (`noisylab studies` lists them) with Ray Tune and return its records."""
    from noisylab.studies.tune import run_sweep
    from noisylab.sweeps import get_study

    outcome = run_sweep(
        get_study(study),
        profile=profile,
        storage=str(storage),
        user_overrides=overrides or {},
        resume=resume,
        address=address,
        write=lambda line: None,
    )
    return read_records(outcome.directory)


def read_records(*locations: str | Path) -> pl.DataFrame:
    """Every result record below `locations` (run folders, study folders, stores, s3:// or gs:// URIs),
    one row per run, with `history` (one struct per epoch: phase, epoch, loss, test figures, selection)
    as a nested list column instead of the record's JSON text, and the `config` label of `report`."""
    from noisylab.config.diff import with_config_columns
    from noisylab.results.store import read_records as read

    frame = with_config_columns(read([str(p) for p in locations]))
    if "history_json" not in frame.columns:
        return frame
    # Python's json writes NaN (an empty selection's precision) as a bare token JSON lacks: make it null.
    text = frame["history_json"].str.replace_all(r"\bNaN\b", "null")
    history = text.str.json_decode(infer_schema_length=None).alias("history")
    return frame.with_columns(history).drop("history_json")
