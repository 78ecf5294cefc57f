"""DivideMix parity: the official code (LiJunnan1992/DivideMix) against `--method dividemix`, for accuracy
and time, on real images.

Both train on the same set written in CIFAR-10's python-pickle layout, so the official `Train_cifar.py`
reads it unchanged: by default class-balanced Fashion-MNIST subsets (1,000 training, 1,000 test images),
each image padded with 2 black pixels to 32 × 32 and repeated into three identical channels
(`--data synthetic`: the older synthetic colour patterns). Both train on the same noisy labels: noisylab
draws them (`--noise-kind idn`, Xia et al. 2020's generator, rate `--noise`) and writes them into the
official noise file, which the official loader then reads instead of drawing its own. Both train the
same network, DivideMix's PreAct ResNet-18 at width `--width` (16 by default, a CPU width), with the same
optimiser (SGD, lr 0.02, momentum 0.9, weight decay 5e-4), the same samples per step, the same
augmentation (`--crop 0`: horizontal flips only, the `cpu-memorise` profile's; `--crop 4`: the
official's own 4-pixel crop as well) and the same epochs (`--warmup` CE epochs, then `--divided`).

For every seed the script prints each side's final and best test accuracy, the epoch at which each side
first reaches the official code's final accuracy and the wall time it took to get there, and plain CE
(`noisylab run --method ce`, the same settings and epochs) beside them: its final and best accuracy and
its last training loss on the noisy labels, to show the budget is one where CE fits the noise. Then the
medians over seeds and the two targets: noisylab's final accuracy within 2 points of the official's,
and noisylab's wall time to the official's final accuracy at most 1/1.5 of the official's.

    .venv/bin/python benchmarks/dividemix_official.py --official PATH [--seeds 0 1 2] [--width 16]
        [--batch 64] [--warmup 5] [--divided 25] [--noise 0.5] [--noise-kind idn] [--crop 0]
        [--images 1000] [--test-images 1000] [--data fashion-mnist] [--official-workers N]
        [--per-epoch] [--workdir DIR]

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
  such literal replaced by this set's sizes, and with `warm_up = 10` replaced by `--warmup`.
- Width: PreResNet sees a stand-in for `torch.nn` whose Conv2d, BatchNorm2d and Linear scale every
  channel count by width / 64 (the 3 image channels and the class count stay), so its PreAct
  ResNet-18 has stages of w, 2w, 4w, 8w channels, as noisylab's `preact_resnet18` at `model.width` = w
  (the same parameter count, printed).
- Augmentation, with `--crop 0` only: its training transform's `RandomCrop(32, padding=4)` is removed,
  leaving its flip, as noisylab's `data.crop_padding=0`.
- Noise: the official script draws symmetric noise itself only when its noise file is absent; the
  script writes that file (`<data>/<r>_sym.json`) with the labels noisylab drew, so both train on
  identical noisy labels (`sym` is only the file's name: its loader uses the labels as they are).
- Its DataLoaders keep its 5 worker processes unless `--official-workers` says otherwise.

Matching. Official `--batch_size B` trains each network on B labelled plus B unlabelled samples per
step and warms up with batches of 2B; noisylab's DivideMix takes `batch_size` samples per step
(labelled and unlabelled mixed as they come) and warms up on the same batches, so noisylab runs at
batch_size = 2B: 2B samples per optimiser step in every phase on both sides. Both use λ_u = 25, T = 0.5,
α = 4, p_threshold = 0.5 (the official defaults).

Alternation. One process, one side at a time: Train_cifar.py runs in the main thread; noisylab's
schedule (`noisylab.train.runtime.run_schedule`, in-process as `--workers 0` runs it, checkpoint per epoch
included) runs in a second thread that waits for its turn. The official loop asks its loader for the
test set at the start of every epoch (`loader.run('test')`); that call, wrapped, marks the end of the
previous official epoch and hands the turn to noisylab for one epoch; noisylab's `on_step` callback
marks the end of its epoch and hands the turn back. The order is official epoch 1, noisylab epoch 1,
official epoch 2, ... so slow phases of the shared machine hit both alike. An epoch's seconds are from
its side getting the turn to its giving it back: the official's include building its DataLoaders and
its test pass, noisylab's its division scan, its test pass and its checkpoint. Set-up (data, networks)
is outside every epoch. The two share the process's global random generators, so neither trains
bit for bit as it would alone.

Not matched (and cannot be, without changing either method): the amount of work in a divided epoch (the
official passes over its labelled set, cycling the unlabelled one beside it, so its cost follows the
labelled share, printed per epoch; noisylab passes once over all samples, see trainables/dividemix.py);
data loading (PIL images through DataLoader workers vs uint8 tensors augmented in-process); the
crop's padding (zeros there, reflection here; `--crop 4` only); the input normalisation (CIFAR-10's
constants there, the training set's own statistics here; the BatchNorm after the stem absorbs it);
the optimiser's momentum across the end of warm-up (kept there, a fresh optimiser here).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import dataclasses
import importlib.util
import json
import os
import pickle
import re
import shutil
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
    from noisylab.config.run import RunConfig
    from noisylab.data.prepare import DataBundle

OFFICIAL_URL = "https://github.com/LiJunnan1992/DivideMix"
OFFICIAL_FILES = ("Train_cifar.py", "dataloader_cifar.py", "PreResNet.py")
OFFICIAL_LAMBDA_U = 25.0  # its --lambda_u default
OFFICIAL_WIDTH = 64  # channels of the official PreAct ResNet-18's first stage
CIFAR_TRAIN, CIFAR_TEST = 50000, 10000  # the sizes the official code hard-codes
OFFICIAL_WARMUP = 10  # its warm-up epochs on CIFAR-10
NUM_CLASSES = 10
BATCHES = 5  # data_batch_1..5, as CIFAR-10
OFFICIAL_MODULES = ("PreResNet", "dataloader_cifar")
SIDE = 32  # pixels: CIFAR's images, which the official code reshapes to
ACC_TOLERANCE = 2.0  # points: noisylab's final accuracy within this of the official's (median of seeds)
TIME_TARGET = 1 / 1.5  # noisylab's wall time to the official's final accuracy, as a share of the official's


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


def fashion_mnist_set(train: int, test: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images uint8 [train + test, 3, 32, 32], labels int64 [train + test], class names): class-balanced
    Fashion-MNIST subsets (noisylab's `balanced_subset` with the seeds a run's `data.subset_seed` 0 uses:
    0 for the training part, 1 for the test part), each 28 × 28 image padded with 2 black pixels on
    every side and repeated into 3 identical channels. The first `train` rows are the training set."""
    from noisylab.data import load_dataset
    from noisylab.data.prepare import balanced_subset

    ds = load_dataset("fashion-mnist")
    parts, labels = [], []
    for split, n, seed in ((ds.train, train, 0), (ds.test, test, 1)):
        y = split.labels.numpy().astype(np.int64)
        idx = balanced_subset(y, n, seed=seed)
        x = split.images.numpy()[idx]  # (n, 1, 28, 28)
        pad = (SIDE - x.shape[-1]) // 2
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (n, 1, 32, 32), black border
        parts.append(np.repeat(x, 3, axis=1))  # (n, 3, 32, 32): three identical channels
        labels.append(y[idx])
    return np.concatenate(parts), np.concatenate(labels), tuple(ds.train.class_names)


def write_cifar(
    root: Path, images: np.ndarray, labels: np.ndarray, *, train: int, class_names: tuple[str, ...]
) -> Path:
    """images uint8 [N, 3, 32, 32] and labels [N] in CIFAR-10's python layout under
    root/cifar-10-batches-py (data_batch_1..5 holding the first `train` rows in order, test_batch the
    rest, batches.meta); returns that folder. Pickle protocol 2 and rows of 3,072 channel-major bytes,
    as the genuine files."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    flat = images.reshape(len(images), -1)
    parts = np.array_split(np.arange(train), BATCHES)
    files = {f"data_batch_{i + 1}": part for i, part in enumerate(parts)}
    files["test_batch"] = np.arange(train, len(images))
    for name, rows in files.items():
        batch = {"batch_label": name, "data": flat[rows], "labels": [int(y) for y in labels[rows]]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": list(class_names), "num_vis": flat.shape[1]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_synthetic_cifar(root: Path, *, train: int, test: int, seed: int) -> Path:
    """`synthetic_set` in CIFAR-10's python layout (`write_cifar`)."""
    images, labels = synthetic_set(train, test, seed=seed)
    names = tuple(f"pattern_{c}" for c in range(NUM_CLASSES))
    return write_cifar(root, images, labels, train=train, class_names=names)


# ---- reading and patching the official code ------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Replace every match of `pattern` in one official file; Refused when there is none."""

    file: str
    pattern: str
    replacement: str
    what: str  # what the pattern is, for the refusal


def crop_rules() -> list[Rule]:
    """Flips only (`--crop 0`): the official training transform without its 4-pixel random crop."""
    return [
        Rule(
            "dataloader_cifar.py",
            r"transforms\.RandomCrop\(32,\s*padding=4\),\s*",
            "",
            "its training transform's RandomCrop(32, padding=4)",
        )
    ]


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
    test_acc: float | None = None  # % after the epoch


@dataclass
class Side:
    epochs: list[Epoch] = field(default_factory=list)
    parameters: int = 0  # per network

    @property
    def final(self) -> float:
        acc = self.epochs[-1].test_acc if self.epochs else None
        return float("nan") if acc is None else acc

    def best(self) -> tuple[float, int]:
        """(the highest test accuracy %, its 1-based epoch)."""
        accs = [(e.test_acc, i + 1) for i, e in enumerate(self.epochs) if e.test_acc is not None]
        return max(accs, key=lambda t: t[0]) if accs else (float("nan"), 0)

    def reaches(self, target: float) -> tuple[int, float] | None:
        """(the first epoch whose test accuracy is ≥ target, the seconds of every epoch up to it), or
        None when no epoch gets there."""
        spent = 0.0
        for i, e in enumerate(self.epochs):
            spent += e.seconds
            if e.test_acc is not None and e.test_acc >= target:
                return i + 1, spent
        return None


@dataclass(frozen=True)
class CrossEntropy:
    """Plain CE on the same data, labels, network, optimiser and epochs: does it fit the noise here?"""

    final: float  # test accuracy %
    best: float
    best_epoch: int
    last_loss: float  # training loss on the noisy labels in the last epoch


@dataclass(frozen=True)
class SeedResult:
    seed: int
    official: Side
    ours: Side
    ce: CrossEntropy | None


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


def noisylab_config(args: argparse.Namespace, root: Path, seed: int, method: str = "dividemix") -> RunConfig:
    from noisylab.api import load_config

    return load_config(
        profile="gpu",  # no subset, no shrinking, no precision switch: every setting below is set here
        precision="fp32",
        method=method,
        seed=seed,
        batch_size=2 * args.batch,
        optimizer="sgd",
        sgd_momentum=0.9,
        eval_every="epoch",
        workers=0,
        data__dataset="cifar10",
        data__root=str(root),
        data__noise=f"{args.noise_kind}:{args.noise}",
        data__crop_padding=args.crop,
        model__name="preact_resnet18",
        model__width=args.width,
        model__channels_last=False,
        baseline__epochs=args.warmup + args.divided,
        baseline__lr=0.02,
        baseline__weight_decay=5e-4,
        dividemix__warmup_epochs=args.warmup,
        dividemix__lambda_u=OFFICIAL_LAMBDA_U,
    )


def start_noisylab(
    cfg: RunConfig, bundle: DataBundle, directory: Path, turns: Turns, side: Side
) -> threading.Thread:
    """Build noisylab's in-process run (as `--workers 0` does) and start its schedule in a thread that
    waits for its first turn; every epoch ends in `on_step`, which records it and hands the turn back."""
    from noisylab.train.engine import World
    from noisylab.train.models import count_parameters
    from noisylab.train.runtime import LocalReporter, run_schedule
    from noisylab.train.worker import WorkerSpec, build_context
    from noisylab.trainables import get_method

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
        acc = metrics.get("test_acc")
        side.epochs.append(Epoch(phase, seconds, labelled, None if acc is None else 100 * float(acc)))
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


def official_accuracies(log: Path) -> list[float]:
    """Its test log's accuracies in %, one per epoch ('Epoch:%d   Accuracy:%.2f' lines)."""
    found = re.findall(r"Epoch:\s*(\d+)\s+Accuracy:\s*([0-9.]+)", log.read_text())
    return [float(acc) for _, acc in sorted(found, key=lambda t: int(t[0]))]


def run_official(
    sources: dict[str, str],
    folder: Path,
    args: argparse.Namespace,
    seed: int,
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
    total = args.warmup + args.divided

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
            print(f"seed {seed}: epoch {index + 1}/{total} done", file=sys.stderr, flush=True)
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
    argv += ["--batch_size", str(args.batch), "--num_epochs", str(total - 1)]
    argv += ["--r", str(args.noise), "--noise_mode", "sym", "--seed", str(seed)]
    argv += ["--lambda_u", f"{OFFICIAL_LAMBDA_U:g}"]
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
    accuracies = official_accuracies(workdir / "checkpoint" / f"cifar10_{args.noise:.1f}_sym_acc.txt")
    for epoch, acc in zip(side.epochs, accuracies, strict=False):
        epoch.test_acc = acc


def run_ce(args: argparse.Namespace, root: Path, seed: int, workdir: Path) -> CrossEntropy:
    """`--method ce` with the same settings and epochs, in this process (no turns: it is not timed)."""
    from noisylab.api import run

    cfg = noisylab_config(args, root, seed, method="ce")
    record = run(cfg, storage=workdir / "ce-runs", name=f"ce-seed{seed}")
    history = [h for h in json.loads(record["history_json"]) if "test_acc" in h]
    accs = [100 * float(h["test_acc"]) for h in history]
    best = max(range(len(accs)), key=lambda i: accs[i])
    return CrossEntropy(accs[-1], accs[best], best + 1, float(history[-1]["train_loss"]))


# ---- a seed's result on disk: a rerun with the same --workdir skips the seeds already measured ---------

RESULT_FILE = "result.json"
# The arguments that shape a seed's numbers; a saved result measured with other values is measured again.
SHAPING = (
    "width",
    "batch",
    "warmup",
    "divided",
    "noise",
    "noise_kind",
    "crop",
    "data",
    "images",
    "test_images",
)


def shaping(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in SHAPING}


def save_result(path: Path, result: SeedResult, args: argparse.Namespace) -> None:
    """Write the seed's result atomically (a kill mid-write leaves no half file to trust)."""
    body = {"settings": shaping(args), "result": dataclasses.asdict(result)}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(body, indent=1))
    partial.replace(path)


def load_result(path: Path, args: argparse.Namespace) -> SeedResult | None:
    """The saved result of this seed when it was measured with these settings (with or without CE as
    asked), else None."""
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if body.get("settings") != shaping(args):
        return None
    r = body["result"]
    if r["ce"] is None and not args.no_ce:
        return None

    def side(d: dict[str, Any]) -> Side:
        return Side(epochs=[Epoch(**e) for e in d["epochs"]], parameters=d["parameters"])

    ce = None if args.no_ce or r["ce"] is None else CrossEntropy(**r["ce"])
    return SeedResult(r["seed"], side(r["official"]), side(r["ours"]), ce)


# ---- the tables -----------------------------------------------------------------------------------


def median_of(side: Side, phase: str, skip_first: int = 0) -> float:
    seconds = [e.seconds for e in side.epochs if e.phase == phase][skip_first:]
    return statistics.median(seconds) if seconds else float("nan")


def epoch_table(official: Side, ours: Side, args: argparse.Namespace) -> str:
    """Markdown: one row per epoch (seconds, test accuracy, labelled share), the medians of the seconds,
    the ratio noisylab / official."""
    n = args.images

    def share(e: Epoch) -> str:
        return "-" if e.labelled is None else f"{100 * e.labelled / n:.0f} %"

    def acc(e: Epoch) -> str:
        return "-" if e.test_acc is None else f"{e.test_acc:.1f}"

    lines = [
        "| epoch | phase | official s | noisylab s | official acc % | noisylab acc % "
        "| official labelled | noisylab labelled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, (o, m) in enumerate(zip(official.epochs, ours.epochs, strict=True)):
        lines.append(
            f"| {i + 1} | {o.phase} | {o.seconds:.2f} | {m.seconds:.2f} | {acc(o)} | {acc(m)} "
            f"| {share(o)} | {share(m)} |"
        )
    for phase, skip, label in (("warm-up", 1, "warm-up epochs 2+"), ("divided", 0, "divided epochs")):
        mo, mn = median_of(official, phase, skip), median_of(ours, phase, skip)
        lines.append(
            f"| median | {label} | {mo:.2f} | {mn:.2f} | | | ratio noisylab / official | **{mn / mo:.2f}** |"
        )
    return "\n".join(lines)


def _reach(side: Side, target: float) -> tuple[str, str]:
    got = side.reaches(target)
    return ("never", "-") if got is None else (str(got[0]), f"{got[1]:.0f}")


def parity_table(results: list[SeedResult]) -> str:
    """Markdown: per seed and side, final and best accuracy, when the official's final accuracy is first
    reached and in how many seconds, the whole run's seconds; CE on the same budget beside them."""
    lines = [
        "| seed | side | final acc % | best acc % (epoch) | epoch reaching the official's final "
        "| seconds to it | seconds in all | last training loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        target = r.official.final
        for name, side in (("official", r.official), ("noisylab", r.ours)):
            best, at = side.best()
            epoch, seconds = _reach(side, target)
            total = sum(e.seconds for e in side.epochs)
            lines.append(
                f"| {r.seed} | {name} DivideMix | {side.final:.2f} | {best:.2f} ({at}) | {epoch} | {seconds} "
                f"| {total:.0f} | |"
            )
        if r.ce is not None:
            lines.append(
                f"| {r.seed} | noisylab CE | {r.ce.final:.2f} | {r.ce.best:.2f} ({r.ce.best_epoch}) | | | "
                f"| {r.ce.last_loss:.3f} |"
            )
    return "\n".join(lines)


def verdict(results: list[SeedResult]) -> list[str]:
    """The medians over seeds and the two targets."""
    official = statistics.median(r.official.final for r in results)
    ours = statistics.median(r.ours.final for r in results)
    gap = ours - official
    lines = [
        f"final test accuracy, median of {len(results)} seeds: official {official:.2f} %, noisylab "
        f"{ours:.2f} %, noisylab − official {gap:+.2f} points "
        f"[{'ok' if gap >= -ACC_TOLERANCE else 'FAILS'}: within {ACC_TOLERANCE:g} points or above]"
    ]
    shares = []
    for r in results:
        theirs, mine = r.official.reaches(r.official.final), r.ours.reaches(r.official.final)
        if theirs is not None and mine is not None:
            shares.append(mine[1] / theirs[1])
        else:
            shares.append(float("inf"))  # noisylab never got there
    share = statistics.median(shares)
    lines.append(
        "wall time to the official's final accuracy, noisylab / official, median over seeds: "
        f"{share:.2f} ({', '.join(f'{x:.2f}' for x in shares)}) "
        f"[{'ok' if share <= TIME_TARGET else 'FAILS'}: at most 1/1.5 = {TIME_TARGET:.2f}]"
    )
    ce = [r.ce for r in results if r.ce is not None]
    if ce:
        lines.append(
            f"CE on the same budget, median: final {statistics.median(c.final for c in ce):.2f} %, best "
            f"{statistics.median(c.best for c in ce):.2f} %, last training loss "
            f"{statistics.median(c.last_loss for c in ce):.3f}"
        )
    return lines


def header(results: list[SeedResult], args: argparse.Namespace) -> str:
    import torch

    first = results[0]
    workers = "its 5" if args.official_workers is None else str(args.official_workers)
    data = (
        "Fashion-MNIST (class-balanced, padded to 32×32, 3 identical channels)"
        if args.data == "fashion-mnist"
        else "synthetic 32×32 colour patterns"
    )
    augmentation = "flips only" if args.crop == 0 else f"{args.crop}-pixel crops and flips"
    return "\n".join(
        [
            f"DivideMix, official code vs noisylab: {args.images:,} training / {args.test_images:,} test "
            f"images of {data} in CIFAR-10's pickle layout, {args.noise_kind} noise {args.noise:g} (the "
            "same labels on both sides)",
            f"PreAct ResNet-18 at width {args.width} (official narrowed from 64: "
            f"{first.official.parameters:,} parameters per network; noisylab preact_resnet18: "
            f"{first.ours.parameters:,}), {augmentation}",
            f"{2 * args.batch} samples per optimiser step (official --batch_size {args.batch}: {args.batch} "
            f"labelled + {args.batch} unlabelled; noisylab batch_size {2 * args.batch}), SGD lr 0.02 "
            f"momentum 0.9 weight decay 5e-4, λ_u {OFFICIAL_LAMBDA_U:g}, {args.warmup} warm-up + "
            f"{args.divided} divided epochs each, alternating; seeds {', '.join(map(str, args.seeds))}",
            f"torch threads {torch.get_num_threads()}, official DataLoader workers {workers}",
        ]
    )


# ---- command line ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, help=f"a checkout of {OFFICIAL_URL}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--width", type=int, default=16, help="PreAct ResNet-18 width of both (official: 64)")
    p.add_argument("--batch", type=int, default=64, help="official --batch_size; noisylab gets twice it")
    p.add_argument("--warmup", type=int, default=5, help="warm-up epochs (official: 10 on CIFAR-10)")
    p.add_argument("--divided", type=int, default=25, help="divided epochs after warm-up (≥ 3)")
    p.add_argument("--noise", type=float, default=0.5, help="noise rate")
    p.add_argument("--noise-kind", choices=("idn", "sym"), default="idn", help="noisylab's generator")
    p.add_argument("--crop", type=int, choices=(0, 4), default=0, help="0: flips only; 4: the official crop")
    p.add_argument("--data", choices=("fashion-mnist", "synthetic"), default="fashion-mnist")
    p.add_argument("--images", type=int, default=1000, help="training images")
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--no-ce", action="store_true", help="skip the CE run beside each seed")
    p.add_argument("--per-epoch", action="store_true", help="also print every epoch of every seed")
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
        rules = size_rules(args.images, args.test_images, args.warmup)
        rules += crop_rules() if args.crop == 0 else []
        sources = patched_sources(folder, rules)
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


def write_data(args: argparse.Namespace, root: Path) -> Path:
    if args.data == "synthetic":
        return write_synthetic_cifar(root, train=args.images, test=args.test_images, seed=0)
    images, labels, names = fashion_mnist_set(args.images, args.test_images)
    return write_cifar(root, images, labels, train=args.images, class_names=names)


def benchmark(args: argparse.Namespace, folder: Path, sources: dict[str, str], workdir: Path) -> int:
    os.environ["NOISYLAB_CACHE"] = str(workdir / "cache")  # the noise cache: nothing in the user's home
    from noisylab.data.prepare import prepare_data

    # torch warns at every official DataLoader whose workers outnumber the cores; the header says how many.
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
    results = []
    for seed in args.seeds:
        seed_dir = workdir / f"seed{seed}"
        seed_dir.mkdir(exist_ok=True)
        saved = load_result(seed_dir / RESULT_FILE, args)
        if saved is not None:
            print(f"seed {seed}: measured before, read from {seed_dir / RESULT_FILE}", file=sys.stderr)
            results.append(saved)
            if args.per_epoch:
                print(f"seed {seed}\n\n{epoch_table(saved.official, saved.ours, args)}\n", flush=True)
            continue
        data = write_data(args, seed_dir / "data")
        cfg = noisylab_config(args, seed_dir / "data", seed)
        bundle = prepare_data(cfg)
        # The official script reads its noisy labels from this file when it exists (else it draws its own).
        (data / f"{args.noise:.1f}_sym.json").write_text(json.dumps([int(y) for y in bundle.noisy_labels]))
        run_dir = seed_dir / "noisylab-run"
        for stale in (run_dir, seed_dir / "ce-runs"):  # an interrupted seed is measured from its start
            shutil.rmtree(stale, ignore_errors=True)
        run_dir.mkdir()
        turns, official, ours = Turns(), Side(), Side()
        thread = start_noisylab(cfg, bundle, run_dir, turns, ours)
        with cpu_patches():
            run_official(sources, folder, args, seed, data, seed_dir, turns, official)
        thread.join()
        if turns.error is not None:
            raise turns.error
        ce = None if args.no_ce else run_ce(args, seed_dir / "data", seed, seed_dir)
        results.append(SeedResult(seed, official, ours, ce))
        save_result(seed_dir / RESULT_FILE, results[-1], args)
        if args.per_epoch:
            print(f"seed {seed}\n\n{epoch_table(official, ours, args)}\n", flush=True)
    print(header(results, args))
    print()
    print(parity_table(results))
    print()
    for line in verdict(results):
        print(line)
    print()
    pooled_official = Side(epochs=[e for r in results for e in r.official.epochs])
    pooled_ours = Side(epochs=[e for r in results for e in r.ours.epochs])
    print(seconds_table(pooled_official, pooled_ours))
    return 0


def seconds_table(official: Side, ours: Side) -> str:
    """Median seconds per epoch over every seed, by phase, and the ratio noisylab / official."""
    lines = ["| epochs | official s | noisylab s | ratio noisylab / official |", "|---|---|---|---|"]
    for phase, label in (("warm-up", "warm-up"), ("divided", "divided")):
        mo, mn = median_of(official, phase), median_of(ours, phase)
        lines.append(f"| {label} (median) | {mo:.2f} | {mn:.2f} | **{mn / mo:.2f}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
