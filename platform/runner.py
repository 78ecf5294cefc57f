"""Driver side of `noisylab run`: check everything, prepare data, fit one Ray Train run, write the record.

Layout of a run under the storage folder (default `./runs`):

    runs/<name>/config.json      the checked config (written when the run starts)
    runs/<name>/checkpoint_*/    Ray Train checkpoints (state.pt), one per epoch, newest kept
    runs/<name>/metrics.jsonl    one JSON line per finished epoch, written as the run goes (live.py)
    runs/<name>/samples.parquet  per training sample: labels, selections, final class probabilities
    runs/<name>/record.parquet   the result record, written atomically when the run ends

Running the same command again resumes an unfinished run from its last checkpoint, and reports a
finished one without training; a run name that holds another config is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noisylab import quiet
from noisylab.config import RunConfig, load_config_json, validate
from noisylab.errors import UserError
from noisylab.live import METRICS_FILE
from noisylab.models import build_model
from noisylab.prepare import cache_dir, prepare_data
from noisylab.results import RECORD_FILE, build_record, now, read_record, write_record
from noisylab.runtime import CACHED
from noisylab.samples import SAMPLES_FILE, sample_table, write_samples
from noisylab.trainables import method_names, method_networks
from noisylab.worker import WorkerSpec, run_local, train_loop

CONFIG_FILE = "config.json"
LABELS_FILE = "final_labels.npy"  # the training labels at the end (refined by the pipeline)


@dataclass(frozen=True)
class RunOutcome:
    name: str
    directory: Path
    record: dict[str, Any]
    resumed: bool
    already_done: bool


def default_name(cfg: RunConfig) -> str:
    noise = cfg.data.noise.replace(":", "").replace("/", "_").replace("#", "_")
    return f"{cfg.method}-{cfg.data.dataset}-{noise}-{cfg.profile}-s{cfg.seed}-{cfg.fingerprint()[:6]}"


def describe_data(bundle: Any) -> str:
    """One line: what the run trains on, at which image size (folders may have been resized)."""
    _, c, h, w = bundle.train_images.shape
    where = f" from {bundle.source.root} (fingerprint {bundle.source.fingerprint})" if bundle.source else ""
    return (
        f"data {bundle.dataset}{where}: {len(bundle.clean_labels)} training images of {h}×{w} px, "
        f"{c} channel{'s' if c > 1 else ''}"
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


def check_resources(cfg: RunConfig) -> int:
    """CPUs per worker; refuses more workers than this machine has CPUs (or GPUs with --gpu)."""
    cpus = os.cpu_count() or 1
    if cfg.use_gpu:
        import torch

        gpus = torch.cuda.device_count()
        if cfg.workers > gpus:
            raise UserError(f"{cfg.workers} GPU workers asked for, but this machine has {gpus} GPU(s)")
    if cfg.workers > cpus:
        raise UserError(
            f"{cfg.workers} workers asked for, but this machine has {cpus} CPUs: use --workers ≤ {cpus}"
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

    A sweep passes its trial's `study`/`params` (stored in the record), the trial's CPUs per worker, and
    Train callbacks (Tune's report callback, so every epoch's metrics reach the Tune scheduler)."""
    validate(cfg, methods=method_names())
    name = name or default_name(cfg)
    directory = storage.resolve() / name
    record_path = directory / RECORD_FILE
    resumed = check_run_dir(directory, cfg)
    if record_path.exists():
        return RunOutcome(name, directory, read_record(record_path), resumed=False, already_done=True)
    if cpus_per_worker is None:
        cpus_per_worker = check_resources(cfg) if address is None else 1
    bundle = prepare_data(cfg)
    # Build the network(s) once here, as the workers will, so an impossible model fails before any starts.
    build_model(
        cfg.model,
        networks=method_networks(cfg.method),
        seed=cfg.seed,
        num_classes=bundle.num_classes,
        in_chans=bundle.train_images.shape[1],
        image_size=bundle.train_images.shape[-1],
    )
    directory.mkdir(parents=True, exist_ok=True)
    if not resumed:
        _write_text_atomic(directory / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2, sort_keys=True))

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
    )
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
    labels = result["labels"]
    record = build_record(
        cfg,
        bundle,
        result["history"],
        run_name=name,
        fingerprint=cfg.fingerprint(),
        started_at=started,
        # A reused pre-training counts with the seconds it took when it ran: runs stay comparable.
        wall_seconds=time.perf_counter() - t0 + sum(h["seconds"] for h in result["history"] if h.get(CACHED)),
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
            ),
            directory / SAMPLES_FILE,
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
    if address is None:  # a cluster of our own: its known-harmless notices are noise (see quiet.py)
        quiet.install()
    try:
        ray.init(
            address=address,
            include_dashboard=None,
            log_to_driver=True,
            configure_logging=True,
            logging_level=logging.WARNING,
        )
    except ConnectionError as e:
        raise UserError(
            f"cannot reach a Ray cluster at {address}: {e}; check the address (ray status)"
        ) from None
    if address is None and (logs := quiet.ray_logs_dir()):
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


def _save_labels(path: Path, labels: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, labels.astype(np.int64), allow_pickle=False)
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
