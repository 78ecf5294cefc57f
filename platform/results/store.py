"""Read result records from a store: local folders or object-store URIs, without Ray.

A location is a run folder, a study folder, or any folder above them (a local path, or an
``s3://``, ``gs://``, ``file://`` URI opened with `pyarrow.fs`). Every ``record.parquet`` below it is
read, and the rows are concatenated leniently: records written by an older schema version lack some
columns, which come back as nulls. Reading never writes, moves or locks anything.

Layouts found in practice:

    runs/<run>/record.parquet                     `noisylab run`
    <storage>/<study>/runs/<run>/record.parquet   `noisylab sweep STUDY` (beside Ray Tune's own files)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from noisylab.errors import UserError
from noisylab.results.records import CURVE_COLUMNS, RECORD_FILE, curve_summary

# Columns every record has had since schema version 1: a Parquet without them is not a record.
REQUIRED_COLUMNS = ("run_id", "method", "dataset", "noise_kind", "noise_rate", "seed", "test_acc")
# Columns the report relies on; absent in older records, they are added as nulls.
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "study": pl.String(),
    "params_json": pl.String(),
    "run_name": pl.String(),
    "noise": pl.String(),
    "profile": pl.String(),
    "model": pl.String(),
    "wall_seconds": pl.Float64(),
    "test_f1": pl.Float64(),
    "data_root": pl.String(),
    "data_fingerprint": pl.String(),
}
CURVE_SCHEMA: dict[str, pl.DataType] = {c: pl.Float64() for c in CURVE_COLUMNS} | {"best_epoch": pl.Int64()}
PATH_COLUMN = "record_path"  # added by the reader: where each row came from


@dataclass(frozen=True)
class _Found:
    """One record file: its display name, and how to open it."""

    name: str
    path: str
    filesystem: pafs.FileSystem | None  # None: a local path
    key: str  # the same file reached twice has the same key


def read_records(locations: Sequence[str], *, warn: Callable[[str], None] | None = None) -> pl.DataFrame:
    """Every record below `locations`, one row each, plus a `record_path` column.

    UserError (one line) when a location does not exist or holds no records, or when a
    `record.parquet` is corrupt or is not a noisylab record. The same file reached from two
    overlapping locations is read once; two files with the same `run_id` (a copied run folder)
    keep the first and report the second through `warn` (default: `warnings.warn`)."""
    if not locations:
        raise UserError(
            "no location given: pass a run folder, a study folder or a store (local or s3://, gs://)"
        )
    say = warn or (lambda message: warnings.warn(message, stacklevel=3))
    found: dict[str, _Found] = {}
    for location in locations:
        files = _find(location)
        if not files:
            raise UserError(
                f"{location} holds no {RECORD_FILE}: point at a finished run, a study folder or a store "
                "(records are written when a run ends)"
            )
        for f in files:
            found.setdefault(f.key, f)
    frames = [_read_one(f) for f in found.values()]
    records = _concat(frames, list(found.values()))
    records = _with_optional_columns(records)
    duplicated = records.filter(pl.col("run_id").is_duplicated())
    if duplicated.height:
        for run_id, paths in (
            duplicated.group_by("run_id", maintain_order=True).agg(pl.col(PATH_COLUMN)).rows()
        ):
            say(f"run {run_id} has {len(paths)} records ({', '.join(paths)}); keeping the first")
        records = records.unique("run_id", keep="first", maintain_order=True)
    return records


def filter_study(records: pl.DataFrame, study: str) -> pl.DataFrame:
    """The rows of one study (plain `noisylab run` records have no study and are dropped)."""
    return records.filter(pl.col("study") == study)


# ------------------------------------------------------------------------------------------ finding


def _is_uri(location: str) -> bool:
    return "://" in location


def _find(location: str) -> list[_Found]:
    if _is_uri(location):
        return _find_uri(location)
    path = Path(location)
    if not path.exists():
        raise UserError(f"{location} does not exist: pass a run folder, a study folder or a store")
    files = [path] if path.is_file() else sorted(p for p in path.rglob(RECORD_FILE) if p.is_file())
    return [_Found(str(p), str(p), None, str(p.resolve())) for p in files]


def _find_uri(location: str) -> list[_Found]:
    try:
        fs, root = pafs.FileSystem.from_uri(location)
        info = fs.get_file_info(root)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UserError(
            f"cannot open {location} ({_first_line(e)}): check the URI and your credentials"
        ) from None
    if info.type == pafs.FileType.NotFound:
        raise UserError(f"{location} does not exist: pass a run folder, a study folder or a store")
    scheme = location.split("://", 1)[0]
    if info.type == pafs.FileType.File:
        return [_Found(location, root, fs, f"{scheme}:{root}")]
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except (pa.ArrowException, OSError) as e:
        raise UserError(
            f"cannot list {location} ({_first_line(e)}): check the URI and your credentials"
        ) from None
    hits = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name == RECORD_FILE)
    return [_Found(_uri(scheme, p), p, fs, f"{scheme}:{p}") for p in hits]


def _uri(scheme: str, path: str) -> str:
    return f"file://{path}" if scheme == "file" else f"{scheme}://{path.lstrip('/')}"


# ------------------------------------------------------------------------------------------ reading


def _read_one(f: _Found) -> pl.DataFrame:
    # One file, read whole: `ParquetFile` does that without `pq.read_table`'s dataset layer, whose import
    # pulls in pandas (over a second of a report's start) for partitioning a single file never has.
    try:
        with pq.ParquetFile(f.path, filesystem=f.filesystem) as parquet:  # closed at once: stores hold many
            table = parquet.read()
    except (pa.ArrowException, OSError) as e:
        raise UserError(
            f"{f.name} is not a readable Parquet file ({_first_line(e)}): it is corrupt or half-copied; "
            "remove it or copy the run again"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing or table.num_rows == 0:
        what = f"lacks the record columns {', '.join(missing)}" if missing else "has no rows"
        raise UserError(
            f"{f.name} is not a noisylab result record (it {what}): move it out of the store, "
            "or point at a narrower folder"
        )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return _with_curve(frame).with_columns(pl.lit(f.name).alias(PATH_COLUMN))


def _with_curve(frame: pl.DataFrame) -> pl.DataFrame:
    """A record written before the test curve's summary was recorded gets it from its own history, so
    `--metric acc_last10` and `acc_best` report old runs too (`results.curve_summary`)."""
    if all(c in frame.columns for c in CURVE_COLUMNS) or "history_json" not in frame.columns:
        return frame
    rows = []
    for text in frame["history_json"]:
        try:
            history = json.loads(text) if text else []
        except (TypeError, ValueError):
            history = []
        evals = (
            [h for h in history if isinstance(h, dict) and "test_acc" in h]
            if isinstance(history, list)
            else []
        )
        rows.append(curve_summary(evals))
    summary = pl.DataFrame(rows, schema=CURVE_SCHEMA)
    return frame.with_columns(summary[c] for c in CURVE_COLUMNS if c not in frame.columns)


def _concat(frames: list[pl.DataFrame], files: list[_Found]) -> pl.DataFrame:
    """Lenient concatenation: missing columns become nulls, numeric types widen, struct fields merge."""
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except (pl.exceptions.PolarsError, TypeError):
        pass
    # Find the first record that does not fit with those before it, to name it.
    out = frames[0]
    for frame, f in zip(frames[1:], files[1:], strict=True):
        try:
            out = pl.concat([out, frame], how="diagonal_relaxed")
        except (pl.exceptions.PolarsError, TypeError) as e:
            raise UserError(
                f"{f.name} has columns whose types clash with the other records ({_first_line(e)}): "
                "read it separately, or move it out of the store"
            ) from None
    return out


def _with_optional_columns(records: pl.DataFrame) -> pl.DataFrame:
    absent = {k: v for k, v in OPTIONAL_COLUMNS.items() if k not in records.columns}
    return records.with_columns(pl.lit(None, dtype=t).alias(k) for k, t in absent.items())


def _first_line(e: Any) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
