"""Images per second of one training epoch on the device at hand, for each GPU switch, against a bare
PyTorch loop; and what that makes of one `paper_table2` cell's wall time.

At CIFAR-10's shape (32×32×3, 10 classes; synthetic uint8 images written as a MedMNIST-layout .npz and
read through the real data path), ResNet-18 at `--width` (64 = full width) and batch `--batch`, each
epoch kind runs through the worker's own `build_context` (so channels-last, autocast, loss scaling and
compilation are applied exactly as in a run) and the method's own `run_step`:

    ce           one epoch of `ce`
    simclr       one SimCLR pre-training epoch of `paper` (two views per image)
    refine       one refinement epoch of `paper`, 20 % of samples pseudo-labelled (2 augmented copies each)
    dmx_warmup   one DivideMix warm-up epoch (two networks, CE)
    dmx_divided  one DivideMix epoch: division (scan, GMM) and MixMatch
    bare         the loop a researcher writes by hand: permute, slice, augment, forward, CE, step

Switches: fp32; bf16 (autocast); bf16 + channels-last; bf16 + channels-last + torch.compile. The bare
loop runs under the same autocast and layout. Each cell is the median of `--repeats` epochs after one
warm-up epoch (compilation happens there). Images/s counts the epoch's samples, not its views.

Projection: a `paper_table2` cell on CIFAR-10 (50,000 images) under the `gpu` profile, summing over
the method's schedule 50,000 / (the measured rate of that epoch's kind); evaluation passes are left out.

    .venv/bin/python benchmarks/gpu_throughput.py                      # CPU here: --samples 512
    .venv/bin/python benchmarks/gpu_throughput.py --samples 4096 --switches fp32,bf16_cl   # a GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from noisylab.config.profiles import make_config
from noisylab.train.engine import Step, World, autocast
from noisylab.train.runtime import Context, TrainState, make_optimizer
from noisylab.trainables import get_method

SWITCHES: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "bf16_cl": {"precision": "bf16", "model.channels_last": True},
    "bf16_cl_compile": {"precision": "bf16", "model.channels_last": True, "model.compile": True},
}
KINDS = ("bare", "ce", "simclr", "refine", "dmx_warmup", "dmx_divided")
CIFAR_TRAIN = 50_000


def write_cifar_shaped(path: Path, samples: int) -> Path:
    """Random uint8 32×32×3 images, 10 balanced classes, in the MedMNIST .npz layout (N, H, W, C)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(samples + 64, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(samples + 64) % 10).astype(np.int64)[:, None]
    np.savez(path, train_images=images[:samples], train_labels=labels[:samples],
             test_images=images[samples:], test_labels=labels[samples:])  # fmt: skip
    return path


def context(method: str, npz: Path, args: argparse.Namespace, switch: dict[str, Any], device: str) -> Context:
    from noisylab.data.prepare import prepare_data
    from noisylab.train.worker import WorkerSpec, build_context

    overrides = {
        "method": method,
        "data.dataset": "npz",
        "data.root": str(npz),
        "data.noise": "sym:0.2",
        "model.width": args.width,
        "batch_size": args.batch,
        "eval_every": "phase",
        "use_gpu": device == "cuda",
        "workers": 0,
    }
    cfg = make_config("gpu", overrides | {"precision": "fp32", "model.channels_last": False} | switch)
    bundle = prepare_data(cfg)
    spec = WorkerSpec(cfg=cfg, data=bundle, fingerprint=cfg.fingerprint(), progress=False)
    ctx = build_context(spec, bundle, World(device=torch.device(device)), in_ray=False)
    ctx.log = None
    return ctx


def epoch_runner(
    kind: str, npz: Path, args: argparse.Namespace, switch: dict[str, Any], device: str
) -> Callable[[int], None]:
    """A function running one epoch of `kind` (its argument: the schedule index, which seeds the order)."""
    method_name = {"ce": "ce", "simclr": "paper", "refine": "paper", "bare": "ce"}.get(kind, "dividemix")
    ctx = context(method_name, npz, args, switch, device)
    method = get_method(method_name)
    state = TrainState()
    method.init_state(ctx, state)
    n = len(ctx.noisy_labels)
    if kind == "bare":
        return bare_loop(ctx)
    step = {
        "ce": Step("train", 1, 2, 1e-3, 0.0),
        "simclr": Step("pretrain", 1, 2, 1e-3, 0.0),
        "refine": Step("refine", 1, 4, 1e-3, 0.0, iteration=1),  # no stage ends: a training epoch only
        "dmx_warmup": Step("warmup", 1, 2, 1e-3, 0.0),
        "dmx_divided": Step("train", 1, 2, 1e-3, 0.0),
    }[kind]
    if kind == "refine":
        assert state.pseudo is not None
        state.pseudo[torch.randperm(n, generator=torch.Generator().manual_seed(0))[: n // 5]] = True
    optimizer = make_optimizer(ctx.net, step, ctx.cfg.optimizer, momentum=ctx.cfg.sgd_momentum)

    def epoch(index: int) -> None:
        method.run_step(step, index, ctx, state, optimizer)

    return epoch


def bare_loop(ctx: Context) -> Callable[[int], None]:
    """Permute, slice, weak-augment, forward, CE, step: under the switch's autocast and layout."""
    net, images, labels = ctx.model, ctx.train_images, ctx.noisy_labels.to(ctx.world.device)
    optimizer = torch.optim.AdamW(ctx.net.parameters(), lr=1e-3)
    scaler = ctx.scaler

    def epoch(seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(labels), generator=gen).to(ctx.world.device)
        net.train()
        for i in range(0, len(perm), ctx.cfg.batch_size):
            idx = perm[i : i + ctx.cfg.batch_size]
            with autocast(ctx.world.device, ctx.world.precision):
                loss = nn.functional.cross_entropy(net(ctx.augmenter.weak(images[idx], gen)), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()

    return epoch


def timed(run: Callable[[int], None], repeats: int, device: str) -> float:
    """Median seconds of `repeats` epochs after one warm-up epoch (compilation, allocator, caches)."""
    run(0)
    seconds = []
    for r in range(1, repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(r)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def projection(rates: dict[str, float], method: str) -> float:
    """Hours of one CIFAR-10 `method` cell of `paper_table2` under the gpu profile at these rates."""
    cfg = make_config("gpu", {"method": method, "data.dataset": "cifar10"})
    kind_of = {
        "paper": {"pretrain": "simclr", "warmup": "ce", "refine": "refine"},
        "dividemix": {"warmup": "dmx_warmup", "train": "dmx_divided"},
        "paper_dividemix": {"pretrain": "simclr", "warmup": "dmx_warmup", "refine": "dmx_divided"},
        "ce": {"train": "ce"},
    }[method]
    return sum(CIFAR_TRAIN / rates[kind_of[s.phase]] for s in get_method(method).schedule(cfg)) / 3600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=512, help="training images per epoch")
    ap.add_argument("--width", type=int, default=64, help="ResNet-18 width (64 = full)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--switches", default=",".join(SWITCHES), help=f"comma-separated, of {', '.join(SWITCHES)}"
    )
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    switches = args.switches.split(",")
    kinds = args.kinds.split(",")
    unknown = [s for s in switches if s not in SWITCHES] + [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit(f"error: unknown switch or kind {', '.join(unknown)}")
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; {args.samples} images 32×32×3, ResNet-18 width {args.width}, batch {args.batch}, "
          f"median of {args.repeats} epochs after a warm-up")  # fmt: skip
    rates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        npz = write_cifar_shaped(Path(d) / "cifar_shaped.npz", args.samples)
        for switch in switches:
            for kind in kinds:
                seconds = timed(epoch_runner(kind, npz, args, SWITCHES[switch], device), args.repeats, device)
                rates.setdefault(switch, {})[kind] = args.samples / seconds
                print(f"  {switch:16s} {kind:12s} {args.samples / seconds:9.1f} images/s", flush=True)
    print("\n| epoch | " + " | ".join(switches) + " |")
    print("| :--- | " + " | ".join("---:" for _ in switches) + " |")
    for kind in kinds:
        cells = [f"{rates[s][kind]:.1f}" for s in switches]
        print(f"| {kind} images/s | " + " | ".join(cells) + " |")
    if "bare" in kinds:
        for kind in kinds:
            if kind != "bare":
                cells = [f"{rates[s][kind] / rates[s]['bare']:.3f}" for s in switches]
                print(f"| {kind} ÷ bare | " + " | ".join(cells) + " |")
    base = switches[0]
    for switch in switches[1:]:
        cells = [f"{rates[switch][k] / rates[base][k]:.2f}×" for k in kinds]
        print(f"\n{switch} ÷ {base}: " + ", ".join(f"{k} {c}" for k, c in zip(kinds, cells, strict=True)))
    needed = {"simclr", "ce", "refine", "dmx_warmup", "dmx_divided"}
    if needed <= set(kinds):
        print("\nprojected hours of one CIFAR-10 paper_table2 cell (gpu profile, 50,000 images, no eval):")
        print(
            "| method | "
            + " | ".join(switches)
            + " |\n| :--- | "
            + " | ".join("---:" for _ in switches)
            + " |"
        )
        for method in ("ce", "paper", "dividemix", "paper_dividemix"):
            print(
                f"| {method} | " + " | ".join(f"{projection(rates[s], method):.2f}" for s in switches) + " |"
            )


if __name__ == "__main__":
    main()
