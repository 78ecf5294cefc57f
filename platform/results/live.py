"""Live metrics: `metrics.jsonl` in the run folder, one JSON line per finished epoch, flushed at once.

Rank 0 of the workers writes it (in-process runs: the one process). Why the worker and not the driver:
the run folder is Ray Train's storage path, which every worker must reach anyway to persist its
checkpoints (one machine, or a shared file system on a cluster), and the worker has the numbers the
moment an epoch ends, with no dependency on how Train forwards reports to the driver.

`tail -f runs/<run>/metrics.jsonl` follows a run; `noisylab show RUN` reads it for an unfinished run.
A run that resumes appends the steps it replays; readers keep the last line of each step.

`describe` turns one epoch's metrics into the line the run prints and `show` prints again. It lives here,
beside the reader, and not in `runtime`: showing a run must not import torch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def _plain(value: Any) -> Any:
    """JSON has no NaN: a share of nothing (an empty selection's precision) is written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def append_metrics(path: Path, metrics: dict[str, Any]) -> None:
    line = json.dumps({"time": round(time.time(), 3)} | {k: _plain(v) for k, v in metrics.items()})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()


def metrics_writer(path: Path) -> Callable[[int, Any, dict[str, Any]], None]:
    """A `runtime.run_schedule` `on_step` callback appending each step's metrics to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return lambda index, step, metrics: append_metrics(path, metrics)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The steps logged so far, in order, the last line of each step kept; a half-written last line
    (the run is writing it) is skipped."""
    if not path.exists():
        return []
    steps: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            steps[row["step"]] = row
    return [steps[k] for k in sorted(steps)]


def describe(metrics: dict[str, Any]) -> str:
    """The epoch line of the terminal log: loss, throughput, selection and test figures present."""
    parts = [f"loss {metrics['train_loss']:.4f}", f"{metrics['images_per_s']:.0f} img/s"]
    if "stage" in metrics:
        parts.append(
            f"stage {metrics['stage']}: selected {metrics['selected_size']:.0f} "
            f"(labels right {percent(metrics['selected_precision'])})"
        )
    if "consensus_size" in metrics:
        parts.append(
            f"consensus {metrics['consensus_size']:.0f} (labels right "
            f"{percent(metrics['consensus_label_precision'])}), "
            f"label acc {percent(metrics['label_acc'])}"
        )
    if "test_acc" in metrics:
        parts.append(f"test acc {100 * metrics['test_acc']:.2f} %  F1 {100 * metrics['test_f1']:.2f} %")
    return "  ".join(parts)


def percent(x: float | None) -> str:
    """'12.3 %', or '-' for a share of nothing (an empty selection has no precision), as the summary."""
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f} %"
