"""The one training engine: a schedule of epochs, a train loop fed by callables, a sharded scan.

Methods never write a loop of their own. They describe their run as a flat `schedule` of `Step`s
(one per epoch) and hand `train_epoch` a `batch_fn(indices, generator, place) -> BatchOut`: the loss,
per-batch metrics that the engine sums on the device, and an optional action after the optimiser step;
`place` says which epoch and batch it is. Anything per-sample
(selection losses, predictions, test accuracy) goes through `scan`, which shards the samples across
ranks and all-gathers the result by sample index so every rank sees the same full vector.

Randomness is derived, not carried: the epoch order comes from (seed, step) and augmentation from
(seed, step, rank), so a run resumed at step k replays exactly what an uninterrupted run does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from noisylab.config.run import Precision


@dataclass(frozen=True)
class World:
    """Where this process sits in the data-parallel group."""

    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Precision = "fp32"  # autocast format of forward passes (training and scans)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Step:
    """One epoch of the schedule."""

    phase: str  # "pretrain" | "warmup" | "refine" | "train"
    epoch: int  # 1-based within the phase (or refinement iteration)
    epochs: int  # epochs in this phase (or iteration)
    lr: float  # Adam learning rate for this epoch
    weight_decay: float
    iteration: int = 0  # 1-based refinement iteration; 0 outside refinement
    stage: int | None = None  # 1-based selection stage that ends with this epoch, if any

    @property
    def starts_phase(self) -> bool:
        return self.epoch == 1

    @property
    def ends_phase(self) -> bool:
        return self.epoch == self.epochs

    @property
    def place(self) -> str:
        """Where this epoch sits, for messages: `epoch 2 of iteration 1 of phase refine`."""
        it = f"iteration {self.iteration} of " if self.iteration else ""
        return f"epoch {self.epoch} of {it}phase {self.phase}"

    @property
    def label(self) -> str:
        it = f" it{self.iteration}" if self.iteration else ""
        return f"{self.phase}{it} {self.epoch}/{self.epochs}"


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...


ProgressFactory = Callable[[str, int], AbstractContextManager[Bar]]


class _NullBar:
    def update(self, n: int = 1) -> None:
        return None


def no_progress(desc: str, total: int) -> AbstractContextManager[Bar]:
    return nullcontext(_NullBar())


def derived_generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded by a tuple of integers (seed, step, rank, ...), identical across restarts."""
    mixed = 0x9E3779B97F4A7C15
    for k in keys:
        mixed = (mixed ^ (k + 0x632BE59BD9B4E019 + (mixed << 6) + (mixed >> 2))) & 0xFFFFFFFFFFFFFFFF
    gen = torch.Generator(device=device)
    gen.manual_seed(mixed & 0x7FFFFFFFFFFFFFFF)
    return gen


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """`t` on `device` without making the host wait: a plain `.to(cuda)` of host memory synchronises
    the stream (the host waits for every queued kernel) before it copies; from pinned memory the copy is
    queued like a kernel. Pinned blocks come from torch's caching host allocator, so this is cheap per
    batch. On the CPU (or for a tensor already there) it returns `t` itself."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def shard_indices(n: int, world: World, *, order: Tensor | None = None) -> Tensor:
    """This rank's share of `order` (default arange(n)), padded so every rank gets the same count.

    Padding repeats the first indices, as torch's DistributedSampler does; equal counts keep DDP's
    collective calls in step. Scans drop the repeats when they scatter by index.
    """
    order = torch.arange(n) if order is None else order
    per_rank = -(-n // world.size)  # ceil
    pad = per_rank * world.size - n
    if pad:
        order = torch.cat([order, order[:pad]])
    return order[world.rank :: world.size]


def epoch_order(n: int, world: World, *, seed: int, step: int) -> Tensor:
    """Shuffled sample indices of this rank for one epoch; the permutation is shared by all ranks."""
    perm = torch.randperm(n, generator=derived_generator(seed, step))
    return shard_indices(n, world, order=perm)


def split_batches(order: Tensor, batch_size: int) -> list[Tensor]:
    """Consecutive batches; a final batch of one sample is dropped (BatchNorm cannot train on it)."""
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks.pop()
    return chunks


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager[Any]:
    """Mixed precision for forward passes and losses: bf16/fp16 autocast on `device`'s type (CUDA or
    CPU), nothing for fp32. Parameters, optimiser state and gradients stay fp32 either way."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling (its range underflows small gradients); bf16 has fp32's range, fp32
    needs nothing. The scaler's state (scale, growth tracker) belongs in the checkpoint."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


@dataclass(frozen=True)
class BatchPlace:
    """Where a batch sits, so a method can act on it without counting its own calls."""

    step: Step  # the schedule's epoch this batch belongs to
    index: int  # 0-based batch of the epoch on this rank
    batches: int  # batches of the epoch on this rank (the same on every rank: shards are padded)

    @property
    def epoch_fraction(self) -> float:
        """Share of the epoch done before this batch: 0 for the first, (B − 1)/B for the last."""
        return self.index / max(self.batches, 1)


@dataclass
class BatchOut:
    """What a method's batch function returns to the engine."""

    loss: Tensor  # scalar with gradients; the engine runs backward and the optimiser step
    images: int  # images through the forward pass (augmented copies and views included)
    # Per-batch diagnostics as 0-d tensors on the device: the engine sums them over the epoch without
    # reading them (no host synchronisation per batch); `Trained.sums` / `.means` hand them back.
    metrics: dict[str, Tensor] = field(default_factory=dict)
    after_step: Callable[[], None] | None = None  # runs right after the optimiser step (an EMA update)


BatchFn = Callable[[Tensor, torch.Generator, BatchPlace], BatchOut]
"""(sample indices [B] of this rank, augmentation generator, place) -> BatchOut."""


@dataclass(frozen=True)
class EpochStats:
    loss: float  # mean training loss over batches
    samples: int  # images through forward+backward on this rank (augmented copies included)
    seconds: float
    batches: int = 0  # batches on this rank
    sums: dict[str, float] = field(default_factory=dict)  # each BatchOut metric summed over the batches

    @property
    def images_per_second(self) -> float:
        return self.samples / max(self.seconds, 1e-9)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    order: Tensor,
    *,
    step: Step,
    batch_size: int,
    batch_fn: BatchFn,
    generator: torch.Generator,
    device: torch.device | None = None,
    precision: Precision = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    progress: ProgressFactory = no_progress,
    desc: str = "train",
    grad_clip: float = 0.0,
) -> EpochStats:
    """One pass over `order` in batches of `batch_size` (this rank's share of the global batch).

    Per batch: `batch_fn` under autocast (`precision`), backward (scaled with an fp16 `scaler`),
    optional clipping to the global L2 norm `grad_clip` (0: never), the optimiser step, then the
    batch's `after_step`. The loss and the batch metrics are summed on the device in float64 and read
    once, after the last batch: nothing in the loop waits for the device.
    """
    model.train()
    device = device or torch.device("cpu")
    batches = split_batches(order, batch_size)
    total = torch.zeros((), dtype=torch.float64, device=device)
    sums: dict[str, Tensor] = {}
    seen = 0
    start = time.perf_counter()
    with progress(desc, len(batches)) as bar:
        for i, idx in enumerate(batches):
            with autocast(device, precision):
                out = batch_fn(idx, generator, BatchPlace(step, i, len(batches)))
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(out.loss).backward()
                if grad_clip > 0:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                out.loss.backward()
                if grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
            if out.after_step is not None:
                out.after_step()
            # float32 losses summed in float64 are exact whatever the order (24-bit mantissas, few terms)
            total += out.loss.detach().double()
            for name, value in out.metrics.items():
                acc = sums.get(name)
                sums[name] = value.detach().double() if acc is None else acc + value.detach().double()
            seen += out.images
            bar.update(1)
    read = {name: float(v) for name, v in sums.items()}  # the epoch's one read of the device
    return EpochStats(
        loss=float(total) / max(len(batches), 1),
        samples=seen,
        seconds=time.perf_counter() - start,
        batches=len(batches),
        sums=read,
    )


ScanFn = Callable[[Tensor, Tensor], Tensor]
"""(logits [B, K], sample indices [B]) -> per-sample values [B, m] (float)."""


@torch.no_grad()
def scan(
    model: nn.Module,
    images: Tensor,
    *,
    transform: Callable[[Tensor], Tensor],
    fn: ScanFn,
    batch_size: int,
    world: World,
    progress: ProgressFactory = no_progress,
    desc: str = "scan",
) -> Tensor:
    """Evaluate `fn` on every sample (no augmentation), sharded across ranks: returns [N, m] on CPU.

    Each rank scores `shard_indices`; (value, index) pairs are all-gathered and scattered into a full
    tensor, so every rank ends with the same values in sample order.
    """
    was_training = model.training
    model.eval()
    n = images.shape[0]
    mine = shard_indices(n, world)
    parts: list[Tensor] = []
    batches = list(mine.split(batch_size))
    with progress(desc, len(batches)) as bar:
        for idx in batches:
            x = transform(images[to_device(idx, images.device)])
            with autocast(world.device, world.precision):
                logits = model(x)
            parts.append(fn(logits, idx).float().reshape(len(idx), -1))  # stays on the device
            bar.update(1)
    local = torch.cat(parts).cpu()  # (n_local, m): the scan's one copy to the host
    full = torch.empty((n, local.shape[1]), dtype=local.dtype)
    if world.size == 1:
        full[mine] = local
    else:
        values = all_gather(local, world)  # (size * n_local, m): every shard has the same length
        index = all_gather(mine.to(torch.int64).unsqueeze(1), world).squeeze(1)
        full[index] = values
    model.train(was_training)
    return full


def all_gather(t: Tensor, world: World) -> Tensor:
    """Concatenate equal-shaped tensors from every rank along dim 0 (gloo or NCCL)."""
    if world.size == 1:
        return t
    on_device = t.to(world.device)
    out = [torch.empty_like(on_device) for _ in range(world.size)]
    dist.all_gather(out, on_device)
    return torch.cat(out).cpu()


def same_on_all_ranks(t: Tensor, world: World) -> bool:
    """Whether every rank holds the same tensor: a cheap guard on the all-gathered selections."""
    if world.size == 1:
        return True
    gathered = all_gather(t.reshape(1, -1), world)
    return bool((gathered == gathered[0]).all())


def all_reduce_mean(value: float, world: World) -> float:
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sum over ranks of a list of floats, in one collective (float64)."""
    if world.size == 1 or not values:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()


def macro_f1(preds: Tensor, labels: Tensor, num_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2·TP / (2·TP + FP + FN); classes absent from both score 0
    and are left out of the mean (scikit-learn's convention with `labels` present in either)."""
    preds, labels = preds.long(), labels.long()
    tp = torch.bincount(labels[preds == labels], minlength=num_classes).double()
    pred_count = torch.bincount(preds, minlength=num_classes).double()
    true_count = torch.bincount(labels, minlength=num_classes).double()
    denom = pred_count + true_count  # = 2TP + FP + FN
    present = denom > 0
    f1 = torch.where(present, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    return float(f1[present].mean()) if bool(present.any()) else 0.0


def iterate_chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
