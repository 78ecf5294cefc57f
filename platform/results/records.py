"""Result records: one row per run, written atomically as Parquet, read without Ray.

The row carries the config, seed, git revision, the realised noise and its transition matrix, the
final and per-phase test accuracy and macro-F1, and the pipeline's diagnostics (each stage's
selection quality, each consensus set's quality, label accuracy after each iteration).
"""

from __future__ import annotations

import json
import math
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from noisylab.atomic import write_with
from noisylab.config.run import RunConfig

if TYPE_CHECKING:
    # Only a type here: prepare imports the dataset loaders and with them torch, which reading a
    # record (`noisylab show`, `report`, `plot`) must not pay for.
    from noisylab.data.prepare import DataBundle

RECORD_FILE = "record.parquet"
SCHEMA_VERSION = 1
# Test accuracy of one epoch swings by several points at small budgets, so a record also keeps the mean
# over the last evaluated epochs: Co-teaching's paper (Han et al. 2018, §4) reports the last 10.
LAST_EPOCHS = 10
# What a run's test curve is summarised by besides its last value; every column is a fraction.
CURVE_COLUMNS = ("test_acc_last10", "test_f1_last10", "best_test_acc", "best_test_f1", "best_epoch")

_STAGE_KEYS = ("selected_size", "selected_precision", "selected_recall")
_ITER_KEYS = (
    "consensus_size",
    "consensus_precision",
    "consensus_recall",
    "consensus_label_precision",
    "relabelled",
    "label_acc",
)


def git_revision() -> str:
    """Commit of the source tree this package runs from, with '-dirty' for uncommitted changes."""
    here = str(Path(__file__).resolve().parent)

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", here, *args], capture_output=True, text=True, timeout=5, check=True
        )
        return done.stdout.strip()

    try:
        rev = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"  # an installed wheel, or no git
    return f"{rev}-dirty" if dirty else rev


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def curve_summary(evals: list[dict[str, Any]]) -> dict[str, Any]:
    """The test curve's summary: the mean accuracy and macro-F1 over the last `LAST_EPOCHS` evaluated
    epochs (fewer when the run evaluated fewer), and the best epoch's accuracy, its F1 and its place (the
    1-based position among the run's epochs, warm-up and pre-training included). `evals`: the history
    entries that hold `test_acc`, in order, each with its schedule `step` when known."""
    accs: list[tuple[int, float, float | None]] = []
    for i, h in enumerate(evals):
        acc = _f(h.get("test_acc"))
        if acc is not None:
            accs.append((i, acc, _f(h.get("test_f1"))))
    if not accs:
        return dict.fromkeys(CURVE_COLUMNS)
    tail = accs[-LAST_EPOCHS:]
    f1s = [f for _, _, f in tail if f is not None]
    best = max(accs, key=lambda t: t[1])  # the first epoch of the highest accuracy
    place = evals[best[0]].get("step")
    return {
        "test_acc_last10": sum(a for _, a, _ in tail) / len(tail),
        "test_f1_last10": sum(f1s) / len(f1s) if f1s else None,
        "best_test_acc": best[1],
        "best_test_f1": best[2],
        "best_epoch": int(place) + 1 if place is not None else None,
    }


def build_record(
    cfg: RunConfig,
    bundle: DataBundle,
    history: list[dict[str, Any]],
    *,
    run_name: str,
    fingerprint: str,
    started_at: datetime,
    wall_seconds: float,
    final_labels_sha256: str,
    attempt_seconds: list[float],
    study: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row. `study` and `params` (the trial's point in the study's search space, as JSON) are set
    for runs made by `noisylab sweep`."""
    spec = cfg.data.noise_spec
    evals = [h for h in history if "test_acc" in h]
    final = evals[-1] if evals else {}
    warm = [h for h in evals if h["phase"] == "warmup"]
    iters = [h for h in history if "label_acc" in h]
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex,
        "run_name": run_name,
        "study": study,
        "params_json": json.dumps(params, sort_keys=True, default=list) if params is not None else None,
        "method": cfg.method,
        "dataset": bundle.dataset,
        "data_root": bundle.source.root if bundle.source else None,
        "data_fingerprint": bundle.source.fingerprint if bundle.source else None,
        "image_shape": list(bundle.train_images.shape[1:]),
        "noise": spec.label(),
        "noise_kind": spec.kind,
        "noise_rate": spec.rate,
        "realised_noise_rate": bundle.noise.realised_rate,
        "seed": cfg.seed,
        "profile": cfg.profile,
        "model": cfg.model.name,
        "width": cfg.model.width,
        "workers": cfg.workers,
        "num_train": len(bundle.clean_labels),
        "num_test": len(bundle.test_labels),
        "num_classes": bundle.num_classes,
        "git_rev": git_revision(),
        "fingerprint": fingerprint,
        "config_json": cfg.to_json(),
        "started_at": started_at.isoformat(timespec="seconds"),
        "wall_seconds": wall_seconds,
        # each attempt's seconds apart (a run stopped and resumed has several): wall_seconds is their
        # sum, plus the seconds of a pre-training reused from the cache
        "attempt_seconds": attempt_seconds,
        "test_acc": _f(final.get("test_acc")),
        "test_f1": _f(final.get("test_f1")),
        "test_class_acc": [_f(x) for x in final.get("test_class_acc", [])],
        **curve_summary(evals),
        "warmup_test_acc": _f(warm[-1]["test_acc"]) if warm else None,
        "warmup_test_f1": _f(warm[-1]["test_f1"]) if warm else None,
        "final_label_acc": _f(iters[-1]["label_acc"]) if iters else None,
        "final_labels_sha256": final_labels_sha256,
        "transition": bundle.noise.transition.tolist(),
        "phases": [
            {
                "phase": h["phase"],
                "iteration": h["iteration"],
                "epoch": h["epoch"],
                "test_acc": _f(h["test_acc"]),
                "test_f1": _f(h["test_f1"]),
            }
            for h in evals
        ],
        "stages": [
            {"iteration": h["iteration"], "stage": h["stage"], "epoch": h["epoch"]}
            | {k: _f(h[k]) for k in _STAGE_KEYS}
            for h in history
            if "stage" in h
        ],
        "iterations": [{"iteration": h["iteration"]} | {k: _f(h[k]) for k in _ITER_KEYS} for h in iters],
        "history_json": json.dumps(history),
    }


def write_record(record: dict[str, Any], path: Path) -> None:
    """Atomic (`atomic.write_with`): a reader sees the whole record or none."""
    frame = pl.DataFrame([record])
    write_with(path, frame.write_parquet)


def read_record(path: Path) -> dict[str, Any]:
    return pl.read_parquet(path).row(0, named=True)


def now() -> datetime:
    return datetime.now(UTC)
