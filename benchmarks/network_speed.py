"""Which network learns how fast: test accuracy after epochs 1, 2, 5 and 10 on clean Fashion-MNIST.

Every network noisylab offers at a CPU width, plus a PreAct ResNet-18 written here as a plain
`nn.Module` (DivideMix's design: 3×3/stride-1 conv → BN → ReLU stem, pre-activation blocks, no final
norm, PyTorch's default init), each trained two ways side by side:

- **bare**: the loop a researcher writes by hand, sharing nothing with noisylab but the data tensors:
  reflect-pad-4 random crop + horizontal flip, per-channel normalisation, SGD lr 0.02, momentum 0.9,
  weight decay 5e-4, batch 128, a fresh permutation each epoch;
- **engine**: `noisylab run --method ce --noise none` with the same optimiser, batch, augmentation and
  epochs (in-process, a checkpoint per epoch, as `--workers 0` runs).

Both read the same class-balanced subset (noisylab's own `prepare_data`: 4,000 training / 2,000 test
images by default). Each (network, side, seed) is one job in a pool of `--jobs` processes with one
torch thread each. Prints the median over seeds of the test accuracy after each listed epoch and of
the first epoch's training loss, then the two checks: the default network within 2 points of the
reference at epoch 10, and the engine within 2 points of the bare loop on the same network.

    .venv/bin/python benchmarks/network_speed.py [--seeds 0 1 2] [--epochs 10] [--width 16]
        [--train 4000] [--test 2000] [--jobs 2] [--networks ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REFERENCE = "reference_preact18"  # the plain nn.Module below
# Every ResNet noisylab builds, and timm's default initialisation as it was shipped before
# (zero_init_last on, each residual branch starting at zero).
NETWORKS = (
    REFERENCE,
    "preact_resnet18",
    "resnet18",
    "resnet18+zero_init_last",
    "preact_resnet34",
    "resnet34",
)
REPORTED_EPOCHS = (1, 2, 5, 10)
TOLERANCE = 2.0  # points of test accuracy
LR, MOMENTUM, WEIGHT_DECAY, BATCH, PADDING = 0.02, 0.9, 5e-4, 128, 4  # SGD as DivideMix; pixels


@dataclass(frozen=True)
class Job:
    network: str
    side: str  # "bare" or "engine"
    seed: int
    args: argparse.Namespace


@dataclass(frozen=True)
class Outcome:
    network: str
    side: str
    seed: int
    test_acc: dict[int, float]  # epoch → accuracy in %
    first_loss: float
    seconds_per_epoch: float
    parameters: int


# ---- the reference network ----------------------------------------------------------------------


def reference_preact18(width: int, in_chans: int, num_classes: int) -> Any:
    """A PreAct ResNet-18 as a plain module (He et al. 2016's pre-activation block in the layout of the
    noisy-label literature's CIFAR network), PyTorch's default initialisation."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
            # A 1×1 projection of the pre-activated input where the shape changes.
            self.project = (
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pre = torch.relu(self.bn1(x))
            shortcut = x if self.project is None else self.project(pre)
            return self.conv2(torch.relu(self.bn2(self.conv1(pre)))) + shortcut

    class PreActResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
            )
            blocks, cin = [], width
            for stage, stride in enumerate((1, 2, 2, 2)):
                cout = width * 2**stage
                blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.linear = nn.Linear(cin, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = self.blocks(self.stem(x)).mean(dim=(2, 3))  # (B, 8w): global average pool
            return self.linear(feats)

    return PreActResNet18()


# ---- one job ------------------------------------------------------------------------------------


def _config(job: Job) -> Any:
    from noisylab.api import load_config

    name, _, option = job.network.partition("+")
    return load_config(
        profile="cpu",
        method="ce",
        seed=job.seed,
        workers=0,
        batch_size=BATCH,
        optimizer="sgd",
        sgd_momentum=MOMENTUM,
        eval_every="epoch",
        data__noise="none",
        data__train_subset=job.args.train,
        data__test_subset=job.args.test,
        data__crop_padding=PADDING,
        model__name=name if name != REFERENCE else "preact_resnet18",
        model__width=job.args.width,
        model__zero_init_last=option == "zero_init_last",
        baseline__epochs=job.args.epochs,
        baseline__lr=LR,
        baseline__weight_decay=WEIGHT_DECAY,
    )


def run_job(job: Job) -> Outcome:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="network-speed-") as tmp:
        os.environ["NOISYLAB_CACHE"] = os.path.join(tmp, "cache")
        cfg = _config(job)
        if job.side == "engine":
            return _engine(job, cfg, tmp)
        return _bare(job, cfg)


def _engine(job: Job, cfg: Any, tmp: str) -> Outcome:
    import json

    from noisylab.api import run

    record = run(cfg, storage=tmp, name="run")
    history = [h for h in json.loads(record["history_json"]) if "test_acc" in h]
    return Outcome(
        job.network,
        job.side,
        job.seed,
        {int(h["epoch"]): 100 * float(h["test_acc"]) for h in history},
        float(history[0]["train_loss"]),
        statistics.median(float(h["seconds"]) for h in history),
        _parameters(job, cfg),
    )


def _parameters(job: Job, cfg: Any) -> int:
    from noisylab.train.models import build_network, count_parameters

    if job.network == REFERENCE:
        return count_parameters(reference_preact18(job.args.width, 1, 10))
    net = build_network(cfg.model, num_classes=10, in_chans=1, image_size=28)
    return count_parameters(net.backbone) + count_parameters(net.head)


def _bare(job: Job, cfg: Any) -> Outcome:
    import torch
    import torch.nn.functional as F

    from noisylab.data.prepare import prepare_data
    from noisylab.train.models import build_network

    bundle = prepare_data(cfg)  # the same subset the engine trains on
    x_train = torch.from_numpy(bundle.train_images).float().div(255)  # (N, 1, 28, 28)
    y_train = torch.from_numpy(bundle.clean_labels)
    x_test = torch.from_numpy(bundle.test_images).float().div(255)
    y_test = torch.from_numpy(bundle.test_labels)
    mean, std = x_train.mean(), x_train.std()
    torch.manual_seed(job.seed)
    if job.network == REFERENCE:
        net = reference_preact18(job.args.width, 1, 10)
    else:
        net = build_network(cfg.model, num_classes=10, in_chans=1, image_size=28)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(job.seed)
    side = x_train.shape[-1]
    accs, seconds, first_loss = {}, [], float("nan")
    for epoch in range(1, job.args.epochs + 1):
        net.train()
        start, total, count = time.perf_counter(), 0.0, 0
        for idx in torch.randperm(len(y_train), generator=gen).split(BATCH):
            padded = F.pad(x_train[idx], (PADDING,) * 4, mode="reflect")  # (B, 1, 36, 36)
            dy, dx = torch.randint(0, 2 * PADDING + 1, (2, len(idx)), generator=gen)
            offsets = zip(padded, dy.tolist(), dx.tolist(), strict=True)
            crops = torch.stack([p[:, a : a + side, b : b + side] for p, a, b in offsets])  # (B, 1, 28, 28)
            flip = torch.rand(len(idx), generator=gen) < 0.5
            crops = torch.where(flip.view(-1, 1, 1, 1), crops.flip(-1), crops)
            loss = F.cross_entropy(net((crops - mean) / std), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        seconds.append(time.perf_counter() - start)
        if epoch == 1:
            first_loss = total / count
        net.eval()
        with torch.no_grad():
            preds = torch.cat([net((xb - mean) / std).argmax(1) for xb in x_test.split(500)])
        accs[epoch] = 100 * float((preds == y_test).float().mean())
    return Outcome(
        job.network, job.side, job.seed, accs, first_loss, statistics.median(seconds), _parameters(job, cfg)
    )


# ---- the table ----------------------------------------------------------------------------------


Medians = dict[tuple[str, str], dict[int, float]]  # (network, side) → epoch → median accuracy %


def table(outcomes: list[Outcome], args: argparse.Namespace) -> tuple[str, Medians]:
    epochs = [e for e in REPORTED_EPOCHS if e <= args.epochs]
    if args.epochs not in epochs:
        epochs.append(args.epochs)
    medians: Medians = {}
    lines = [
        "| network | loop | parameters | "
        + " | ".join(f"epoch {e}" for e in epochs)
        + " | epoch-1 loss | s / epoch | per seed at the last epoch |",
        "|---|---|---|" + "---|" * len(epochs) + "---|---|---|",
    ]
    for network in args.networks:
        for side in ("bare", "engine"):
            rows = [o for o in outcomes if o.network == network and o.side == side]
            if not rows:
                continue
            med = {e: statistics.median(o.test_acc[e] for o in rows) for e in epochs}
            medians[(network, side)] = med
            last = ", ".join(f"{o.test_acc[args.epochs]:.1f}" for o in sorted(rows, key=lambda o: o.seed))
            lines.append(
                f"| {network} | {side} | {rows[0].parameters:,} | "
                + " | ".join(f"{med[e]:.1f}" for e in epochs)
                + f" | {statistics.median(o.first_loss for o in rows):.2f}"
                + f" | {statistics.median(o.seconds_per_epoch for o in rows):.1f} | {last} |"
            )
    return "\n".join(lines), medians


def checks(medians: Medians, args: argparse.Namespace) -> list[str]:
    from noisylab.config.run import ModelConfig

    default = ModelConfig().name
    last = args.epochs
    out = []
    ref = medians.get((REFERENCE, "bare"))
    for side in ("bare", "engine"):
        mine = medians.get((default, side))
        if ref and mine:
            gap = mine[last] - ref[last]
            ok = "ok" if abs(gap) <= TOLERANCE or gap > 0 else "FAILS"
            what = f"default network ({default}, {side}) − reference (bare)"
            out.append(f"{what} at epoch {last}: {gap:+.1f} points [{ok}]")
    for network in args.networks:
        bare, engine = medians.get((network, "bare")), medians.get((network, "engine"))
        if bare and engine:
            gap = engine[last] - bare[last]
            ok = "ok" if abs(gap) <= TOLERANCE else "FAILS"
            out.append(f"{network}: engine − bare at epoch {last}: {gap:+.1f} points [{ok}]")
    return out


# ---- one job's outcome on disk: a rerun with the same --workdir and settings skips it --------------

SHAPING = ("epochs", "width", "train", "test")  # the arguments that shape a job's numbers


def _outcome_path(workdir: Path, job: Job) -> Path:
    return workdir / f"{job.network}-{job.side}-seed{job.seed}.json"


def save_outcome(workdir: Path, job: Job, outcome: Outcome) -> None:
    settings = {name: getattr(job.args, name) for name in SHAPING}
    partial = _outcome_path(workdir, job).with_suffix(".partial")
    partial.write_text(json.dumps({"settings": settings, "outcome": dataclasses.asdict(outcome)}))
    partial.replace(_outcome_path(workdir, job))  # never half a file to trust


def load_outcome(workdir: Path, job: Job) -> Outcome | None:
    """The job's saved outcome when it was measured with these settings, else None."""
    try:
        body = json.loads(_outcome_path(workdir, job).read_text())
    except (OSError, ValueError):
        return None
    if body.get("settings") != {name: getattr(job.args, name) for name in SHAPING}:
        return None
    o = body["outcome"]
    return Outcome(**(o | {"test_acc": {int(e): float(a) for e, a in o["test_acc"].items()}}))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2, help="processes at once, one torch thread each")
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    p.add_argument("--workdir", type=Path, default=None, help="keep each job's outcome; a rerun skips them")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.epochs < 1 or args.width < 1 or args.jobs < 1 or args.train < 10 or args.test < 10:
        print("error: --epochs, --width and --jobs ≥ 1, --train and --test ≥ 10", file=sys.stderr)
        return 2
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    jobs = [
        Job(network, side, seed, args)
        for seed in args.seeds
        for network in args.networks
        for side in ("bare", "engine")
        if not (network == REFERENCE and side == "engine")  # the reference exists only as a bare module
    ]
    started = time.perf_counter()
    saved = [load_outcome(args.workdir, job) if args.workdir else None for job in jobs]
    todo = [job for job, outcome in zip(jobs, saved, strict=True) if outcome is None]
    outcomes = [outcome for outcome in saved if outcome is not None]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for job, outcome in zip(todo, pool.map(run_job, todo), strict=True):
            outcomes.append(outcome)
            if args.workdir:
                save_outcome(args.workdir, job, outcome)
            accs = " ".join(f"{outcome.test_acc[e]:.1f}" for e in sorted(outcome.test_acc))
            print(
                f"[{len(outcomes)}/{len(jobs)}] {job.network} {job.side} seed {job.seed}: {accs}",
                file=sys.stderr,
                flush=True,
            )
    text, medians = table(outcomes, args)
    print(
        f"clean Fashion-MNIST, {args.train:,} training / {args.test:,} test images (class-balanced), "
        f"width {args.width}, SGD lr {LR} momentum {MOMENTUM} weight decay {WEIGHT_DECAY}, batch {BATCH}, "
        f"reflect-pad-{PADDING} crop + flip; median over seeds {args.seeds} of test accuracy % after each "
        f"epoch; {args.jobs} jobs at once, one thread each; {time.perf_counter() - started:.0f} s in all"
    )
    print()
    print(text)
    print()
    for line in checks(medians, args):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
