"""The sweep's terminal output: one line per trial event with the counts of done / running / failed.

A module of its own because it subclasses Tune's `Callback` (importing Ray), and because Tune pickles
its callbacks with the experiment so a resumed sweep keeps reporting.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ray.tune import Callback


def trial_label(config: dict[str, Any]) -> str:
    """'paper fashion-mnist idn:0.3 seed 0 threshold=0.7' from a trial's Tune config."""
    point = config.get("grid", {})
    parts = [str(point[k]) for k in ("method", "data.dataset", "data.noise", "model.name") if k in point]
    sampled = [f"{k.split('.')[-1]}={_short(v)}" for k, v in config.items() if k != "grid"]
    return " ".join([*parts, f"seed {point.get('seed')}", *sampled])


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def write_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class SweepProgress(Callback):
    """Counts come from the trials' states, so a resumed sweep counts the trials it finished before.
    `write` must pickle (Tune stores its callbacks with the experiment): a module-level function."""

    def __init__(self, total: int, write: Callable[[str], None] = write_stderr) -> None:
        self.total = total
        self.write = write

    def _line(self, trials: list[Any], event: str, trial: Any, extra: str = "") -> None:
        # Tune calls back before it updates the trial's status: count this trial as the event leaves it.
        after = {"started": "RUNNING", "finished": "TERMINATED", "FAILED": "ERROR"}[event]
        states = [after if t is trial else t.status for t in trials]
        done, running, failed = (states.count(s) for s in ("TERMINATED", "RUNNING", "ERROR"))
        head = f"[{done}/{self.total} done · {running} running · {failed} failed]"
        self.write(f"{head} {event} {trial_label(trial.config)}{extra}")

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trials, "started", trial)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        acc = (trial.last_result or {}).get("test_acc")
        self._line(trials, "finished", trial, f": test acc {100 * acc:.2f} %" if acc is not None else "")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trials, "FAILED", trial, f" (logs in {trial.local_path})")
