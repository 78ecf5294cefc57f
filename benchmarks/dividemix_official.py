"""Seconds per DivideMix epoch: the official code (LiJunnan1992/DivideMix) against `--method dividemix`.

Both train on the same synthetic set written in CIFAR-10's python-pickle layout (1,000 training and
200 test images of 32×32×3 uint8, 10 classes, each class a blocky colour pattern shifted and noised per
image), with the same noisy labels, the same ResNet-18 width, the same samples per optimiser step, the
same optimiser and the same numbers of warm-up and divided epochs. The table gives every epoch's
seconds on each side, the medians of the warm-up and of the divided epochs, and the ratio
noisylab / official of the divided medians (below 1: noisylab is faster).

    .venv/bin/python benchmarks/dividemix_official.py --official PATH [--width 16] [--batch 64]
        [--warmup 5] [--divided 3] [--noise 0.5] [--images 1000] [--test-images 200] [--seed 0]
        [--official-workers N] [--workdir DIR]

PATH is a checkout of https://github.com/LiJunnan1992/DivideMix (`git clone` it anywhere). Nothing of
it is part of this repository and nothing in it is written: the script reads its three files
(Train_cifar.py, dataloader_cifar.py, PreResNet.py), patches what a CPU and a small data set need in
memory, and runs Train_cifar.py's own loop in this process (it needs scikit-learn, already a dev
dependency here). A missing PATH, or one that is not that code, exits with status 2 and one line.

What is patched in the official code, in memory only:
- CPU: `torch.cuda.set_device`, `Tensor.cuda` and `Module.cuda` become no-ops.
- PyTorch ≥ 2: DataLoader iterators lost `.next()`, which its `train` calls; it is given back.
- torchnet (for one AUC written to its stats log) is not installed here: a stand-in `AUCMeter`.
- Data size: it hard-codes CIFAR's 50,000 / 10,000 images (array shapes, the loss buffer of
  `eval_train`); the source text of Train_cifar.py and dataloader_cifar.py is compiled with every
  such literal replaced by this set's sizes, and with `warm_up = 10` replaced by `--warmup` (default
  5, so that the default run takes about ten minutes of a 2-core machine).
- Width: PreResNet sees a stand-in for `torch.nn` whose Conv2d, BatchNorm2d and Linear scale every
  channel count by width / 64 (the 3 image channels and the class count stay), so its PreAct
  ResNet-18 has stages of w, 2w, 4w, 8w channels, as noisylab's ResNet-18 at `model.width` = w.
- Noise: the official script draws symmetric noise itself only when its noise file is absent; the
  script writes that file (`<data>/<r>_sym.json`) with the labels noisylab drew for `sym:r`, so both
  train on identical noisy labels (its own draw could also "flip" a label to the true class).
- Its DataLoaders keep its 5 worker processes unless `--official-workers` says otherwise.

Matching. Official `--batch_size B` trains each network on B labelled plus B unlabelled samples per
step and warms up with batches of 2B; noisylab's DivideMix takes `batch_size` samples per step
(labelled and unlabelled mixed as they come) and warms up on the same batches, so noisylab runs at
batch_size = 2B: 2B samples per optimiser step in every phase on both sides. Both use SGD, lr 0.02,
momentum 0.9, weight decay 5e-4, λ_u = 25, T = 0.5, α = 4, p_threshold = 0.5 (the official defaults).

Alternation. One process, one side at a time: Train_cifar.py runs in the main thread; noisylab's
schedule (`noisylab.runtime.run_schedule`, in-process as `--workers 0` runs it, checkpoint per epoch
included) runs in a second thread that waits for its turn. The official loop asks its loader for the
test set at the start of every epoch (`loader.run('test')`); that call, wrapped, marks the end of the
previous official epoch and hands the turn to noisylab for one epoch; noisylab's `on_step` callback
marks the end of its epoch and hands the turn back. The order is official epoch 1, noisylab epoch 1,
official epoch 2, ... so slow phases of the shared machine hit both alike. An epoch's seconds are from
its side getting the turn to its giving it back: the official's include building its DataLoaders and
its test pass, noisylab's its division scan, its test pass and its checkpoint. Set-up (data, networks)
is outside every epoch. The two share the process's global random generators, so neither trains
bit for bit as it would alone; only time is measured (the final test accuracies are a sanity check).

Not matched (and cannot be, without changing either method): the block design (PreAct vs timm's
post-activation BasicBlock, same widths and depth); the amount of work in a divided epoch (the
official passes over its labelled set, cycling the unlabelled one beside it, so its cost follows the
labelled share, printed per epoch; noisylab passes once over all samples, see trainables/dividemix.py);
data loading (PIL images through DataLoader workers vs uint8 tensors augmented in-process).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib.util
import json
import os
import pickle
import re
import statistics
import sys
import tempfile
import threading
import time
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from noisylab.config import RunConfig
    from noisylab.prepare import DataBundle

OFFICIAL_URL = "https://github.com/LiJunnan1992/DivideMix"
OFFICIAL_FILES = ("Train_cifar.py", "dataloader_cifar.py", "PreResNet.py")
OFFICIAL_WIDTH = 64  # channels of the official PreAct ResNet-18's first stage
CIFAR_TRAIN, CIFAR_TEST = 50000, 10000  # the sizes the official code hard-codes
OFFICIAL_WARMUP = 10  # its warm-up epochs on CIFAR-10
NUM_CLASSES = 10
BATCHES = 5  # data_batch_1..5, as CIFAR-10
OFFICIAL_MODULES = ("PreResNet", "dataloader_cifar")


class Refused(Exception):
    """A reason to stop before training: printed as one line, exit status 2."""


# ---- the synthetic set ---------------------------------------------------------------------------


def synthetic_set(train: int, test: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [train + test, 3, 32, 32], labels int64 [train + test]): the first `train` rows
    are the training set. Each class is a random 4×4 colour pattern blown up to 32×32 blocks; an image
    is its class's pattern rolled by up to 4 pixels each way plus Gaussian noise (σ 48 grey levels).
    Labels are balanced within each part (i mod 10, shuffled)."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(NUM_CLASSES, 3, 4, 4)).repeat(8, axis=2).repeat(8, axis=3)
    labels = np.concatenate([rng.permutation(np.arange(n) % NUM_CLASSES) for n in (train, test)])
    shifts = rng.integers(-4, 5, size=(len(labels), 2))
    noise = rng.normal(0.0, 48.0, size=(len(labels), 3, 32, 32))
    images = np.stack(
        [
            np.roll(patterns[y], (int(dy), int(dx)), axis=(1, 2))
            for y, (dy, dx) in zip(labels, shifts, strict=True)
        ]
    )
    return np.clip(images + noise, 0, 255).round().astype(np.uint8), labels.astype(np.int64)


def write_synthetic_cifar(root: Path, *, train: int, test: int, seed: int) -> Path:
    """`synthetic_set` in CIFAR-10's python layout under root/cifar-10-batches-py (data_batch_1..5
    holding the training rows in order, test_batch, batches.meta); returns that folder. Pickle
    protocol 2 and rows of 3,072 channel-major bytes, as the genuine files."""
    images, labels = synthetic_set(train, test, seed=seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    flat = images.reshape(len(images), -1)
    parts = np.array_split(np.arange(train), BATCHES)
    files = {f"data_batch_{i + 1}": part for i, part in enumerate(parts)}
    files["test_batch"] = np.arange(train, train + test)
    for name, rows in files.items():
        batch = {"batch_label": name, "data": flat[rows], "labels": [int(y) for y in labels[rows]]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": [f"pattern_{c}" for c in range(NUM_CLASSES)], "num_vis": flat.shape[1]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


# ---- reading and patching the official code ------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Replace every match of `pattern` in one official file; Refused when there is none."""

    file: str
    pattern: str
    replacement: str
    what: str  # what the pattern is, for the refusal


def size_rules(train: int, test: int, warmup: int) -> list[Rule]:
    return [
        Rule("dataloader_cifar.py", rf"\b{CIFAR_TRAIN}\b", str(train), "CIFAR-10's training-set size"),
        Rule("dataloader_cifar.py", rf"\b{CIFAR_TEST}\b", str(test), "CIFAR-10's test-set size"),
        Rule("Train_cifar.py", rf"torch\.zeros\({CIFAR_TRAIN}\)", f"torch.zeros({train})", "the loss buffer"),
        Rule("Train_cifar.py", rf"\bwarm_up\s*=\s*{OFFICIAL_WARMUP}\b", f"warm_up = {warmup}", "its warm-up"),
    ]


def patched_sources(folder: Path, rules: list[Rule]) -> dict[str, str]:
    """The three official files' text with `rules` applied (line numbers unchanged). Refused when a
    file is missing or a rule finds nothing: then PATH is not the checkout this script knows."""
    sources: dict[str, str] = {}
    for name in OFFICIAL_FILES:
        path = folder / name
        if not path.is_file():
            raise Refused(f"{folder} does not look like the DivideMix checkout ({OFFICIAL_URL}): no {name}")
        sources[name] = path.read_text(encoding="utf-8", errors="replace")
    for rule in rules:
        text, count = re.subn(rule.pattern, rule.replacement, sources[rule.file])
        if count == 0:
            raise Refused(
                f"{folder / rule.file} is not the DivideMix code this script knows ({OFFICIAL_URL}): "
                f"{rule.what} ({rule.pattern!r}) not found"
            )
        sources[rule.file] = text
    for marker in ("class cifar_dataloader", "def eval_train", "def create_model"):
        if not any(marker in text for text in sources.values()):
            raise Refused(
                f"{folder} does not look like the DivideMix checkout ({OFFICIAL_URL}): no '{marker}'"
            )
    return sources


class NarrowedNN(types.SimpleNamespace):
    """Stands in for `torch.nn` inside the official PreResNet module: Conv2d, BatchNorm2d and Linear
    get every channel count c scaled to c·width/64, except the 3 image channels and Linear's output
    (the classes); everything else is torch.nn's own."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def channels(self, c: int) -> int:
        return c if c == 3 else c * self.width // OFFICIAL_WIDTH

    def Conv2d(self, cin: int, cout: int, *args: Any, **kwargs: Any) -> Any:
        from torch import nn

        return nn.Conv2d(self.channels(cin), self.channels(cout), *args, **kwargs)

    def BatchNorm2d(self, c: int, *args: Any, **kwargs: Any) -> Any:
        from torch import nn

        return nn.BatchNorm2d(self.channels(c), *args, **kwargs)

    def Linear(self, fin: int, fout: int, *args: Any, **kwargs: Any) -> Any:
        from torch import nn

        return nn.Linear(self.channels(fin), fout, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        from torch import nn

        return getattr(nn, name)


class AUCMeter:
    """Stand-in for torchnet.meter.AUCMeter (reset / add / value → (auc, tpr, fpr)): the official
    loader only writes its AUC to a log. AUC by ranks (ties averaged); nan without both classes."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.scores: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def add(self, output: Any, target: Any) -> None:
        self.scores.append(np.asarray(output, dtype=np.float64).ravel())
        self.targets.append(np.asarray(target).ravel().astype(bool))

    def value(self) -> tuple[float, np.ndarray, np.ndarray]:
        from scipy.stats import rankdata

        s, t = np.concatenate(self.scores), np.concatenate(self.targets)
        pos, neg = int(t.sum()), int((~t).sum())
        if pos == 0 or neg == 0:
            return float("nan"), np.zeros(0), np.zeros(0)
        ranks = rankdata(s)
        auc = (ranks[t].sum() - pos * (pos + 1) / 2) / (pos * neg)
        return float(auc), np.zeros(0), np.zeros(0)


def load_module(name: str, path: Path, source: str) -> types.ModuleType:
    """Compile `source` as module `name` (registered in sys.modules, file name `path` for tracebacks)."""
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


@contextlib.contextmanager
def cpu_patches() -> Iterator[None]:
    """CUDA calls as no-ops, DataLoader iterators with `.next()`, torchnet's AUCMeter when missing;
    all undone on exit."""
    import torch
    from torch import nn
    from torch.utils.data import dataloader

    saved: list[tuple[Any, str, Any]] = []

    def put(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, owner.__dict__.get(name, _ABSENT)))
        setattr(owner, name, value)

    put(torch.cuda, "set_device", lambda *a, **k: None)
    put(torch.Tensor, "cuda", lambda self, *a, **k: self)
    put(nn.Module, "cuda", lambda self, *a, **k: self)
    put(dataloader._BaseDataLoaderIter, "next", dataloader._BaseDataLoaderIter.__next__)
    stubbed = importlib.util.find_spec("torchnet") is None
    if stubbed:
        meter = types.ModuleType("torchnet.meter")
        meter.AUCMeter = AUCMeter  # type: ignore[attr-defined]
        package = types.ModuleType("torchnet")
        package.meter = meter  # type: ignore[attr-defined]
        sys.modules["torchnet"], sys.modules["torchnet.meter"] = package, meter
    try:
        yield
    finally:
        for owner, name, old in reversed(saved):
            if old is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, old)
        if stubbed:
            sys.modules.pop("torchnet", None)
            sys.modules.pop("torchnet.meter", None)


_ABSENT = object()


# ---- taking turns ---------------------------------------------------------------------------------


@dataclass
class Epoch:
    phase: str  # "warm-up" or "divided"
    seconds: float
    labelled: float | None = None  # mean labelled-set size over the two networks (divided epochs)


@dataclass
class Side:
    epochs: list[Epoch] = field(default_factory=list)
    test_acc: float | None = None
    parameters: int = 0  # per network


class Turns:
    """Exactly one side computes at a time: the main thread (official) hands noisylab's thread one
    epoch and waits for it to hand back."""

    def __init__(self) -> None:
        self._noisylab = threading.Semaphore(0)
        self._official = threading.Semaphore(0)
        self.error: BaseException | None = None

    def run_noisylab_epoch(self) -> None:
        """Main thread: let noisylab run one epoch, return when it has."""
        self._noisylab.release()
        self._official.acquire()
        if self.error is not None:
            raise self.error

    def wait(self) -> None:
        """noisylab's thread: block until it is given an epoch."""
        self._noisylab.acquire()

    def hand_back(self) -> None:
        self._official.release()


def noisylab_config(args: argparse.Namespace, root: Path) -> RunConfig:
    from noisylab.api import load_config

    return load_config(
        profile="gpu",  # no subset, no shrinking: every size below is set here
        method="dividemix",
        seed=args.seed,
        batch_size=2 * args.batch,
        optimizer="sgd",
        eval_every="epoch",
        workers=0,
        data__dataset="cifar10",
        data__root=str(root),
        data__noise=f"sym:{args.noise}",
        model__width=args.width,
        baseline__epochs=args.warmup + args.divided,
        baseline__lr=0.02,
        baseline__weight_decay=5e-4,
        dividemix__warmup_epochs=args.warmup,
        dividemix__lambda_u=25.0,
    )


def start_noisylab(
    cfg: RunConfig, bundle: DataBundle, directory: Path, turns: Turns, side: Side
) -> threading.Thread:
    """Build noisylab's in-process run (as `--workers 0` does) and start its schedule in a thread that
    waits for its first turn; every epoch ends in `on_step`, which records it and hands the turn back."""
    from noisylab.engine import World
    from noisylab.models import count_parameters
    from noisylab.runtime import LocalReporter, run_schedule
    from noisylab.trainables import get_method
    from noisylab.worker import WorkerSpec, build_context

    spec = WorkerSpec(cfg=cfg, data=bundle, fingerprint=cfg.fingerprint(), progress=False, epoch_lines=False)
    ctx = build_context(spec, bundle, World(), in_ray=False)
    member = ctx.net.members[0]
    side.parameters = count_parameters(member.backbone) + count_parameters(member.head)
    method = get_method(cfg.method)
    last = len(method.schedule(cfg)) - 1
    started = [0.0]

    def on_step(index: int, step: Any, metrics: dict[str, Any]) -> None:
        seconds = time.perf_counter() - started[0]
        sizes = [float(metrics[k]) for k in ("division_net1_size", "division_net2_size") if k in metrics]
        labelled = statistics.mean(sizes) if sizes else None
        phase = "warm-up" if step.phase == "warmup" else "divided"
        side.epochs.append(Epoch(phase, seconds, labelled))
        side.test_acc = metrics.get("test_acc")
        turns.hand_back()
        if index < last:
            turns.wait()
            started[0] = time.perf_counter()

    def body() -> None:
        try:
            turns.wait()
            started[0] = time.perf_counter()
            run_schedule(
                method, ctx, LocalReporter(directory), fingerprint=cfg.fingerprint(), on_step=on_step
            )
        except BaseException as e:
            turns.error = e
            turns.hand_back()

    thread = threading.Thread(target=body, name="noisylab", daemon=True)
    thread.start()
    return thread


def run_official(
    sources: dict[str, str],
    folder: Path,
    args: argparse.Namespace,
    data: Path,
    workdir: Path,
    turns: Turns,
    side: Side,
) -> None:
    """Train_cifar.py's own loop in this thread, its loader wrapped to time epochs and take turns."""
    preresnet = load_module("PreResNet", folder / "PreResNet.py", sources["PreResNet.py"])
    preresnet.nn = NarrowedNN(args.width)  # type: ignore[attr-defined]
    loaders = load_module("dataloader_cifar", folder / "dataloader_cifar.py", sources["dataloader_cifar.py"])
    clock: dict[str, Any] = {"start": None, "labelled": []}

    def boundary() -> None:
        """Start of an official epoch (and once after the last): close the previous one, then noisylab."""
        if clock["start"] is not None:
            seconds = time.perf_counter() - clock["start"]
            index = len(side.epochs)
            sizes = clock["labelled"]
            side.epochs.append(
                Epoch(
                    "warm-up" if index < args.warmup else "divided",
                    seconds,
                    statistics.mean(sizes) if sizes else None,
                )
            )
            turns.run_noisylab_epoch()
            print(f"epoch {index + 1}/{args.warmup + args.divided} done", file=sys.stderr, flush=True)
        clock["labelled"] = []
        clock["start"] = time.perf_counter()

    base = loaders.cifar_dataloader

    class Timed(base):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            if args.official_workers is not None:
                self.num_workers = args.official_workers

        def run(self, mode: str, *a: Any, **k: Any) -> Any:
            if mode == "test":  # the first thing of every epoch of Train_cifar.py's loop
                boundary()
            elif mode == "train":  # run('train', pred, prob): the division this network trains on
                pred = a[0] if a else k["pred"]
                clock["labelled"].append(float(np.sum(pred)))
            return super().run(mode, *a, **k)

    loaders.cifar_dataloader = Timed  # type: ignore[attr-defined]
    argv = ["Train_cifar.py", "--dataset", "cifar10", "--data_path", str(data)]
    argv += ["--batch_size", str(args.batch), "--num_epochs", str(args.warmup + args.divided - 1)]
    argv += ["--r", str(args.noise), "--noise_mode", "sym", "--seed", str(args.seed), "--lambda_u", "25"]
    (workdir / "checkpoint").mkdir(exist_ok=True)  # its logs go to ./checkpoint/
    script: dict[str, Any] = {"__name__": "__main__", "__file__": str(folder / "Train_cifar.py")}
    script["__builtins__"] = builtins
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    log = (workdir / "official.log").open("w")
    try:
        sys.argv = argv
        os.chdir(workdir)
        with contextlib.redirect_stdout(log):
            exec(compile(sources["Train_cifar.py"], str(folder / "Train_cifar.py"), "exec"), script)
        boundary()  # the last official epoch ends with the script
        net = script["net1"]
        side.parameters = sum(p.numel() for p in net.parameters())
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        log.close()
        for name in OFFICIAL_MODULES:
            sys.modules.pop(name, None)
    accuracies = (workdir / "checkpoint" / f"cifar10_{args.noise:.1f}_sym_acc.txt").read_text().split()
    if accuracies and accuracies[-1].startswith("Accuracy:"):
        side.test_acc = float(accuracies[-1].split(":")[1]) / 100


# ---- the table ------------------------------------------------------------------------------------


def median_of(side: Side, phase: str, skip_first: int = 0) -> float:
    seconds = [e.seconds for e in side.epochs if e.phase == phase][skip_first:]
    return statistics.median(seconds) if seconds else float("nan")


def table(official: Side, ours: Side, args: argparse.Namespace) -> str:
    """Markdown: one row per epoch, the medians, the ratio noisylab / official."""
    n = args.images

    def share(e: Epoch) -> str:
        return "-" if e.labelled is None else f"{100 * e.labelled / n:.0f} %"

    lines = [
        "| epoch | phase | official s | noisylab s | official labelled | noisylab labelled |",
        "|---|---|---|---|---|---|",
    ]
    for i, (o, m) in enumerate(zip(official.epochs, ours.epochs, strict=True)):
        lines.append(f"| {i + 1} | {o.phase} | {o.seconds:.2f} | {m.seconds:.2f} | {share(o)} | {share(m)} |")
    for phase, skip, label in (("warm-up", 1, "warm-up epochs 2+"), ("divided", 0, "divided epochs")):
        mo, mn = median_of(official, phase, skip), median_of(ours, phase, skip)
        lines.append(
            f"| median | {label} | {mo:.2f} | {mn:.2f} | ratio noisylab / official | **{mn / mo:.2f}** |"
        )
    return "\n".join(lines)


def header(official: Side, ours: Side, args: argparse.Namespace) -> str:
    import torch

    workers = "its 5" if args.official_workers is None else str(args.official_workers)
    acc = [f"{100 * s.test_acc:.1f} %" if s.test_acc is not None else "-" for s in (official, ours)]
    return "\n".join(
        [
            f"DivideMix, official code vs noisylab: {args.images:,} synthetic 32×32 training images in "
            f"CIFAR-10's pickle layout, {args.test_images} test, "
            f"symmetric noise {args.noise:g} (the same labels)",
            f"ResNet-18 at width {args.width} (official PreAct, narrowed from 64: {official.parameters:,} "
            f"parameters per network; noisylab timm, CIFAR stem: {ours.parameters:,})",
            f"{2 * args.batch} samples per optimiser step (official --batch_size {args.batch}: {args.batch} "
            f"labelled + {args.batch} unlabelled; noisylab batch_size {2 * args.batch}), SGD lr 0.02, "
            f"{args.warmup} warm-up + {args.divided} divided epochs each, alternating",
            f"torch threads {torch.get_num_threads()}, official DataLoader workers {workers}; "
            f"final test accuracy official {acc[0]}, noisylab {acc[1]}",
        ]
    )


# ---- command line ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, help=f"a checkout of {OFFICIAL_URL}")
    p.add_argument("--width", type=int, default=16, help="ResNet-18 width of both (official: 64)")
    p.add_argument("--batch", type=int, default=64, help="official --batch_size; noisylab gets twice it")
    p.add_argument("--warmup", type=int, default=5, help="warm-up epochs (official: 10 on CIFAR-10)")
    p.add_argument("--divided", type=int, default=3, help="divided epochs after warm-up (≥ 3)")
    p.add_argument("--noise", type=float, default=0.5, help="symmetric noise rate")
    p.add_argument("--images", type=int, default=1000, help="training images")
    p.add_argument("--test-images", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--official-workers", type=int, default=None, help="DataLoader workers (official: 5)")
    p.add_argument("--workdir", type=Path, default=None, help="keep data, logs, checkpoints here")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> Path:
    """The checkout's folder, or Refused with the fix."""
    if args.official is None:
        raise Refused(f"--official PATH is required: a checkout of {OFFICIAL_URL} (git clone it anywhere)")
    folder = args.official.expanduser().resolve()
    if not folder.is_dir():
        raise Refused(f"--official {args.official}: no such folder; pass a checkout of {OFFICIAL_URL}")
    if args.divided < 3:
        raise Refused(f"--divided must be ≥ 3 (a median of at least 3 epochs), got {args.divided}")
    if args.warmup < 1:
        raise Refused(f"--warmup must be ≥ 1, got {args.warmup}")
    if args.width < 1 or args.batch < 2 or args.images < 10 * BATCHES or args.test_images < NUM_CLASSES:
        raise Refused("--width ≥ 1, --batch ≥ 2, --images ≥ 50 and --test-images ≥ 10, please")
    if not 0.0 <= args.noise < 1.0:
        raise Refused(f"--noise must lie in [0, 1), got {args.noise}")
    return folder


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        folder = check_args(args)
        sources = patched_sources(folder, size_rules(args.images, args.test_images, args.warmup))
        if importlib.util.find_spec("sklearn") is None:
            raise Refused("the official code needs scikit-learn: pip install scikit-learn")
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dividemix-official-")))
        else:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        return benchmark(args, folder, sources, workdir)
    return 0


def benchmark(args: argparse.Namespace, folder: Path, sources: dict[str, str], workdir: Path) -> int:
    os.environ["NOISYLAB_CACHE"] = str(workdir / "cache")  # the noise cache: nothing in the user's home
    from noisylab.prepare import prepare_data

    data = write_synthetic_cifar(workdir / "data", train=args.images, test=args.test_images, seed=args.seed)
    cfg = noisylab_config(args, workdir / "data")
    bundle = prepare_data(cfg)
    # The official script reads its noisy labels from this file when it exists (else it draws its own).
    (data / f"{args.noise:.1f}_sym.json").write_text(json.dumps([int(y) for y in bundle.noisy_labels]))
    # torch warns at every official DataLoader whose workers outnumber the cores; the header says how many.
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
    run_dir = workdir / "noisylab-run"
    run_dir.mkdir(exist_ok=True)
    turns, official, ours = Turns(), Side(), Side()
    thread = start_noisylab(cfg, bundle, run_dir, turns, ours)
    with cpu_patches():
        run_official(sources, folder, args, data, workdir, turns, official)
    thread.join()
    if turns.error is not None:
        raise turns.error
    print(header(official, ours, args))
    print()
    print(table(official, ours, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
