"""Experiment trackers through Ray's own logger callbacks: TensorBoard (`TBXLoggerCallback`) and MLflow
(`MLflowLoggerCallback`, to a local file store).

* `noisylab sweep --logger ...`: the callbacks go to Tune, which calls them for every trial's results
  (each epoch reaches Tune through Train's `TuneReportCallback`). TensorBoard event files land in each
  trial's Tune folder under the study; MLflow runs in `<storage>/<study>/mlruns`, one experiment per study.
* `noisylab run --logger ...`: no Tune is involved, so rank 0 of the workers (or the process, with
  `--workers 0`) logs after every epoch, as it writes metrics.jsonl: TensorBoard through its own writer
  (`tensorboard_log`: tags by meaning, steps as in metrics.jsonl, the hyper-parameters the method reads)
  into `runs/<run>/`; MLflow through Ray's callback, driven with `RunAsTrial` (the few attributes of a
  Tune trial it reads) into `<storage>/mlruns`, with the same hyper-parameters.

TensorBoard needs `tensorboardX` (installed with Ray Tune); MLflow needs the `mlflow` extra
(`pip install -e '.[mlflow]'`). Open them with `tensorboard --logdir runs` (or the study folder) and
`mlflow ui --backend-store-uri file:runs/mlruns`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from noisylab.config.run import RunConfig
from noisylab.errors import UserError

LOGGERS = ("tensorboard", "mlflow")
MLRUNS = "mlruns"


def check_loggers(names: Sequence[str]) -> tuple[str, ...]:
    """The names, checked (known, and their package importable), without duplicates."""
    out = tuple(dict.fromkeys(names))
    for name in out:
        if name not in LOGGERS:
            raise UserError(f"unknown --logger '{name}': choose {' or '.join(LOGGERS)}")
        module = "tensorboardX" if name == "tensorboard" else "mlflow"
        try:
            __import__(module)
        except ImportError:
            extra = "tensorboard" if name == "tensorboard" else "mlflow"
            raise UserError(
                f"--logger {name} needs the {module} package: pip install -e '.[{extra}]'"
            ) from None
    return out


def ray_callbacks(names: Sequence[str], mlflow_dir: Path, experiment: str) -> list[Any]:
    """Ray's logger callbacks for `names` (call `check_loggers` first)."""
    callbacks: list[Any] = []
    for name in names:
        if name == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            callbacks.append(TBXLoggerCallback())
        else:
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            callbacks.append(
                MLflowLoggerCallback(tracking_uri=mlflow_dir.resolve().as_uri(), experiment_name=experiment)
            )
    return callbacks


class RunAsTrial:
    """What Ray's logger callbacks read of a Tune `Trial`, for a run made without Tune."""

    def __init__(self, name: str, local_path: Path, config: dict[str, Any]) -> None:
        self.trial_id = self.trial_name = name
        self.local_path = str(local_path)
        self.config = config
        self.evaluated_params = config  # TensorBoard's hparams panel

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)

    def __str__(self) -> str:
        return self.trial_name


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(float(v))
    }


class RunTrackers:
    """Per-epoch `on_step` feeding the run's trackers; `close()` ends the tracker runs."""

    def __init__(
        self, names: Sequence[str], run_dir: Path, cfg: RunConfig, class_names: Sequence[str] = ()
    ) -> None:
        from noisylab.results.tensorboard import TensorBoardLog, hyperparameters

        self.board = TensorBoardLog(run_dir, cfg, class_names) if "tensorboard" in names else None
        self.trial = RunAsTrial(run_dir.name, run_dir, dict(hyperparameters(cfg)))
        others = [n for n in names if n != "tensorboard"]
        self.callbacks = ray_callbacks(others, run_dir.parent / MLRUNS, experiment="noisylab-runs")
        self.started = False

    def __call__(self, index: int, step: Any, metrics: dict[str, Any]) -> None:
        if self.board is not None:
            self.board(index, step, metrics)
        if not self.started:
            for cb in self.callbacks:
                if hasattr(cb, "setup") and not hasattr(cb, "_trial_writer"):
                    cb.setup()  # MLflow connects to its store here
                cb.log_trial_start(self.trial)
            self.started = True
        result = _scalars(metrics) | {"training_iteration": index + 1}
        for cb in self.callbacks:
            cb.log_trial_result(index + 1, self.trial, result)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
        if self.started:
            for cb in self.callbacks:
                cb.log_trial_end(self.trial, failed=False)


def combine(
    *steps: Callable[[int, Any, dict[str, Any]], None] | None,
) -> Callable[[int, Any, dict[str, Any]], None] | None:
    present = [s for s in steps if s is not None]
    if not present:
        return None

    def each(index: int, step: Any, metrics: dict[str, Any]) -> None:
        for s in present:
            s(index, step, metrics)

    return each
