"""What a method sees on a worker (`Context`), what survives a restart (`TrainState`), and the loop
that walks a method's schedule, checkpointing after every epoch through a `Reporter`.

The loop is the same with Ray Train (`RayReporter`, any number of workers) and without it
(`LocalReporter`, a directory on disk), so most tests run the real engine without a cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from noisylab.atomic import set_aside, write_with
from noisylab.config.run import Optimizer, RunConfig, data_settings
from noisylab.data.augment import Augmenter
from noisylab.errors import UserError, warn
from noisylab.results.live import describe
from noisylab.train.engine import (
    BatchFn,
    ProgressFactory,
    Step,
    World,
    all_reduce_mean,
    all_reduce_sum,
    derived_generator,
    epoch_order,
    no_progress,
    train_epoch,
)

STATE_FILE = "state.pt"


@dataclass
class Context:
    """Everything a method needs on one worker. Tensors of images live on `world.device` as uint8."""

    cfg: RunConfig
    world: World
    net: nn.Module  # the bare network (state dicts): a `Network`, or a `TwinNetwork` (two-network methods)
    model: nn.Module  # what to call for training: `net`, or `net` wrapped by DDP
    train_images: Tensor  # uint8 [N, C, H, W]
    noisy_labels: Tensor  # int64 [N], the labels training starts from (CPU)
    clean_labels: Tensor  # int64 [N], for diagnostics only: never read by training (CPU)
    # float64 [C, C], P(noisy = j | clean = i) over these N samples, as `prepare_data` measured it once
    # (`DataBundle.noise`); for diagnostics only, like `clean_labels` (CPU)
    noise_transition: Tensor
    test_images: Tensor  # uint8 [T, C, H, W]
    test_labels: Tensor  # int64 [T] (CPU)
    num_classes: int
    augmenter: Augmenter
    progress: ProgressFactory = no_progress
    log: Callable[[str], None] | None = None  # one line per finished epoch (rank 0, with progress on)
    scaler: torch.amp.GradScaler | None = None  # fp16 loss scaling (precision=fp16 only); checkpointed

    @property
    def per_rank_batch(self) -> int:
        return max(2, self.cfg.batch_size // self.world.size)


@dataclass
class TrainState:
    """The part of a run that a checkpoint carries (besides model and optimiser weights)."""

    step: int = 0  # index of the next schedule step
    labels: Tensor | None = None  # current training labels int64 [N]; refined by the pipeline
    pseudo: Tensor | None = None  # bool [N]: labels set by consensus (get augmented copies)
    stage_masks: list[Tensor] = field(default_factory=list)  # selections of this iteration's stages
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per step
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific state
    # Wall seconds of each attempt at the run (a driver's `execute`, by its id), each up to its newest
    # checkpoint: a resumed run's record counts them all, not only the attempt that finished it.
    attempts: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "labels": self.labels,
            "pseudo": self.pseudo,
            "stage_masks": self.stage_masks,
            "history": self.history,
            "extra": self.extra,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        state = cls(**d)
        if "attempts" not in d:  # a checkpoint from before attempts were timed: its epochs' seconds
            trained = sum(float(h.get("seconds", 0.0)) for h in state.history if not h.get(CACHED))
            state.attempts = {"earlier": trained}
        return state

    def earlier_attempts(self, attempt: str) -> list[float]:
        """The seconds of every attempt but `attempt`, oldest first."""
        return [seconds for key, seconds in self.attempts.items() if key != attempt]


class Method(Protocol):
    """A training method: its schedule and what one epoch of it does."""

    name: str

    def schedule(self, cfg: RunConfig) -> list[Step]: ...

    def init_state(self, ctx: Context, state: TrainState) -> None: ...

    def run_step(
        self, step: Step, index: int, ctx: Context, state: TrainState, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]: ...


class Reporter(Protocol):
    def restore(self) -> dict[str, Any] | None: ...

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None: ...


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint of a run folder, in-process (`state.pt`) or Ray Train's
    (`checkpoint_*/state.pt`): a run started one way resumes the other (one worker trains in this
    process now; with `--address`, through Ray Train), from whichever was written last."""
    found = [directory / STATE_FILE, *directory.glob(f"checkpoint_*/{STATE_FILE}")]
    found = [p for p in found if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


class LocalReporter:
    """Checkpoints to `directory/state.pt` (atomically); the metrics travel in the state's history."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def restore(self) -> dict[str, Any] | None:
        path = newest_checkpoint(self.directory)
        return load_payload(path) if path is not None else None

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        save_payload(payload, self.directory / STATE_FILE)


class RayReporter:
    """Reports through `ray.train.report` (a barrier: every rank calls it); rank 0 attaches the
    checkpoint, since after the all-gathers every rank holds the same state. `directory`: the run folder,
    whose in-process checkpoint a run resumes from when Ray Train has none of its own."""

    def __init__(self, world: World, directory: Path | None = None) -> None:
        self.world = world
        self.directory = directory

    def restore(self) -> dict[str, Any] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            local = self.directory / STATE_FILE if self.directory is not None else None
            return load_payload(local) if local is not None and local.is_file() else None
        with checkpoint.as_directory() as d:
            return load_payload(Path(d) / STATE_FILE)

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        import ray.train

        if not self.world.is_main:
            ray.train.report(metrics, checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as d:
            save_payload(payload, Path(d) / STATE_FILE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def save_payload(payload: dict[str, Any], path: Path) -> None:
    # Atomic: a crash or a full disk mid-save leaves the previous checkpoint intact and no temporary file.
    write_with(path, lambda f: torch.save(payload, f))


def load_payload(path: Path) -> dict[str, Any]:
    # Our own checkpoints only hold tensors, numbers, strings and containers of them: weights_only
    # refuses anything else, so nothing in the file can run.
    try:
        with (
            warnings.catch_warnings()
        ):  # torch's notes on an unexpected pickle protocol: the line below says it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(
            f"checkpoint {path} is damaged or not noisylab's ({type(e).__name__}): delete it to restart "
            "from the previous checkpoint (or from the start)"
        ) from None
    if not isinstance(payload, dict) or "fingerprint" not in payload:
        raise UserError(
            f"checkpoint {path} is not a noisylab checkpoint: move it away or pass another --name"
        )
    return payload


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.asarray(np.random.get_state(legacy=True)[1]).tolist(),  # type: ignore[index]  # MT words
        "python": random.getstate()[1],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32), 624, 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))


@dataclass(frozen=True)
class Trained:
    """One epoch's outcome for the method: the history metrics, and the per-batch metrics of its
    `BatchOut`s summed over every batch of every rank (one all-reduce for the lot)."""

    metrics: dict[str, Any]  # train_loss, images_per_s, seconds
    sums: dict[str, float]
    batches: int  # batches of all ranks together

    def mean(self, name: str) -> float:
        """A batch metric's mean over the epoch's batches (all ranks)."""
        return self.sums[name] / max(self.batches, 1)


def train_one_epoch(
    ctx: Context,
    step: Step,
    index: int,
    optimizer: torch.optim.Optimizer,
    batch_fn: BatchFn,
    *,
    grad_clip: float = 0.0,
    order: Tensor | None = None,
    batch_size: int | None = None,
) -> Trained:
    """Step `index` of the schedule as one epoch over this rank's shard: the epoch order is shared by
    the ranks, the augmentation stream is per rank; both derive from (seed, step), so resuming replays.
    `grad_clip`: max global gradient norm per step (0: none). `order` and `batch_size` replace the
    shuffled pass over every sample in batches of `per_rank_batch` (a method that lays out its own
    batches, e.g. DivideMix's labelled pass); the same on every resumption is the caller's duty."""
    stats = train_epoch(
        ctx.model,
        optimizer,
        order
        if order is not None
        else epoch_order(len(ctx.noisy_labels), ctx.world, seed=ctx.cfg.seed, step=index),
        step=step,
        batch_size=batch_size or ctx.per_rank_batch,
        batch_fn=batch_fn,
        generator=derived_generator(ctx.cfg.seed, index, ctx.world.rank),
        device=ctx.world.device,
        precision=ctx.world.precision,
        scaler=ctx.scaler,
        progress=ctx.progress,
        desc=step.label,
        grad_clip=grad_clip,
    )
    names = sorted(stats.sums)
    summed = all_reduce_sum([stats.sums[n] for n in names], ctx.world)
    return Trained(
        metrics={
            "train_loss": all_reduce_mean(stats.loss, ctx.world),
            "images_per_s": all_reduce_mean(stats.images_per_second, ctx.world) * ctx.world.size,
            "seconds": stats.seconds,
        },
        sums=dict(zip(names, summed, strict=True)),
        batches=stats.batches * ctx.world.size,
    )


def make_optimizer(net: nn.Module, step: Step, kind: Optimizer, *, momentum: float) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD for one phase: the weight decay is an L2 gradient term in Adam and SGD,
    decoupled in AdamW; `momentum` applies to SGD only."""
    if kind == "sgd":
        return torch.optim.SGD(
            net.parameters(), lr=step.lr, momentum=momentum, weight_decay=step.weight_decay
        )
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return cls(net.parameters(), lr=step.lr, weight_decay=step.weight_decay)


@dataclass(frozen=True)
class PretrainCache:
    """Where a finished SimCLR pre-training is kept, so runs that would compute the same one reuse it.

    Pre-training never sees a label: with the same images, network, pre-training settings, seed, batch
    and optimiser it computes the same weights whatever the noise or the later method, so a study of
    many methods × noise rates pre-trains once per seed and network count. The key hashes all of that
    (`pretrain_cache_key`); an entry holds the weights, the pre-training epochs' metrics and the RNG
    state right after the last pre-training epoch, so a run that reuses it continues exactly as if it
    had pre-trained itself. Entries are written atomically and read with `weights_only=True`.
    """

    directory: Path
    key: str

    @property
    def path(self) -> Path:
        return self.directory / f"pretrain-{self.key}.pt"

    def load(self, net: nn.Module, *, steps: int) -> dict[str, Any] | None:
        """The stored pre-training of `steps` epochs for `net`, or None when there is none. An entry is
        checked completely before it is used (`entry_problem`): the cache only saves time, so one that
        fails a check is set aside (renamed `.bad`) with one warning line and computed again."""
        if not self.path.exists():
            return None
        try:
            entry = load_payload(self.path)
        except UserError:
            problem: str | None = "it is not a readable checkpoint"
        else:
            problem = entry_problem(entry, key=self.key, net=net, steps=steps)
        if problem is None:
            return entry
        bad = set_aside(self.path)
        where = f"set aside as {bad.name}" if bad is not None else "another run set it aside"
        warn(f"pre-training cache entry {self.path} cannot be used ({problem}): {where}; pre-training again")
        return None


# What a cache entry holds (`run_schedule` stores it), and what each pre-training row of its history has.
ENTRY_FIELDS = ("fingerprint", "model", "history", "rng", "scaler")
_ROW_FIELDS = ("step", "phase", "iteration", "epoch", "train_loss", "images_per_s", "seconds")
_SCALER_FIELDS = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")


def entry_problem(entry: dict[str, Any], *, key: str, net: nn.Module, steps: int) -> str | None:
    """Why a pre-training cache entry cannot be loaded into `net` and continued after `steps` epochs, or
    None when it can: every field present, its key, every tensor's name, shape, dtype and finiteness
    against the network being built, one finite history row per epoch, RNG states of the right sizes."""
    missing = [f for f in ENTRY_FIELDS if f not in entry]
    if missing:
        return f"it lacks {', '.join(missing)}"
    if entry["fingerprint"] != key:
        return f"it holds the key {entry['fingerprint']!r}, not {key!r}"
    return (
        _weights_problem(entry["model"], net.state_dict())
        or _history_problem(entry["history"], steps)
        or _rng_problem(entry["rng"])
        or _scaler_problem(entry["scaler"])
    )


def _weights_problem(stored: Any, expected: dict[str, Tensor]) -> str | None:
    if not isinstance(stored, dict):
        return f"its weights are a {type(stored).__name__}, not a state dict"
    absent = [name for name in expected if name not in stored]
    unknown = [name for name in stored if name not in expected]
    if absent or unknown:
        return (
            f"its weights lack {len(absent)} and add {len(unknown)} of the network's tensors "
            f"(e.g. {(absent or unknown)[0]})"
        )
    for name, want in expected.items():
        got = stored[name]
        if not isinstance(got, Tensor):
            return f"{name} is a {type(got).__name__}, not a tensor"
        if got.shape != want.shape or got.dtype != want.dtype:
            return (
                f"{name} is {str(got.dtype).removeprefix('torch.')} {list(got.shape)}, the network's "
                f"{str(want.dtype).removeprefix('torch.')} {list(want.shape)}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            return f"{name} holds NaN or infinite values"
    return None


def _history_problem(history: Any, steps: int) -> str | None:
    if not isinstance(history, list) or len(history) != steps:
        rows = len(history) if isinstance(history, list) else type(history).__name__
        return f"its history has {rows} rows for {steps} pre-training epochs"
    for i, row in enumerate(history):
        if not isinstance(row, dict) or any(f not in row for f in _ROW_FIELDS):
            return f"history row {i} lacks some of {', '.join(_ROW_FIELDS)}"
        if row["step"] != i or row["phase"] != "pretrain":
            return f"history row {i} is step {row['step']!r} of phase {row['phase']!r}, not pre-training"
        for name in ("train_loss", "images_per_s", "seconds"):
            value = row[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return f"history row {i} has {name} = {value!r}"
    return None


def _words(value: Any, count: int, bound: int) -> bool:
    """`value` is a list or tuple of `count` ints in [0, bound) (a Mersenne Twister's state)."""
    return (
        isinstance(value, list | tuple)
        and len(value) == count
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < bound for v in value)
    )


def _rng_problem(rng: Any) -> str | None:
    if not isinstance(rng, dict):
        return f"its RNG state is a {type(rng).__name__}, not a dict"
    state = rng.get("torch")
    want = torch.get_rng_state()
    if not isinstance(state, Tensor) or state.dtype != want.dtype or state.shape != want.shape:
        return "its torch RNG state is not the generator's"
    if not _words(rng.get("numpy"), 624, 2**32):
        return "its numpy RNG state is not 624 32-bit words"
    if not _words(rng.get("python"), 625, 2**32):
        return "its Python RNG state is not 625 32-bit words"
    return None


def _scaler_problem(scaler: Any) -> str | None:
    # A disabled scaler's state is {}: nothing to restore.
    if scaler is None or (
        isinstance(scaler, dict) and (not scaler or all(f in scaler for f in _SCALER_FIELDS))
    ):
        return None
    return "its fp16 loss-scaler state is damaged"


CACHED = "pretrain_cached"  # history key: this row was computed by an earlier run and reused


def pretrain_cache_key(cfg: RunConfig, *, networks: int, world_size: int) -> str | None:
    """The cache key of `cfg`'s pre-training, or None when it cannot be shared: BYOL keeps a target
    network in the run's state, and with several workers every rank would have to see the same cache."""
    if cfg.pretrain.method != "simclr" or cfg.pretrain.epochs == 0 or world_size != 1:
        return None
    # The images, not their labels; but a fold run's images are the folds its noisy labels stratified.
    data = data_settings(cfg.data) | ({"noise": None} if cfg.data.folds is None else {})
    what = {
        "data": data,
        "model": dataclasses.asdict(cfg.model),
        "pretrain": dataclasses.asdict(cfg.pretrain),
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "optimizer": cfg.optimizer,
        "sgd_momentum": cfg.sgd_momentum,
        "precision": cfg.precision,
        "networks": networks,
        "use_gpu": cfg.use_gpu,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]


def run_schedule(
    method: Method,
    ctx: Context,
    reporter: Reporter,
    *,
    fingerprint: str,
    fail_at_step: int | None = None,
    on_step: Callable[[int, Step, dict[str, Any]], None] | None = None,
    pretrain_cache: PretrainCache | None = None,
    attempt: str = "local",
) -> TrainState:
    """Walk `method.schedule` from the last checkpoint (or the start) to the end.

    After every step the metrics and a checkpoint (model, optimiser, state, RNG) go to `reporter`; the
    state records the seconds `attempt` (the driver's id of this try at the run) has run so far.
    `fail_at_step` raises once before that step in a run that did not resume (tests use it to
    simulate a crash). With `pretrain_cache`, a fresh run whose leading pre-training epochs are cached
    starts after them, and a run that computes them stores them there.
    """
    started = time.perf_counter()
    schedule = method.schedule(ctx.cfg)
    pretrain_steps = next((i for i, s in enumerate(schedule) if s.phase != "pretrain"), len(schedule))
    cache = pretrain_cache if pretrain_steps > 0 else None
    state = TrainState()
    optimizer: torch.optim.Optimizer | None = None
    payload = reporter.restore()
    resumed = payload is not None
    entry = cache.load(ctx.net, steps=pretrain_steps) if payload is None and cache is not None else None
    if entry is not None:
        assert cache is not None
        method.init_state(ctx, state)
        ctx.net.load_state_dict(entry["model"])
        state.history = [row | {CACHED: True} for row in entry["history"]]
        state.step = pretrain_steps
        set_rng_state(entry["rng"])
        if ctx.scaler is not None and entry.get("scaler"):
            ctx.scaler.load_state_dict(entry["scaler"])
        if ctx.log is not None:
            ctx.log(f"pre-training: {pretrain_steps} epochs reused from {cache.path}")
    elif payload is not None:
        if payload["fingerprint"] != fingerprint:
            raise UserError(  # the driver checks this first (runner.check_checkpoints)
                f"the checkpoint belongs to another config ({payload['fingerprint']}, this run {fingerprint})"
            )
        state = TrainState.from_dict(payload["state"])
        ctx.net.load_state_dict(payload["model"])
        if payload["optimizer"] is not None and state.step < len(schedule):
            optimizer = make_optimizer(
                ctx.net, schedule[state.step], ctx.cfg.optimizer, momentum=ctx.cfg.sgd_momentum
            )
            optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])
        if ctx.scaler is not None and payload.get("scaler"):
            ctx.scaler.load_state_dict(payload["scaler"])
    else:
        method.init_state(ctx, state)

    bars = ctx.progress
    for index in range(state.step, len(schedule)):
        step = schedule[index]
        prefix = f"[{index + 1}/{len(schedule)}] "
        ctx.progress = lambda desc, total, prefix=prefix: bars(prefix + desc, total)
        if fail_at_step is not None and index == fail_at_step and not resumed:
            raise RuntimeError(f"injected failure before step {index}")
        if optimizer is None or step.starts_phase:
            optimizer = make_optimizer(ctx.net, step, ctx.cfg.optimizer, momentum=ctx.cfg.sgd_momentum)
        metrics = method.run_step(step, index, ctx, state, optimizer)
        check_finite_loss(metrics, step)  # before the report: the last good checkpoint stays the newest
        metrics = {
            "step": index,
            "phase": step.phase,
            "iteration": step.iteration,
            "epoch": step.epoch,
        } | metrics
        state.history.append(metrics)
        state.step = index + 1
        state.attempts[attempt] = time.perf_counter() - started
        # The optimiser carries over only within a phase; the next phase builds its own.
        keep_opt = state.step < len(schedule) and not schedule[state.step].starts_phase
        reporter.report(
            metrics,
            {
                "fingerprint": fingerprint,
                "state": state.to_dict(),
                "model": ctx.net.state_dict(),
                "optimizer": optimizer.state_dict() if keep_opt else None,
                "rng": rng_state(),
                "scaler": scaler_state(ctx),
            },
        )
        if cache is not None and index == pretrain_steps - 1 and ctx.world.is_main:
            stored = {
                "model": ctx.net.state_dict(),
                "history": state.history,
                "rng": rng_state(),
                "scaler": scaler_state(ctx),
            }
            save_payload(stored | {"fingerprint": cache.key}, cache.path)
        if ctx.log is not None:
            ctx.log(prefix + step.label + "  " + describe(metrics))
        if on_step is not None:
            on_step(index, step, metrics)
    ctx.progress = bars
    return state


def scaler_state(ctx: Context) -> dict[str, Any] | None:
    """The fp16 loss scaler's state (scale, growth tracker), so a resumed run scales as the original."""
    return ctx.scaler.state_dict() if ctx.scaler is not None else None


def check_finite_loss(metrics: dict[str, Any], step: Step) -> None:
    """Once per epoch: a NaN or infinite training loss (all-reduced, so every rank agrees) ends the run
    with one line instead of training on to a meaningless record."""
    loss = float(metrics.get("train_loss", 0.0))
    if not math.isfinite(loss):
        raise UserError(
            f"training diverged: the loss became {loss} at {step.place}; the last good "
            "checkpoint is kept: lower the learning rate (--set ...lr=) and start a new run (--name)"
        )
