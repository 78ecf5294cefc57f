"""The sweep's terminal output: one line per trial event with the counts of done / running / failed.

A module of its own because it subclasses Tune's `Callback` (importing Ray), and because Tune pickles
its callbacks with the experiment so a resumed sweep keeps reporting.
"""

from __future__ import annotations

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


class SweepProgress(Callback):
    def __init__(self, total: int, write: Callable[[str], None]) -> None:
        self.total = total
        self.write = write
        self.done = 0
        self.failed = 0
        self.running: set[str] = set()

    def _line(self, event: str, trial: Any, extra: str = "") -> None:
        head = f"[{self.done}/{self.total} done · {len(self.running)} running · {self.failed} failed]"
        self.write(f"{head} {event} {trial_label(trial.config)}{extra}")

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._line("started", trial)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.done += 1
        acc = (trial.last_result or {}).get("test_acc")
        self._line("finished", trial, f": test acc {100 * acc:.2f} %" if acc is not None else "")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._line("FAILED", trial, f" (logs in {trial.local_path})")
