"""Studies as code: one module per study, each a typed search space over the run config.

A `Study` names a grid (dotted config paths → values; every combination is a trial, seeds included),
optionally a sampled search space (`Choice`, `Uniform`, `LogUniform`) drawn `num_samples` times per grid
point, the metric to optimise, an early-stopping scheduler, and one `SweepProfile` per hardware target
(`cpu`, `gpu`): the run profile, fixed overrides and the resources of one trial.

Everything here is plain data: listing, checking and planning a study needs neither Ray nor torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from noisylab.config.run import field_paths
from noisylab.errors import UserError

STUDY_MODULES = (
    "paper_table2",
    "paper_table3",
    "medical",
    "stages_thresholds",
    "fmnist_cpu",
    "fmnist_methods",
    "paper_ablation",
    "fmnist_ranking",
)


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    def to_tune(self) -> Any:
        from ray import tune

        return tune.choice(list(self.values))


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def to_tune(self) -> Any:
        from ray import tune

        return tune.uniform(self.low, self.high)


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def to_tune(self) -> Any:
        from ray import tune

        return tune.loguniform(self.low, self.high)


Domain = Choice | Uniform | LogUniform


@dataclass(frozen=True)
class SweepProfile:
    """How a study runs on one kind of hardware."""

    run_profile: str  # a name from noisylab.config.profiles.PROFILES
    overrides: Mapping[str, Any] = field(default_factory=dict)  # on top of the run profile, every trial
    seeds: tuple[int, ...] = (0, 1, 2)  # a grid axis of every study: mean ± std over these
    cpus_per_trial: float = 1.0  # Ray resources reserved by one trial's Train worker(s), each
    gpus_per_trial: float = 0.0  # fractional values pack several trials onto one GPU
    workers_per_trial: int = 1  # Ray Train workers of one trial (data parallel)
    max_concurrent_trials: int = 1


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    grid: Mapping[str, Sequence[Any]]
    profiles: Mapping[str, SweepProfile]
    search: Mapping[str, Domain] = field(default_factory=dict)
    num_samples: int = 1  # samples of `search` per grid point
    metric: str = "test_acc"
    mode: Literal["max", "min"] = "max"
    scheduler: Literal["fifo", "asha"] = "fifo"
    asha_grace_period: int = 1  # reports (epochs) before ASHA may stop a trial
    asha_reduction_factor: int = 3

    def paths(self) -> list[str]:
        """Every config path the study sets, from any of its parts."""
        out = list(self.grid) + list(self.search)
        for p in self.profiles.values():
            out += list(p.overrides)
        return out

    def check(self) -> None:
        """A study naming a config field that does not exist is refused before anything runs."""
        known = field_paths()
        for path in self.paths():
            if path not in known:
                raise UserError(
                    f"study '{self.name}' sets '{path}', which is not a config field "
                    "(`noisylab fields` lists them)"
                )
        for path, values in self.grid.items():
            if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
                raise UserError(f"study '{self.name}': grid axis '{path}' needs a non-empty list of values")

    def profile(self, name: str) -> SweepProfile:
        """The study profile `name`; `tiny` (a smoke test) is derived from the cpu profile unless the study
        defines its own."""
        if name in self.profiles:
            return self.profiles[name]
        if name == SMOKE:
            return smoke_profile(self)
        choices = [*self.profiles, f"{SMOKE} (a smoke test)"]
        raise UserError(f"study '{self.name}' has no '{name}' profile: choose one of {', '.join(choices)}")

    def grid_points(self, profile: str) -> list[dict[str, Any]]:
        """The Cartesian product of the grid axes and the profile's seeds, in a stable order (first axis
        slowest, seed fastest)."""
        axes = dict(self.grid) | {"seed": self.profile(profile).seeds}
        keys = list(axes)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]

    def num_trials(self, profile: str) -> int:
        return len(self.grid_points(profile)) * (self.num_samples if self.search else 1)


SMOKE = "tiny"  # the study profile every study has: its grid on the `tiny` run profile, one seed


def smoke_profile(study: Study) -> SweepProfile:
    """`noisylab sweep STUDY --profile tiny`: every grid point once (seed 0) on the `tiny` run profile,
    one trial at a time on one CPU, with the study's cpu settings (a medical threshold, an image size), so
    a study is checked end to end in minutes before its real budget is spent on it."""
    base = study.profiles.get("cpu") or next(iter(study.profiles.values()))
    return SweepProfile(SMOKE, dict(base.overrides), seeds=(0,), cpus_per_trial=1, max_concurrent_trials=1)


def study_names() -> tuple[str, ...]:
    return STUDY_MODULES


def get_study(name: str) -> Study:
    """A study by name, or from a Python file of the user's that defines `STUDY = Study(...)`."""
    if name.endswith(".py"):
        return _study_from_file(Path(name))
    if name not in STUDY_MODULES:
        raise UserError(
            f"unknown study '{name}': choose one of {', '.join(STUDY_MODULES)}, "
            "or pass a .py file defining STUDY"
        )
    module = importlib.import_module(f"noisylab.sweeps.{name}")
    study: Study = module.STUDY
    return study


def _study_from_file(path: Path) -> Study:
    if not path.is_file():
        raise UserError(f"no study file at {path}")
    spec = importlib.util.spec_from_file_location(f"noisylab_user_study_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UserError(
            f"{path}:{e.lineno}: syntax error in the study file ({e.msg}); fix that line"
        ) from None
    except UserError:
        raise
    except Exception as e:  # the user's code failed: say where, not with a traceback of ours
        frames = traceback.extract_tb(e.__traceback__)
        lines = [f.lineno for f in frames if Path(f.filename).resolve() == path.resolve()]
        where = f"{path}:{lines[-1]}" if lines else str(path)
        raise UserError(f"{where}: the study file raised {type(e).__name__}: {e}; fix that line") from None
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise UserError(f"{path} defines no STUDY = noisylab.sweeps.Study(...)")
    return study


def gpu_profile(**overrides: Any) -> SweepProfile:
    """The report's recipe, one trial per GPU, three seeds."""
    return SweepProfile("gpu", overrides, cpus_per_trial=4, gpus_per_trial=1, max_concurrent_trials=8)


def cpu_profile(run_profile: str = "cpu", **overrides: Any) -> SweepProfile:
    """A laptop: one trial at a time on every core, two seeds."""
    return SweepProfile(run_profile, overrides, seeds=(0, 1), cpus_per_trial=1, max_concurrent_trials=1)
