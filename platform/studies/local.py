"""`noisylab sweep --local`: a study's grid on this machine without Ray, one process per trial.

On a laptop or a 2-core box Ray's machinery costs what the trials cost: every trial starts a Train
controller, a worker group and their helper actors (measured here: each trial's start-up held a core for
~20 s, and small trials ran 3–4× slower than alone). The local executor runs each trial as
`runner.execute(..., use_ray=False)` in a pool of `max_concurrent_trials` spawned processes, each with
`cpus_per_trial` torch threads. Everything else is the sweep's: the same study checks, the same
`<storage>/<study>/study.json` marker and `runs/<run>/` folders named after each trial's config, the same
records (with `study` and `params_json`), so `noisylab report` cannot tell the two apart. Resuming is
`execute`'s own: a finished trial's record is kept, an interrupted one restarts from its last checkpoint;
no scheduler state is stored, so nothing is unpickled on `--resume`.

Ctrl-C stops the sweep in one line: how many trials finished, how many stopped mid-run (each keeps its
checkpoints and resumes from them) and how many never started; `--resume` continues. The sweep passes
Ctrl-C on to its trial processes, which stop the trial they train and start no other.

Grid studies only: sampled search spaces and early stopping (ASHA) are Tune's, as are multi-worker trials.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from noisylab.errors import Interrupted, UserError
from noisylab.studies.tune import SweepOutcome, check_sweep, claim_study_dir
from noisylab.sweeps import Study


def trial_label(point: dict[str, Any]) -> str:
    """'paper fashion-mnist idn:0.3 seed 0' (the Ray sweep's wording) from a grid point."""
    parts = [str(point[k]) for k in ("method", "data.dataset", "data.noise", "model.name") if k in point]
    return " ".join([*parts, f"seed {point.get('seed')}"])


def _run_trial(
    config: dict[str, Any], runs_dir: str, study: str, point: dict[str, Any], threads: int
) -> float:
    """One trial in a pool process: the config travels as a dict (checked again by `execute`)."""
    import torch

    from noisylab.config.run import RunConfig
    from noisylab.runner import default_name, execute

    torch.set_num_threads(threads)
    cfg = RunConfig.from_dict(config)
    global _training
    _training = True  # before the check: a Ctrl-C from here on raises, one before it was recorded
    try:
        if _stopping:  # the sweep was interrupted before this trial began
            raise KeyboardInterrupt
        outcome = execute(
            cfg,
            storage=Path(runs_dir),
            name=default_name(cfg),
            progress=False,
            epoch_lines=False,
            use_ray=False,
            study=study,
            params=point,
        )
    finally:
        _training = False
    return float(outcome.record["test_acc"])


# A trial process's Ctrl-C: while it trains, the first one stops the trial as it stops `noisylab run`
# (checkpoints kept); while it waits for one, it keeps the next from starting. Idle, a plain
# KeyboardInterrupt would kill the pool's process with a traceback; a second one would cut the first's
# clean-up short (the sweep forwards Ctrl-C to its trials, which a terminal's already reached).
_training = False
_stopping = False


def _on_interrupt(signum: int, frame: object) -> None:
    global _stopping
    first = not _stopping
    _stopping = True
    if _training and first:
        raise KeyboardInterrupt


def _listen_for_interrupts() -> None:
    """Each trial process's initializer."""
    signal.signal(signal.SIGINT, _on_interrupt)


def _stop(pool: ProcessPoolExecutor, running: dict[Future[float], dict[str, Any]]) -> None:
    """Cancel the trials not started, interrupt the running ones (a Ctrl-C at the terminal reached them
    already; one sent to this process alone did not), and wait until each has stopped at its next step."""
    pool.shutdown(wait=False, cancel_futures=True)
    for child in multiprocessing.active_children():  # the pool's trial processes: all this sweep starts
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid or 0, signal.SIGINT)
    # A cancelled future is never marked done for `wait`: wait for those that run.
    futures.wait([f for f in running if not f.cancelled()])
    pool.shutdown(wait=True)


def run_sweep_local(
    study: Study,
    *,
    profile: str,
    storage: Path | str,
    user_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    write: Callable[[str], None] = print,
) -> SweepOutcome:
    """Run (or resume) every grid point of `study` in local processes; returns where the records are."""
    user_overrides = user_overrides or {}
    directory, wanted, configs = check_sweep(study, profile, storage, user_overrides, resume=resume)
    sweep = study.profile(profile)
    if study.search or study.scheduler != "fifo":
        raise UserError(
            f"study '{study.name}' samples a search space or stops trials early: run it without --local "
            "(Ray Tune does both)"
        )
    if sweep.workers_per_trial > 1 or sweep.gpus_per_trial > 0:
        raise UserError(
            f"study '{study.name}' profile '{profile}' trains with several workers or GPUs per trial: "
            "run it without --local (through Ray)"
        )
    runs_dir = claim_study_dir(directory, wanted)

    points = study.grid_points(profile)
    total, jobs = len(points), max(1, sweep.max_concurrent_trials)
    threads = max(1, int(sweep.cpus_per_trial))
    write(
        f"sweep '{study.name}', profile '{profile}': {total} trials in {directory} ({jobs} at once, no Ray)"
    )
    done, failed = 0, list[str]()
    # spawn, not fork: each trial gets a clean interpreter (torch's thread pools do not survive a fork).
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_listen_for_interrupts
    )
    queue = list(zip(points, configs, strict=True))
    running: dict[Future[float], dict[str, Any]] = {}

    def head() -> str:
        return f"[{done}/{total} done · {len(running)} running · {len(failed)} failed]"

    try:
        while queue or running:
            while queue and len(running) < jobs:
                point, cfg = queue.pop(0)
                future = pool.submit(_run_trial, cfg.to_dict(), str(runs_dir), study.name, point, threads)
                running[future] = point
                write(f"{head()} started {trial_label(point)}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                point = running.pop(future)
                error = future.exception()
                if error is None:
                    done += 1
                    write(f"{head()} finished {trial_label(point)}: test acc {100 * future.result():.2f} %")
                else:
                    failed.append(
                        f"{trial_label(point)}: {str(error).splitlines()[0] if str(error) else error!r}"
                    )
                    write(f"{head()} FAILED {trial_label(point)} ({failed[-1]})")
    except KeyboardInterrupt:
        _stop(pool, running)
        started = [f for f in running if not f.cancelled()]
        done += sum(1 for f in started if f.exception() is None)  # trials that ended meanwhile
        stopped = sum(1 for f in started if f.exception() is not None)
        waiting = len(queue) + len(running) - len(started)
        raise Interrupted(
            f"sweep '{study.name}' interrupted: {done} of {total} trials finished, {stopped} stopped mid-run "
            f"(each resumes from its last checkpoint), {waiting} not started"
            + (f", {len(failed)} failed" if failed else "")
        ) from None
    pool.shutdown(wait=True)
    records = sorted(runs_dir.glob("*/record.parquet"))
    return SweepOutcome(directory, finished=done, failed=failed, records=records)
