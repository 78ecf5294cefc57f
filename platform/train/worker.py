"""The function every Ray Train worker runs (`train_loop`), and the same loop without Ray.

A worker gets one `WorkerSpec` (the checked config object plus the data bundle, or its object-store
reference), builds its `Context` and walks the method's schedule with `runtime.run_schedule`.
Rank 0 returns the run's outcome; Ray hands it to the driver as `Result.return_value`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisylab.config.run import RunConfig
from noisylab.data.augment import Augmenter
from noisylab.data.prepare import DataBundle
from noisylab.errors import UserError
from noisylab.results.live import metrics_writer
from noisylab.results.trackers import RunTrackers, combine
from noisylab.train.engine import Bar, ProgressFactory, World, grad_scaler, no_progress
from noisylab.train.models import build_model
from noisylab.train.runtime import (
    Context,
    LocalReporter,
    PretrainCache,
    RayReporter,
    Reporter,
    TrainState,
    pretrain_cache_key,
    run_schedule,
)
from noisylab.trainables import get_method, method_networks, model_options


@dataclass(frozen=True)
class WorkerSpec:
    cfg: RunConfig
    data: Any  # DataBundle, or a Ray ObjectRef to one
    fingerprint: str
    fail_at_step: int | None = None  # tests: crash once before this step of a fresh run
    progress: bool = True
    epoch_lines: bool = True  # one log line per epoch on rank 0 (sweeps turn it off: many trials at once)
    metrics_path: str | None = None  # rank 0 appends each epoch's metrics here (live.METRICS_FILE)
    loggers: tuple[str, ...] = ()  # experiment trackers rank 0 feeds every epoch (trackers.LOGGERS)
    pretrain_cache: str | None = None  # folder of shared pre-trainings (runtime.PretrainCache); None: off
    attempt: str = "local"  # the driver's id of this try at the run (TrainState.attempts)


def _tensor(a: np.ndarray) -> torch.Tensor:
    # Arrays from the object store are read-only; copy before handing them to torch.
    return torch.from_numpy(np.array(a, copy=True))


def build_context(spec: WorkerSpec, bundle: DataBundle, world: World, *, in_ray: bool) -> Context:
    """Tensors, network and augmenter of one worker; progress bars and epoch lines on rank 0 only."""
    cfg = spec.cfg
    world = dataclasses.replace(world, precision=cfg.precision)
    show = spec.progress and world.is_main
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    train_images = _tensor(bundle.train_images).to(world.device)
    h = train_images.shape[-1]
    net = build_model(
        cfg.model,
        networks=method_networks(cfg.method),  # 2: Co-teaching, DivideMix train a TwinNetwork
        seed=cfg.seed,
        num_classes=bundle.num_classes,
        in_chans=train_images.shape[1],
        image_size=h,
        predictor=cfg.pretrain.method == "byol",  # BYOL's predictor is trained by the phase's optimiser
        **model_options(cfg),  # heads a method asks for (LSL's structural head)
    )
    net.to(world.device)
    if cfg.model.channels_last:
        net.to(memory_format=torch.channels_last)
    return Context(
        cfg=cfg,
        world=world,
        net=net,
        model=compiled(net) if cfg.model.compile else net,
        train_images=train_images,
        noisy_labels=_tensor(bundle.noisy_labels),
        clean_labels=_tensor(bundle.clean_labels),
        noise_transition=_tensor(bundle.noise.transition),
        test_images=_tensor(bundle.test_images).to(world.device),
        test_labels=_tensor(bundle.test_labels),
        num_classes=bundle.num_classes,
        augmenter=Augmenter.for_images(
            _tensor(bundle.train_images),
            flip=cfg.data.flip,
            crop_padding=cfg.data.crop_padding,
            channels_last=cfg.model.channels_last,
        ),
        scaler=grad_scaler(world.device, cfg.precision),
        progress=tqdm_progress(show, in_ray=in_ray),
        log=_epoch_logger(in_ray=in_ray)
        if world.is_main and spec.epoch_lines
        else None,  # the run's log, even without bars
    )


def compiled(net: torch.nn.Module) -> torch.nn.Module:
    """`torch.compile` of the training network. `dynamic=True`: batch sizes vary (a shorter last batch,
    augmented copies), and one dynamic graph avoids recompiling for each of them."""
    return torch.compile(net, dynamic=True)  # type: ignore[return-value]


def pretrain_cache(spec: WorkerSpec, world: World) -> PretrainCache | None:
    if spec.pretrain_cache is None:
        return None
    key = pretrain_cache_key(spec.cfg, networks=method_networks(spec.cfg.method), world_size=world.size)
    return PretrainCache(Path(spec.pretrain_cache), key) if key is not None else None


def outcome(state: TrainState, ctx: Context, attempt: str, bundle: DataBundle) -> dict[str, Any]:
    """What rank 0 hands back to the driver: every step's metrics, the final training labels, the
    per-sample data of `samples.parquet` (and a fold run's `heldout.parquet`), and the seconds of the
    attempts before `attempt`. Every rank must call it (the final scans all-gather)."""
    from noisylab.train.samples import TRACKED, final_probabilities, heldout_probabilities

    labels = state.labels.numpy() if state.labels is not None else None
    probs = final_probabilities(ctx)
    held_out = heldout_probabilities(ctx, bundle.holdout.images) if bundle.holdout is not None else None
    # numpy, not tensors: Ray Train refuses to return tensors from the training function
    tracked = {k: v.numpy() for k, v in state.extra.items() if k in TRACKED}
    return {
        "history": state.history,
        "labels": labels,
        "probs": probs,
        "heldout_probs": held_out,
        "tracked": tracked,
        "earlier_attempts": state.earlier_attempts(attempt),
    }


def _on_step(
    spec: WorkerSpec, world: World, bundle: DataBundle
) -> tuple[Callable[[int, Any, dict[str, Any]], None] | None, Any]:
    """Rank 0's per-epoch writers (metrics.jsonl, trackers), and the trackers to close at the end."""
    if spec.metrics_path is None or not world.is_main:
        return None, None
    path = Path(spec.metrics_path)
    trackers = RunTrackers(spec.loggers, path.parent, spec.cfg, bundle.class_names) if spec.loggers else None
    return combine(metrics_writer(path), trackers), trackers


def run_local(spec: WorkerSpec, directory: Path) -> dict[str, Any]:
    """The whole run in this process, no Ray: checkpoints go to `directory`."""
    bundle: DataBundle = spec.data
    # `--gpu` in this process: the one GPU (a Ray worker gets it from Train's `get_device`)
    device = torch.device("cuda" if spec.cfg.use_gpu else "cpu")
    ctx = build_context(spec, bundle, World(device=device), in_ray=False)
    reporter: Reporter = LocalReporter(directory)
    on_step, trackers = _on_step(spec, ctx.world, bundle)
    state = run_schedule(
        get_method(spec.cfg.method),
        ctx,
        reporter,
        fingerprint=spec.fingerprint,
        fail_at_step=spec.fail_at_step,
        on_step=on_step,
        pretrain_cache=pretrain_cache(spec, ctx.world),
        attempt=spec.attempt,
    )
    if trackers is not None:
        trackers.close()
    return outcome(state, ctx, spec.attempt, bundle)


def train_loop(config: dict[str, Any]) -> dict[str, Any] | None:
    """Ray Train's `train_loop_per_worker`."""
    import ray
    import ray.train
    import ray.train.torch

    _quiet_train_reports()
    spec: WorkerSpec = config["spec"]
    bundle: DataBundle = ray.get(spec.data) if isinstance(spec.data, ray.ObjectRef) else spec.data
    context = ray.train.get_context()
    world = World(
        rank=context.get_world_rank(), size=context.get_world_size(), device=ray.train.torch.get_device()
    )
    in_ray = spec.cfg.workers > 0
    ctx = build_context(spec, bundle, world, in_ray=in_ray)
    if world.size > 1:
        # The projection head is idle in supervised phases and the classifier in pre-training.
        ctx.model = ray.train.torch.prepare_model(
            ctx.net, parallel_strategy_kwargs={"find_unused_parameters": True}
        )
        if spec.cfg.model.compile:
            ctx.model = compiled(ctx.model)  # compile DDP's wrapper: gradients still sync per bucket
    on_step, trackers = _on_step(spec, world, bundle)
    try:
        state = run_schedule(
            get_method(spec.cfg.method),
            ctx,
            RayReporter(world, Path(spec.metrics_path).parent if spec.metrics_path else None),
            fingerprint=spec.fingerprint,
            fail_at_step=spec.fail_at_step,
            on_step=on_step,
            pretrain_cache=pretrain_cache(spec, world),
            attempt=spec.attempt,
        )
    except UserError as e:
        # Every rank sees the same all-reduced loss, so all stop here together; the driver turns the
        # message back into a UserError (a raised one would reach it as a worker-group traceback).
        return {"error": str(e)} if world.is_main else None
    finally:
        if trackers is not None:
            trackers.close()
    result = outcome(state, ctx, spec.attempt, bundle)
    return result if world.is_main else None


def _quiet_train_reports() -> None:
    """Ray Train logs every `report` call at INFO through a logger named after its source file (so
    `LoggingConfig` does not reach it); the progress bars already say what it says."""
    import logging

    from ray.train.v2._internal.execution import context as train_context

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def _epoch_logger(*, in_ray: bool) -> Callable[[str], None]:
    if in_ray:
        # Ray forwards worker stderr to the driver. Not `print`: Train patches it to log and echo each
        # line, so it would show twice.
        def write(line: str) -> None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

        return write
    from tqdm.auto import tqdm

    return lambda line: tqdm.write(line, file=sys.stderr)


def tqdm_progress(enabled: bool, *, in_ray: bool) -> ProgressFactory:
    """Progress bars for every epoch and scan: Ray's tqdm in workers (drawn by the driver), plain tqdm
    in-process."""
    if not enabled:
        return no_progress
    from ray.experimental.tqdm_ray import tqdm as ray_tqdm
    from tqdm.auto import tqdm

    @contextlib.contextmanager
    def factory(desc: str, total: int) -> Iterator[Bar]:
        bar: Any = ray_tqdm(total=total, desc=desc) if in_ray else tqdm(total=total, desc=desc, leave=False)
        try:
            yield bar
        finally:
            bar.close()

    return factory
