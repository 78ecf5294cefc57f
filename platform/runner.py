"""Driver side of `noisylab run`: check everything, prepare data, fit one Ray Train run, write the record.

Layout of a run under the storage folder (default `./runs`):

    runs/<name>/config.json      the checked config (written when the run starts)
    runs/<name>/checkpoint_*/    Ray Train checkpoints (state.pt), one per epoch, newest kept
    runs/<name>/metrics.jsonl    one JSON line per finished epoch, written as the run goes (live.py)
    runs/<name>/samples.parquet  per training sample: labels, selections, final class probabilities
    runs/<name>/heldout.parquet  a fold run's (data.folds) held-out fold: out-of-fold probabilities
    runs/<name>/record.parquet   the result record, written atomically when the run ends

Running the same command again resumes an unfinished run from its last checkpoint, and reports a
finished one without training; a run name that holds another config is refused.

Two commands started together with the same `--name` must not share a folder: the first to link its
`config.json` into place (an exclusive create, `atomic.write_text(exclusive=True)`) owns the name, and
a lock (`.lock`, `flock`, released when the process ends, even by a crash) keeps a second process of
the same config from training into the folder at the same time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noisylab import quiet
from noisylab.atomic import AlreadyExists, storage_error, write_text, write_with
from noisylab.config.run import RunConfig, load_config_json, validate
from noisylab.data.prepare import cache_dir, prepare_data
from noisylab.errors import Interrupted, UserError
from noisylab.names import check_component
from noisylab.results.live import METRICS_FILE
from noisylab.results.records import RECORD_FILE, build_record, now, read_record, write_record
from noisylab.retries import check_max_failures
from noisylab.train.models import build_model
from noisylab.train.runtime import CACHED, STATE_FILE, load_payload
from noisylab.train.samples import HELDOUT_FILE, SAMPLES_FILE, heldout_table, sample_table, write_samples
from noisylab.train.worker import WorkerSpec, run_local, train_loop
from noisylab.trainables import get_method, method_names, method_networks

CONFIG_FILE = "config.json"
LABELS_FILE = "final_labels.npy"  # the training labels at the end (refined by the pipeline)
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class RunOutcome:
    name: str
    directory: Path
    record: dict[str, Any]
    resumed: bool
    already_done: bool


def default_name(cfg: RunConfig) -> str:
    noise = cfg.data.noise.replace(":", "").replace("/", "_").replace("#", "_")
    d = cfg.data
    fold = f"-fold{d.holdout_fold}of{d.folds}" if d.folds is not None else ""
    return f"{cfg.method}-{d.dataset}-{noise}-{cfg.profile}-s{cfg.seed}{fold}-{cfg.fingerprint()[:6]}"


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def describe_data(bundle: Any) -> str:
    """One line: what the run trains on, at which image size (folders may have been resized)."""
    _, c, h, w = bundle.train_images.shape
    where = f" from {bundle.source.root} (fingerprint {bundle.source.fingerprint})" if bundle.source else ""
    notes = "".join(f"; {note}" for note in bundle.notes)
    return (
        f"data {bundle.dataset}{where}: {len(bundle.clean_labels)} training images of {h}×{w} px, "
        f"{c} channel{'s' if c > 1 else ''}{notes}"
    )


def check_run_dir(directory: Path, cfg: RunConfig) -> bool:
    """True when `directory` holds an unfinished run of this very config (so it will resume)."""
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.exists():
        if directory.exists() and any(p.name.startswith("checkpoint_") for p in directory.iterdir()):
            raise UserError(f"{directory} holds checkpoints but no {CONFIG_FILE}: pass another --name")
        return False
    previous = load_config_json(cfg_path)
    if previous.fingerprint() != cfg.fingerprint():
        raise UserError(
            f"run '{directory.name}' was started with another config (checkpoint {previous.fingerprint()}, "
            f"now {cfg.fingerprint()}): use another --name, or repeat the original options to resume it"
        )
    return True


def finished_record(directory: Path, cfg: RunConfig) -> dict[str, Any] | None:
    """The record of a finished run of this very config, None when the run has not finished."""
    path = directory / RECORD_FILE
    if not path.exists():
        return None
    try:
        record = read_record(path)
        found = record["fingerprint"]
    except Exception as e:
        raise UserError(
            f"{path} is damaged ({type(e).__name__}): delete it to train the run again, "
            "or pass another --name"
        ) from None
    if found != cfg.fingerprint():
        raise UserError(
            f"run '{directory.name}' finished with another config (record {found}, now {cfg.fingerprint()}): "
            "use another --name, or repeat the original options to show it"
        )
    return record


def check_checkpoints(directory: Path, cfg: RunConfig) -> None:
    """Every checkpoint a resume would read must load and belong to this config, checked here in the
    driver so a damaged or foreign one is one line, not a failure inside a worker."""
    for path in _checkpoint_files(directory):
        found = load_payload(path).get("fingerprint")
        if found != cfg.fingerprint():
            raise UserError(
                f"checkpoint {path} belongs to another config ({found}, this run {cfg.fingerprint()}): "
                "move the run folder away or pass another --name"
            )


def check_storage(storage: Path) -> None:
    if storage.exists() and not storage.is_dir():
        raise UserError(f"--storage {storage} is a file, not a folder: choose a folder for the runs")


@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold the run folder for this process; a second process training the same run is refused."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise storage_error(directory, e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"run '{directory.name}' is being trained by another process right now: wait for it to "
                "end (then run the same command to see it), or pass another --name"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def claim(directory: Path, cfg: RunConfig) -> bool:
    """Write config.json unless it is there; True when the run resumes. Exclusive: of two processes
    that both saw no config, the second finds the first's and is checked against it."""
    try:
        write_text(
            directory / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2, sort_keys=True), exclusive=True
        )
    except AlreadyExists:
        return check_run_dir(directory, cfg)
    return False


@contextlib.contextmanager
def released_unless_saved(directory: Path, *, claimed: bool, created: bool) -> Iterator[None]:
    """A run this process claimed that stops (an error, Ctrl-C, a crash it survives) before its first
    checkpoint has nothing to resume, so it gives the name back: otherwise its config.json alone would
    refuse the corrected command as "started with another config". A folder this process created goes
    whole; in one that was there before only the files a claim writes go."""
    try:
        yield
    except BaseException:
        if claimed and not _checkpoint_files(directory):
            if created:
                shutil.rmtree(directory, ignore_errors=True)
            else:
                for leftover in (CONFIG_FILE, METRICS_FILE):
                    (directory / leftover).unlink(missing_ok=True)
        raise


WORKER_NICENESS = "RAY_worker_niceness"  # Ray's config `worker_niceness`, read from the environment


def needs_ray(cfg: RunConfig, address: str | None) -> bool:
    """Whether a run trains through Ray Train: data-parallel runs (`workers` ≥ 2) and runs on a cluster
    (`--address`). One worker on this machine trains in this process: through Ray Train it computed the
    same epochs (one rank either way) but paid Ray's start, its per-epoch reports and, at Ray's default
    niceness of 15, every other process on the machine (BENCHMARKS.md, "One worker: in this process")."""
    return cfg.workers > 1 or (cfg.workers > 0 and address is not None)


def check_resources(cfg: RunConfig) -> int:
    """CPUs per worker; refuses more workers than this machine has CPUs (or GPUs with --gpu)."""
    cpus = os.cpu_count() or 1
    if cfg.use_gpu:
        import torch

        gpus = torch.cuda.device_count()
        if max(cfg.workers, 1) > gpus:  # an in-process run (workers 0 or 1) trains on one GPU too
            raise UserError(
                f"{max(cfg.workers, 1)} GPU worker(s) asked for, but this machine has {gpus} GPU(s)"
            )
    if cfg.workers > cpus:
        raise UserError(
            f"--workers {cfg.workers} asks for more workers than this machine's {cpus} CPUs: "
            f"use --workers ≤ {cpus} (each worker needs a CPU)"
        )
    return max(1, cpus // max(cfg.workers, 1))


def execute(
    cfg: RunConfig,
    *,
    storage: Path,
    name: str | None = None,
    progress: bool = True,
    address: str | None = None,
    use_ray: bool = True,
    fail_at_step: int | None = None,
    max_failures: int = 0,
    on_start: Callable[[str], None] | None = None,
    study: str | None = None,
    params: dict[str, Any] | None = None,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float = 1.0,
    epoch_lines: bool = True,
    train_callbacks: list[Any] | None = None,
    loggers: tuple[str, ...] = (),
    pretrain_cache: bool = True,
) -> RunOutcome:
    """Run `cfg` to the end (or resume it) and return its record. UserError for anything fixable.

    `max_failures`: how often Ray Train restarts the run from its newest checkpoint after a worker or
    node is lost (in-process runs resume with the same command instead). A sweep passes its trial's
    `study`/`params` (stored in the record), the trial's CPUs per worker, and Train callbacks (Tune's
    report callback, so every epoch's metrics reach the Tune scheduler)."""
    check_max_failures(max_failures)
    if cpus_per_worker is None:  # first: `--workers 99` is about CPUs, whatever else it breaks
        # a Ray of our own (`local` too) has this machine's CPUs to share out; a cluster's are its own
        cpus_per_worker = check_resources(cfg) if address in (None, "local") else 1
    cfg = validate(cfg, methods=method_names())  # resolved: config.json holds the values the run uses
    if cfg.model.compile and method_networks(cfg.method) == 2:
        # torch 2.14's inductor fails on the stacked two-network forward with dynamic batch sizes
        # ("cannot determine truth value of Relational"): refuse before any file is written.
        raise UserError(
            f"model.compile is not supported for {cfg.method}, which trains two networks at once: "
            "drop --set model.compile=true (it works for one-network methods)"
        )
    if not use_ray and address is not None:
        raise UserError(
            f"--address {address} needs Ray workers, but --workers 0 runs in this process without Ray: "
            "drop --address, or pass --workers 1 or more"
        )
    name = check_component(name, "--name") if name is not None else default_name(cfg)
    check_storage(storage)
    directory = storage.resolve() / name
    check_run_dir(directory, cfg)
    record = finished_record(directory, cfg)
    if record is not None:
        return RunOutcome(name, directory, record, resumed=False, already_done=True)
    check_checkpoints(directory, cfg)
    if address is not None:
        check_reachable(address)
    try:
        bundle = prepare_data(cfg, say=_stderr_line if epoch_lines else None)
    except KeyboardInterrupt:  # loading a large set or drawing its noise takes a while: say nothing was lost
        raise Interrupted(
            "interrupted while preparing the data, before the run started (nothing was written): "
            "run the same command to start it"
        ) from None
    # Build the network(s) once here, as the workers will, so an impossible model fails before any starts.
    build_model(
        cfg.model,
        networks=method_networks(cfg.method),
        seed=cfg.seed,
        num_classes=bundle.num_classes,
        in_chans=bundle.train_images.shape[1],
        image_size=bundle.train_images.shape[-1],
    )
    if use_ray and cfg.workers > 0:
        init_ray(address)  # before the folder is claimed: a cluster that cannot be reached leaves nothing
    created = not directory.exists()
    with run_lock(directory):
        record = finished_record(directory, cfg)  # another process may have finished it meanwhile
        if record is not None:
            return RunOutcome(name, directory, record, resumed=False, already_done=True)
        resumed = claim(directory, cfg)
        check_checkpoints(directory, cfg)
        with released_unless_saved(directory, claimed=not resumed, created=created):
            return _train(
                cfg,
                name,
                directory,
                resumed=resumed,
                bundle=bundle,
                progress=progress,
                address=address,
                use_ray=use_ray,
                fail_at_step=fail_at_step,
                max_failures=max_failures,
                on_start=on_start,
                study=study,
                params=params,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
                epoch_lines=epoch_lines,
                train_callbacks=train_callbacks,
                pretrain_cache=pretrain_cache,
                loggers=loggers,
            )


def _train(
    cfg: RunConfig,
    name: str,
    directory: Path,
    *,
    resumed: bool,
    bundle: Any,
    progress: bool,
    address: str | None,
    use_ray: bool,
    fail_at_step: int | None,
    max_failures: int,
    on_start: Callable[[str], None] | None,
    study: str | None,
    params: dict[str, Any] | None,
    cpus_per_worker: float,
    gpus_per_worker: float,
    epoch_lines: bool,
    train_callbacks: list[Any] | None,
    pretrain_cache: bool,
    loggers: tuple[str, ...],
) -> RunOutcome:
    """Fit (or resume) the claimed run, then write its labels and, last, its record."""
    record_path = directory / RECORD_FILE
    if on_start is not None:
        on_start(
            f"{'resuming' if resumed else 'starting'} run '{name}' in {directory}\n{describe_data(bundle)}"
        )
    started, t0 = now(), time.perf_counter()
    spec = WorkerSpec(
        cfg=cfg,
        data=bundle,
        fingerprint=cfg.fingerprint(),
        fail_at_step=fail_at_step,
        progress=progress,
        epoch_lines=epoch_lines,
        metrics_path=str(directory / METRICS_FILE),
        loggers=loggers,
        pretrain_cache=str(cache_dir() / "pretrain") if pretrain_cache else None,
        attempt=uuid.uuid4().hex[:12],
    )
    try:
        if use_ray:
            result = _fit_with_ray(
                spec,
                directory,
                cpus_per_worker,
                gpus_per_worker,
                address=address,
                max_failures=max_failures,
                callbacks=train_callbacks or [],
            )
        else:
            result = run_local(spec, directory)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_at(directory, cfg)) from None
    if "error" in result:  # a worker stopped the run for a reason the user can fix (e.g. diverged)
        raise UserError(result["error"])
    labels = result["labels"]
    # Every attempt counts (each earlier one up to its newest checkpoint), and a reused pre-training with
    # the seconds it took when it ran: runs stay comparable however often they were stopped and resumed.
    attempts = [*result.get("earlier_attempts", []), time.perf_counter() - t0]
    reused = sum(h["seconds"] for h in result["history"] if h.get(CACHED))
    record = build_record(
        cfg,
        bundle,
        result["history"],
        run_name=name,
        fingerprint=cfg.fingerprint(),
        started_at=started,
        wall_seconds=sum(attempts) + reused,
        attempt_seconds=attempts,
        final_labels_sha256=hashlib.sha256(labels.tobytes()).hexdigest(),
        study=study,
        params=params,
    )
    _save_labels(directory / LABELS_FILE, labels)
    if result.get("probs") is not None:
        write_samples(
            sample_table(
                given=bundle.noisy_labels,
                final=labels if labels is not None else bundle.noisy_labels,
                clean=bundle.clean_labels,
                probs=result["probs"],
                tracked=result.get("tracked"),
                dataset_index=bundle.train_index,
                class_names=bundle.class_names,
                files=bundle.train_files,
            ),
            directory / SAMPLES_FILE,
        )
    held_out = bundle.holdout
    if held_out is not None:  # before the record: a finished fold run always has its held-out table
        write_samples(
            heldout_table(
                fold=held_out.fold,
                position=held_out.position,
                dataset_index=held_out.dataset_index,
                given=held_out.given,
                clean=held_out.clean,
                probs=result["heldout_probs"],
                class_names=bundle.class_names,
                files=held_out.files,
            ),
            directory / HELDOUT_FILE,
        )
    write_record(record, record_path)  # last: its presence means the run is complete
    return RunOutcome(name, directory, record, resumed=resumed, already_done=False)


def _fit_with_ray(
    spec: WorkerSpec,
    directory: Path,
    cpus_per_worker: float,
    gpus_per_worker: float,
    *,
    address: str | None,
    max_failures: int,
    callbacks: list[Any],
) -> dict[str, Any]:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, ScalingConfig
    from ray.train import RunConfig as TrainRunConfig
    from ray.train.torch import TorchTrainer

    cfg = spec.cfg
    data: Any = spec.data
    if cfg.workers > 0:
        init_ray(address)
        data = ray.put(spec.data)  # once: every worker reads the same read-only copy
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"spec": dataclasses.replace(spec, data=data)},
        scaling_config=ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker} | ({"GPU": gpus_per_worker} if cfg.use_gpu else {}),
        ),
        run_config=TrainRunConfig(  # type: ignore[call-arg]  # mypy sees Train V1's RunConfig
            name=directory.name,
            storage_path=str(directory.parent),
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            # Train logs every report at INFO; progress bars and the summary say what matters.
            logging_config=LoggingConfig(log_level="WARNING"),
            callbacks=callbacks,
        ),
    )
    result = trainer.fit()
    value = getattr(result, "return_value", None)
    if isinstance(value, dict) and "error" in value:
        return value
    if not isinstance(value, dict):
        raise RuntimeError(f"the training run returned no outcome (error: {result.error})")
    return value


def init_ray(address: str | None) -> None:
    import ray

    if address is not None:
        check_reachable(address)
    if ray.is_initialized():
        return
    # Train's controller collects each epoch's report on this poll; its 2 s default would stall short
    # epochs (the report queue holds one entry). Must be set before Ray starts its processes.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    own = address in (None, "local")  # a Ray instance this process starts for itself
    if own:
        quiet.install()  # its known-harmless notices are noise (see quiet.py)
        # Ray starts its workers at niceness 15 (its `worker_niceness`), so on a busy machine a run's
        # workers yield to every ordinary process; a Ray of our own runs them at this process's priority
        # (Ray applies the value relative to it). A value the user set is kept.
        os.environ.setdefault(WORKER_NICENESS, "0")
    try:
        ray.init(
            # No address: a cluster of our own. Ray's own discovery (address None) looks for clusters
            # started on this machine and prints a traceback when it finds several; `--address auto`
            # attaches to this machine's cluster on purpose.
            address=address or "local",
            include_dashboard=None,
            log_to_driver=True,
            configure_logging=True,
            logging_level=logging.WARNING,
        )
    except ConnectionError as e:
        raise UserError(
            f"cannot reach a Ray cluster at {address}: {e}; check the address (ray status)"
        ) from None
    if own and (logs := quiet.ray_logs_dir()):
        logging.getLogger("noisylab").warning("Ray's full logs: %s", logs)


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable GCS for minutes; a plain TCP connect says in seconds that nobody listens.
    `auto` (the cluster this machine belongs to) and `local` are Ray's to resolve."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://").split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address}: expected host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({e.strerror or e}): check the address (`ray status` "
            "on the head node prints it)"
        ) from None


def interrupted_at(directory: Path, cfg: RunConfig) -> str:
    """Where a Ctrl-C stopped the run: the epoch after its newest checkpoint (local or Ray Train)."""
    done = 0
    paths = _checkpoint_files(directory)
    with contextlib.suppress(UserError):
        if paths:
            done = int(load_payload(max(paths, key=lambda p: p.stat().st_mtime))["state"]["step"])
    schedule = get_method(cfg.method).schedule(cfg)
    step = schedule[min(done, len(schedule) - 1)]
    return (
        f"interrupted at {step.place} ({done} of {len(schedule)} epochs saved); "
        "run the same command to resume"
    )


def _checkpoint_files(directory: Path) -> list[Path]:
    """state.pt of a run without Ray, and of every Ray Train checkpoint folder."""
    found = [directory / STATE_FILE, *directory.glob(f"checkpoint_*/{STATE_FILE}")]
    return [p for p in found if p.is_file()]


def _save_labels(path: Path, labels: np.ndarray) -> None:
    write_with(path, lambda f: np.save(f, labels.astype(np.int64), allow_pickle=False))
