"""Driver side of `noisylab sweep`: a study's trials through Ray Tune, each trial one Ray Train run.

Layout of a sweep under the storage folder:

    <storage>/<study>/study.json                what was asked (study, profile, overrides)
    <storage>/<study>/runs/<run>/record.parquet every finished trial's record (same schema as `noisylab run`)
    <storage>/<study>/runs/<run>/checkpoint_*   the trial's Train checkpoints (a restarted trial resumes)
    <storage>/<study>/...                       Tune's experiment state (written by Tune, never read back)

A trial's run folder is named after its config (`runner.default_name`, which holds the config's
fingerprint), so a trial that Tune starts again finds its own checkpoint or finished record: a record is
written once, atomically, and never overwritten, whether the sweep is resumed or a trial failed.

Why `--resume` does not call `Tuner.restore`: Tune's experiment state (`tuner.pkl`, the trial and
searcher state) is pickled, and unpickling runs whatever a file names. A study folder on shared storage
can be written by anyone who can write there, so restoring from it would run their code under our
account. Signing those files (an HMAC kept in `study.json`) only helps if every write of Tune's state is
signed, and Tune rewrites it throughout a sweep; a run killed between two writes could then never resume.
noisylab does not need Tune's state at all: a resumed sweep is a new `Tuner` over the same trials, and
each trial resumes from noisylab's own files (a finished record is shown, not retrained; Train
checkpoints are `torch.load`ed with `weights_only=True` and checked against the config's fingerprint).
Sampled search spaces draw the same values again because the searcher is seeded from the study's name.
An ASHA-stopped trial is started again on resume and its scheduler decides afresh from the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisylab.atomic import write_text
from noisylab.config.profiles import make_config
from noisylab.config.run import RunConfig, validate
from noisylab.errors import UserError
from noisylab.names import check_component
from noisylab.results.trackers import MLRUNS, ray_callbacks
from noisylab.retries import DEFAULT_MAX_FAILURES, check_max_failures
from noisylab.runner import default_name, execute, init_ray
from noisylab.sweeps import Choice, LogUniform, Study, SweepProfile, Uniform
from noisylab.trainables import method_names

STUDY_FILE = "study.json"
RUNS_DIR = "runs"
STUDY_FORMAT = "noisylab-study/1"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one sweep shares (passed to Tune once, with `tune.with_parameters`)."""

    study: str
    profile: str
    sweep: SweepProfile
    runs_dir: str
    user_overrides: dict[str, Any] = field(default_factory=dict)
    max_failures: int = DEFAULT_MAX_FAILURES  # restarts of the trial's Train run from its checkpoint


@dataclass(frozen=True)
class SweepOutcome:
    directory: Path
    finished: int
    failed: list[str]
    records: list[Path]


def trial_config(ctx: TrialContext, point: dict[str, Any], sampled: dict[str, Any]) -> RunConfig:
    """A trial's RunConfig: run profile ← study profile overrides ← user overrides ← grid point ← sample."""
    p = ctx.sweep
    cfg = make_config(
        p.run_profile,
        dict(p.overrides)
        | ctx.user_overrides
        | point
        | sampled
        | {"workers": p.workers_per_trial, "use_gpu": p.gpus_per_trial > 0},
    )
    return validate(cfg, methods=method_names())


def plan(study: Study, profile: str, user_overrides: dict[str, Any]) -> list[RunConfig]:
    """Check the whole study before anything runs: every grid point (and each end of every search domain)
    must make a valid config. Returns the grid points' configs (search samples are Tune's to draw)."""
    study.check()
    sweep = study.profile(profile)
    ctx = TrialContext(study.name, profile, sweep, runs_dir="", user_overrides=user_overrides)
    probes: list[dict[str, Any]] = [{}]
    for path, domain in study.search.items():
        ends = domain.values if isinstance(domain, Choice) else (domain.low, domain.high)
        probes += [{path: v} for v in ends]
    configs = []
    for number, point in enumerate(study.grid_points(profile), start=1):
        for probe in probes:
            try:
                cfg = trial_config(ctx, point, probe)
            except UserError as e:  # name the trial (and the search value) the bad value came from
                where = ", ".join(f"{k}={v}" for k, v in (point | probe).items())
                raise UserError(f"trial {number} ({where}): {e}") from None
            if not probe:
                configs.append(cfg)
    return configs


def check_data(configs: list[RunConfig]) -> None:
    """Every dataset (and label file) the planned trials read is where they will read it; else one line
    naming each that is missing, so a sweep of hundreds of trials does not find out at its 100th."""
    from noisylab.data import DEFAULT_ROOTS
    from noisylab.data.presence import missing_files

    found: dict[tuple[str, str], list[str]] = {}
    for cfg in configs:
        d = cfg.data
        root = Path(d.root).expanduser() if d.root else DEFAULT_ROOTS.get(d.dataset.strip().lower())
        if root is None:
            continue  # an unknown format: the loader's own message says so when the trial starts
        if (d.dataset, str(root)) not in found:
            found[(d.dataset, str(root))] = missing_files(d.dataset, root)
        spec = d.noise_spec
        if spec.path is not None and ("labels", str(spec.path)) not in found:
            found[("labels", str(spec.path))] = [] if spec.path.is_file() else [str(spec.path)]
    gaps = [(what, where, names) for (what, where), names in found.items() if names]
    if not gaps:
        return
    parts = []
    for what, _, names in gaps:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        parts.append(f"{what} ({shown})")
    raise UserError(
        f"missing files of {len(gaps)} of the {len(found)} datasets the trials read: {'; '.join(parts)}: "
        "put them there, or point the study at them with --set data.root=PATH"
    )


def describe_domain(domain: Choice | Uniform | LogUniform) -> str:
    if isinstance(domain, Choice):
        return f"one of {len(domain.values)}"
    kind = "log-uniform" if isinstance(domain, LogUniform) else "uniform"
    return f"{kind} [{domain.low:g}, {domain.high:g}]"


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune's function trainable: fit one TorchTrainer for this trial (Train's per-epoch reports reach Tune
    through `TuneReportCallback`, so schedulers such as ASHA see every epoch), then report the record."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    point: dict[str, Any] = config["grid"]
    sampled = {k: v for k, v in config.items() if k != "grid"}
    cfg = trial_config(context, point, sampled)
    p = context.sweep
    outcome = execute(
        cfg,
        storage=Path(context.runs_dir),
        name=default_name(cfg),
        progress=False,
        epoch_lines=False,
        address="auto",
        study=context.study,
        params=point | sampled,
        cpus_per_worker=p.cpus_per_trial,
        gpus_per_worker=p.gpus_per_trial / max(p.workers_per_trial, 1),
        train_callbacks=[TuneReportCallback()],
        max_failures=context.max_failures,
    )
    r = outcome.record
    tune.report(
        {
            "test_acc": r["test_acc"],
            "test_f1": r["test_f1"],
            "run_name": outcome.name,
            "already_done": outcome.already_done,
        }
    )


def check_cluster(
    sweep: SweepProfile, profile: str, study: str, address: str | None, *, autoscaling: bool = False
) -> None:
    """A trial that asks for more than the cluster has would wait forever: refuse it up front. An
    autoscaling cluster (cluster.yaml starts with no GPU workers) adds nodes when trials ask for them."""
    import ray

    if autoscaling:
        return
    res = ray.cluster_resources()
    where = f"the cluster at {address}" if address else "this machine"
    gpus = sweep.gpus_per_trial
    if gpus > 0 and res.get("GPU", 0) < gpus:
        raise UserError(
            f"profile '{profile}' of study '{study}' asks for {gpus:g} GPU(s) per trial, but {where} has "
            f"{res.get('GPU', 0):g}: use --profile cpu, or --address a GPU cluster (add --autoscaling if it "
            "starts GPU nodes on demand)"
        )
    cpus = sweep.cpus_per_trial * sweep.workers_per_trial
    if res.get("CPU", 0) < cpus:
        raise UserError(
            f"profile '{profile}' of study '{study}' asks for {cpus:g} CPUs per trial, but {where} has "
            f"{res.get('CPU', 0):g}"
        )


def _check_study_dir(directory: Path, wanted: dict[str, Any], *, resume: bool) -> None:
    marker = directory / STUDY_FILE
    if not marker.exists():
        if resume:
            raise UserError(f"nothing to resume: {directory} holds no sweep (drop --resume to start it)")
        if directory.exists() and any(directory.iterdir()):
            raise UserError(f"{directory} exists and is not a noisylab sweep: choose another --storage")
        return
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{marker} is unreadable ({e}): this is not a sweep noisylab can resume") from None
    if not isinstance(found, dict) or found.get("format") != STUDY_FORMAT:
        raise UserError(f"{marker} is not a noisylab study file: choose another --storage")
    if not resume:
        raise UserError(
            f"a sweep of '{wanted['study']}' already exists in {directory}: pass --resume to continue it, "
            "or choose another --storage"
        )
    for key in ("study", "profile", "overrides"):
        if found.get(key) != wanted[key]:
            raise UserError(
                f"the sweep in {directory} was started with {key} {found.get(key)!r}, not {wanted[key]!r}: "
                "repeat the original options to resume it"
            )


def search_seed(study: str) -> int:
    """The searcher's seed: a resumed sweep draws the same samples, so its trials find their folders."""
    return int.from_bytes(hashlib.sha256(study.encode()).digest()[:4], "big")


def check_sweep(
    study: Study,
    profile: str,
    storage: Path | str,
    user_overrides: dict[str, Any],
    *,
    resume: bool,
    data_here: bool = True,
) -> tuple[Path, dict[str, Any], list[RunConfig]]:
    """Every check a sweep makes before anything starts: (the study's folder, what its study.json holds,
    the checked config of every grid point). `data_here`: the trials read their data from this machine's
    file system (not so for a driver attached through Ray Client, whose trials run on the cluster)."""
    if "://" in str(storage):
        # Every trial writes its record and resumes from its checkpoints through the file system.
        raise UserError(
            f"--storage {storage}: sweeps need a file system path shared by every node (e.g. EFS at "
            "/mnt/noisylab, see cluster.yaml); `noisylab report` reads s3:// and gs:// stores"
        )
    storage = Path(storage)
    check_component(study.name, "study name")
    if storage.exists() and not storage.is_dir():
        raise UserError(f"--storage {storage} is a file, not a folder: choose a folder for the studies")
    configs = plan(study, profile, user_overrides)  # every problem is found before anything starts
    if data_here:
        check_data(configs)
    directory = storage.resolve() / study.name
    # JSON round trip so the comparison with a stored marker sees the same types (tuples → lists).
    wanted = json.loads(
        json.dumps({"study": study.name, "profile": profile, "overrides": user_overrides}, default=list)
    )
    _check_study_dir(directory, wanted, resume=resume)
    return directory, wanted, configs


def claim_study_dir(directory: Path, wanted: dict[str, Any]) -> Path:
    """Create the study's folder and its study.json (once); returns the folder of its runs."""
    runs_dir = directory / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    marker = directory / STUDY_FILE
    if not marker.exists():
        write_text(marker, json.dumps({"format": STUDY_FORMAT} | wanted, indent=2))
    return runs_dir


def run_sweep(
    study: Study,
    *,
    profile: str,
    storage: Path | str,
    user_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    address: str | None = None,
    autoscaling: bool = False,
    write: Callable[[str], None] = print,
    loggers: tuple[str, ...] = (),
    max_failures: int = DEFAULT_MAX_FAILURES,
) -> SweepOutcome:
    """Run (or resume) every trial of `study`; returns where the records are and what failed. Each
    trial's Train run restarts from its newest checkpoint after up to `max_failures` lost workers or
    nodes; Tune then starts a failed trial once more (resuming from the same folder)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    from noisylab.studies.progress import SweepProgress, trial_label

    user_overrides = user_overrides or {}
    check_max_failures(max_failures)
    client = address is not None and address.startswith("ray://")
    directory, wanted, _ = check_sweep(
        study, profile, storage, user_overrides, resume=resume, data_here=not client
    )
    sweep = study.profile(profile)
    storage = directory.parent

    # Train's per-epoch reports carry the metric only at evaluation epochs (pre-training has no test
    # accuracy); ASHA skips such results, Tune's strict check would fail the trial on them.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    init_ray(address)
    check_cluster(sweep, profile, study.name, address, autoscaling=autoscaling)
    runs_dir = claim_study_dir(directory, wanted)

    context = TrialContext(study.name, profile, sweep, str(runs_dir), user_overrides, max_failures)
    # The Tune trial only drives its Train run; the Train workers hold the CPUs/GPUs. Tune refuses an empty
    # request, so the driver asks for a token amount of memory (bytes) and no CPU.
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, context=context), {"CPU": 0, "memory": 1024**2}
    )
    total = study.num_trials(profile)
    run_config = tune.RunConfig(
        name=study.name,
        storage_path=str(storage),
        verbose=0,  # our progress callback says what happened, one line per event
        callbacks=[SweepProgress(total), *ray_callbacks(loggers, directory / MLRUNS, experiment=study.name)],
        failure_config=tune.FailureConfig(max_failures=1),
    )
    # Never `Tuner.restore` (see the module docstring): the same trials again, each resuming from its
    # own run folder.
    if resume:
        write(f"resuming sweep '{study.name}' ({total} trials) in {directory}")
    else:
        write(f"sweep '{study.name}', profile '{profile}': {total} trials in {directory}")
    scheduler: Any = FIFOScheduler()
    if study.scheduler == "asha":
        scheduler = ASHAScheduler(
            grace_period=study.asha_grace_period,
            reduction_factor=study.asha_reduction_factor,
            max_t=10_000,
        )
    param_space: dict[str, Any] = {"grid": tune.grid_search(study.grid_points(profile))}
    param_space |= {path: d.to_tune() for path, d in study.search.items()}
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=study.metric,
            mode=study.mode,
            scheduler=scheduler,
            num_samples=study.num_samples if study.search else 1,
            search_alg=BasicVariantGenerator(
                max_concurrent=sweep.max_concurrent_trials, random_state=search_seed(study.name)
            ),
        ),
        run_config=run_config,
    )
    grid = tuner.fit()
    results = [grid[i] for i in range(len(grid))]
    failed = [trial_label(r.config or {}) + f": {str(r.error).splitlines()[0]}" for r in results if r.error]
    records = sorted(runs_dir.glob("*/record.parquet"))
    return SweepOutcome(directory, finished=len(grid) - len(failed), failed=failed, records=records)
