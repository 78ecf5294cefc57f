"""`noisylab labels RUN --folds K`: out-of-fold class probabilities and the label issues they show.

cleanlab's workflow (its `find_label_issues` wants probabilities from a model that never trained on the
sample they score; a network's own training set has memorised its wrong labels): the training set of
RUN is split into K folds stratified by the given label and seeded by RUN's seed (`folds.py`), and K
fold runs train RUN's config (same method, profile, budget) each on K − 1 folds. A fold run is an
ordinary noisylab run with `data.folds=K`, `data.holdout_fold=k` (named `...-fold{k}of{K}-...` beside
RUN unless `--storage` says otherwise): checkpointed, resumable by the same command, shown and reported
like any run. It writes the held-out fold's probabilities to `heldout.parquet`; together the K files
give every sample of the training set one out-of-fold row, in RUN's sample order.

How the fold runs share the machine (`Lanes`): without Ray (the default) as local processes, as many at
once as there are CPUs (at most K), each with its share of the CPUs as torch threads; with `--address`
as Ray tasks of that many CPUs each; with `--workers N` each fold is a Ray Train run of N workers,
started from a Ray task so several train side by side. No lane reserves more CPUs than the machine
(or the cluster) has: more `--jobs` than CPUs is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from noisylab.config.run import RunConfig, validate
from noisylab.errors import Interrupted, UserError


@dataclass(frozen=True)
class FoldRun:
    fold: int  # 1..K
    cfg: RunConfig  # validated: RUN's config holding fold `fold` of K out
    name: str
    directory: Path


def plan_folds(cfg: RunConfig, folds: int, *, workers: int, storage: Path) -> list[FoldRun]:
    """The K fold runs of `cfg`: its config with `data.folds=K`, `data.holdout_fold=k` and `workers`,
    each checked (`config.validate`) and its folder checked for another config, before any trains."""
    from noisylab.runner import check_run_dir, check_storage, default_name
    from noisylab.trainables import method_names

    if cfg.data.folds is not None:
        raise UserError(
            f"this run is itself fold {cfg.data.holdout_fold} of {cfg.data.folds} of an out-of-fold "
            "estimate: point `labels --folds` at the run whose training set you want scored"
        )
    if folds < 2:
        raise UserError(f"--folds {folds}: out-of-fold probabilities need at least 2 folds (cleanlab uses 5)")
    if workers < 0:
        raise UserError(f"--workers {workers}: give 0 (each fold in its own process) or more Ray workers")
    check_storage(storage)
    check_classes_fit(cfg, folds)
    runs = []
    for k in range(1, folds + 1):
        data = dataclasses.replace(cfg.data, folds=folds, holdout_fold=k)
        fold_cfg = validate(dataclasses.replace(cfg, data=data, workers=workers), methods=method_names())
        name = default_name(fold_cfg)
        directory = storage.resolve() / name
        check_run_dir(directory, fold_cfg)
        runs.append(FoldRun(k, fold_cfg, name, directory))
    return runs


def check_classes_fit(cfg: RunConfig, folds: int) -> None:
    """Every class of `cfg`'s training set (by its given, noisy label) has at least `folds` samples, and
    the batch fits the smallest fold run's training part (K − 1 folds): the data is prepared here as each
    fold run will prepare it, so either mistake is refused before any fold run starts (or writes a
    folder), not K times inside them."""
    from noisylab.data.folds import check_fold_count, stratified_folds
    from noisylab.data.prepare import check_batch, prepare_data

    bundle = prepare_data(cfg)
    check_fold_count(bundle.noisy_labels, folds, class_names=bundle.class_names)
    sizes = np.bincount(stratified_folds(bundle.noisy_labels, folds, seed=cfg.seed))[1:]
    check_batch(cfg.batch_size, len(bundle.noisy_labels) - int(sizes.max()))


@dataclass(frozen=True)
class Lanes:
    """How fold runs share the CPUs: `jobs` at once, each fold that trains in its own process with
    `threads` torch threads (and as many CPUs reserved as a Ray task), each Ray Train worker of a fold
    with `cpus_per_worker` CPUs."""

    jobs: int
    threads: int
    cpus_per_worker: float


def plan_lanes(folds: int, *, cpus: int, jobs: int | None = None, workers: int = 0, where: str) -> Lanes:
    """Lanes for K = `folds` fold runs on `cpus` CPUs (this machine's, or the Ray cluster's): by default
    as many fold runs at once as the CPUs allow, at most K; every CPU given out, none twice.

        workers = 0:  jobs = min(K, cpus),            threads = ⌊cpus / jobs⌋
        workers = N:  jobs = min(K, ⌊cpus / N⌋),      cpus_per_worker = ⌊cpus / (jobs · N)⌋"""
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs {jobs}: run at least one fold at a time")
    if workers > cpus:
        raise UserError(
            f"--workers {workers} asks for more Ray workers per fold than {where}'s {cpus} CPUs: "
            f"use --workers ≤ {cpus}"
        )
    lanes_fit = cpus // max(workers, 1)
    if jobs is not None and jobs > lanes_fit:
        per = f"{workers} worker CPUs each" if workers else "one CPU each at least"
        raise UserError(
            f"--jobs {jobs} would run more fold runs at once than {where}'s {cpus} CPUs hold ({per}): "
            f"use --jobs ≤ {lanes_fit}"
        )
    at_once = jobs if jobs is not None else max(1, min(folds, lanes_fit))
    at_once = min(at_once, folds)
    if workers == 0:
        return Lanes(at_once, max(1, cpus // at_once), 1.0)
    return Lanes(at_once, 1, float(max(1, cpus // (at_once * workers))))


@dataclass(frozen=True)
class FoldsOutcome:
    seconds: float  # wall time of the whole fold phase, as the user waited for it
    trained: int  # fold runs trained (or resumed) by this command
    reused: int  # fold runs that had finished before


def run_folds(
    runs: list[FoldRun],
    *,
    jobs: int | None = None,
    address: str | None = None,
    write: Callable[[str], None] = print,
) -> FoldsOutcome:
    """Train every unfinished fold run of `runs` (their `workers` field says how) and return when all
    have finished. A finished one is kept; an interrupted one resumes from its last checkpoint."""
    from noisylab.runner import finished_record

    started = time.perf_counter()
    todo = [r for r in runs if finished_record(r.directory, r.cfg) is None]
    if not todo:
        write(f"all {len(runs)} fold runs had finished: reading their held-out folds")
        return FoldsOutcome(time.perf_counter() - started, 0, len(runs))
    workers = runs[0].cfg.workers
    use_ray = address is not None or workers > 0
    if use_ray:
        lanes = _ray_lanes(len(todo), jobs=jobs, workers=workers, address=address)
        how = "Ray tasks" if workers == 0 else f"Ray Train runs of {workers} worker(s)"
    else:
        lanes = plan_lanes(len(todo), cpus=os.cpu_count() or 1, jobs=jobs, where="this machine")
        how = "local processes"
    per = f"{lanes.threads} CPU(s)" if workers == 0 else f"{lanes.cpus_per_worker:g} CPU(s) per worker"
    write(
        f"{len(todo)} of {len(runs)} fold runs to train ({len(runs) - len(todo)} finished before): "
        f"{lanes.jobs} at once as {how}, {per} each; the same command resumes them"
    )
    if use_ray:
        _run_with_ray(todo, lanes, write=write, total=len(runs))
    else:
        _run_locally(todo, lanes, write=write, total=len(runs))
    return FoldsOutcome(time.perf_counter() - started, len(todo), len(runs) - len(todo))


def out_of_fold_table(runs: list[FoldRun]) -> pl.DataFrame:
    """The held-out folds of finished fold runs, one row per training sample in the training set's
    order (`index` 0..N−1), `pred_probs` each sample's out-of-fold probabilities [N, K]."""
    from noisylab.train.samples import read_heldout

    parts = [read_heldout(r.directory) for r in runs]
    table = pl.concat(parts, how="diagonal_relaxed").sort("index")
    index = table["index"].to_numpy()
    if not np.array_equal(index, np.arange(len(index))):
        raise UserError(
            f"the held-out folds of {runs[0].directory.parent} do not cover the training set once each: "
            "a fold run folder was replaced by hand; move those folders away and run the command again"
        )
    return table


# ------------------------------------------------------------------------------------ one fold's run


def train_fold(config: dict[str, Any], storage: str, name: str, threads: int, cpus_per_worker: float) -> dict:
    """One fold run to its end, in this process (workers 0) or as a Ray Train run: what a local
    process or a Ray task executes. The config travels as a dict and is checked again by `execute`;
    a mistake comes back as {"error": line} (an exception would arrive wrapped in a traceback)."""
    import torch

    from noisylab.runner import execute

    cfg = RunConfig.from_dict(config)
    if cfg.workers == 0:
        torch.set_num_threads(threads)
    global _training
    _training = True  # from here a Ctrl-C stops the fold as it stops `noisylab run`: checkpoints kept
    try:
        if _stopping:
            raise KeyboardInterrupt
        outcome = execute(
            cfg,
            storage=Path(storage),
            name=name,
            progress=False,
            epoch_lines=False,
            use_ray=cfg.workers > 0,
            cpus_per_worker=cpus_per_worker,
        )
    except Interrupted as e:
        return {"interrupted": str(e)}
    except UserError as e:
        return {"error": str(e)}
    finally:
        _training = False
    return {"test_acc": float(outcome.record["test_acc"]), "seconds": float(outcome.record["wall_seconds"])}


# A fold process's Ctrl-C: while it trains, the first one stops the fold (checkpoints kept); while it waits
# for one, it keeps the next from starting. Idle, a plain KeyboardInterrupt would kill the pool's process
# with a traceback; a terminal's Ctrl-C reaches the driver and every fold process at once.
_training = False
_stopping = False


def _on_interrupt(signum: int, frame: object) -> None:
    global _stopping
    first = not _stopping
    _stopping = True
    if _training and first:
        raise KeyboardInterrupt


def _listen_for_interrupts() -> None:
    signal.signal(signal.SIGINT, _on_interrupt)


def _line(run: FoldRun, total: int, result: dict[str, Any]) -> str:
    if "test_acc" in result:
        return f"fold {run.fold}/{total} finished: test acc {100 * result['test_acc']:.2f} % ({run.name})"
    return f"fold {run.fold}/{total} FAILED: {result.get('error') or result.get('interrupted')}"


def _failed(results: dict[int, dict[str, Any]]) -> None:
    errors = {k: r["error"] for k, r in sorted(results.items()) if "error" in r}
    if errors:
        fold, error = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(f"fold {fold} failed{more}: {error}")


def _interrupted(done: int, total: int) -> Interrupted:
    return Interrupted(
        f"interrupted: {done} of {total} fold runs finished, the others keep their checkpoints; "
        "run the same command to resume them"
    )


def _run_locally(todo: list[FoldRun], lanes: Lanes, *, write: Callable[[str], None], total: int) -> None:
    # spawn, not fork: each fold gets a clean interpreter (torch's thread pools do not survive a fork).
    pool = ProcessPoolExecutor(
        max_workers=lanes.jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_listen_for_interrupts,
    )
    queue = list(todo)
    running: dict[Future[dict[str, Any]], FoldRun] = {}
    results: dict[int, dict[str, Any]] = {}
    try:
        while queue or running:
            while queue and len(running) < lanes.jobs:
                run = queue.pop(0)
                config = run.cfg.to_dict()
                future = pool.submit(
                    train_fold, config, str(run.directory.parent), run.name, lanes.threads, 1.0
                )
                running[future] = run
                write(f"fold {run.fold}/{total} started: {run.name}")
            finished, _ = futures.wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                run = running.pop(future)
                results[run.fold] = future.result()
                write(_line(run, total, results[run.fold]))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():  # the pool's fold processes: all this starts
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid or 0, signal.SIGINT)
        futures.wait([f for f in running if not f.cancelled()])
        pool.shutdown(wait=True)
        done = sum(1 for r in results.values() if "test_acc" in r)
        raise _interrupted(done + sum(1 for f in running if _finished(f)), total) from None
    pool.shutdown(wait=True)
    _failed(results)


def _finished(future: Future[dict[str, Any]]) -> bool:
    return not future.cancelled() and future.exception() is None and "test_acc" in future.result()


def _ray_lanes(folds: int, *, jobs: int | None, workers: int, address: str | None) -> Lanes:
    """Lanes on the Ray cluster (this machine's own one without --address): its CPUs, and no fold
    process asking for more CPUs than its largest node has."""
    import ray

    from noisylab.runner import init_ray

    init_ray(address)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    where = f"the cluster at {address}" if address else "this machine"
    lanes = plan_lanes(folds, cpus=cpus, jobs=jobs, workers=workers, where=where)
    largest = max(
        (int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=1
    )
    return dataclasses.replace(lanes, threads=max(1, min(lanes.threads, largest)))


def _run_with_ray(todo: list[FoldRun], lanes: Lanes, *, write: Callable[[str], None], total: int) -> None:
    import ray

    # A fold that trains in its task reserves its threads' CPUs; one that starts a Ray Train run reserves
    # none itself (its workers do, through Train's placement group).
    task = ray.remote(max_retries=0)(train_fold)
    queue = list(todo)
    running: dict[Any, FoldRun] = {}
    results: dict[int, dict[str, Any]] = {}
    try:
        while queue or running:
            while queue and len(running) < lanes.jobs:
                run = queue.pop(0)
                cpus = lanes.threads if run.cfg.workers == 0 else 0
                ref = task.options(num_cpus=cpus).remote(
                    run.cfg.to_dict(),
                    str(run.directory.parent),
                    run.name,
                    lanes.threads,
                    lanes.cpus_per_worker,
                )
                running[ref] = run
                write(f"fold {run.fold}/{total} started: {run.name}")
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                run = running.pop(ref)
                results[run.fold] = ray.get(ref)
                write(_line(run, total, results[run.fold]))
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref)  # a KeyboardInterrupt in the task: the fold stops at its next step, checkpointed
        with contextlib.suppress(Exception):
            ray.wait(list(running), num_returns=len(running), timeout=60)
        done = sum(1 for r in results.values() if "test_acc" in r)
        raise _interrupted(done, total) from None
    _failed(results)
