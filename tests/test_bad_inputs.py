"""The catalogue of bad inputs: each one ends in ONE line `error: ...`, exit code 2, no traceback, and
nothing written, lost or half-written (every file under the case's folder is byte-identical after).

Each case is (id, set-up, argv, exit code, a substring of the line). The set-up writes the files the case
needs into its own folder; `{tmp}` in argv (and in the line) is that folder, `{npz}` the digits archive.
The table in BENCHMARKS.md is this list, run: `python benchmarks/bad_inputs_table.py`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.config.run import RunConfig

runner = CliRunner()
CPUS = os.cpu_count() or 1
TINY = ["--profile", "tiny", "--workers", "0", "--no-progress", "--set", "data.flip=false"]
TINY += ["--set", "data.crop_padding=1"]
RUN = [
    "run",
    "--dataset",
    "npz",
    "--data-root",
    "{npz}",
    "--storage",
    "{tmp}/runs",
    "--noise",
    "sym:0.2",
    *TINY,
]
FINISHED = "done"  # the --name of the finished run that some set-ups copy in

SetUp = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    setup: SetUp | None
    argv: list[str]
    code: int  # 2: refused in one `error:` line; 0: the run repairs it, says so in one `warning:` line
    message: str
    env: dict[str, str] | None = None  # environment of the command (`{tmp}` expanded)


# The caches of a case in its own folder, so a set-up can plant a damaged entry there.
CACHE_ENV = {"NOISYLAB_CACHE": "{tmp}/cache"}


# ---- set-ups: files in the formats the loaders read, each wrong in one way ----------------------------


def _npz(
    path: Path, *, n: int = 6, size: int = 8, train_labels: list[int] | None = None, test: int = 6
) -> None:
    img = np.zeros((n, size, size), np.uint8)
    np.savez(
        path,
        train_images=img,
        train_labels=np.array(train_labels if train_labels is not None else [0, 1, 2, 1, 1, 0][:n]),
        test_images=img[:test],
        test_labels=np.array([0, 1, 2, 1, 1, 0][:test], dtype=np.int64),
    )


def absurd_label(tmp: Path) -> None:
    _npz(tmp / "absurd.npz", train_labels=[2**31 - 1, 1, 2, 1, 1, 0])


def negative_label(tmp: Path) -> None:
    _npz(tmp / "negative.npz", train_labels=[0, 1, 2, -1, 1, 0])


def tiny_images(tmp: Path) -> None:
    _npz(tmp / "tiny.npz", size=2)


def empty_test_split(tmp: Path) -> None:
    _npz(tmp / "empty_test.npz", test=0)


def _one_image_per_class(path: Path, classes: int, size: int) -> None:
    img = np.zeros((classes, size, size), np.uint8)
    labels = np.arange(classes)
    np.savez(path, train_images=img, train_labels=labels, test_images=img[:2], test_labels=labels[:2])


def ten_thousand_classes(tmp: Path) -> None:
    _one_image_per_class(tmp / "classes.npz", 10_000, 4)


def two_thousand_classes(tmp: Path) -> None:
    _one_image_per_class(tmp / "classes.npz", 2_000, 8)


def chaoyang_absurd(tmp: Path) -> None:
    root = tmp / "chaoyang"
    root.mkdir()
    for split in ("train", "test"):
        (root / f"{split}.json").write_text(json.dumps([{"name": "a.jpg", "label": 2**31 - 1}]))


def _idx(tmp: Path, *, magic: int, count: int) -> None:
    import gzip
    import struct

    root = tmp / "mnist"
    root.mkdir()
    for prefix in ("train", "t10k"):
        with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", magic, count, 28, 28) + bytes(count * 28 * 28))
        with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, count) + bytes(count))


def idx_bad_magic(tmp: Path) -> None:
    _idx(tmp, magic=1234, count=4)


def idx_no_images(tmp: Path) -> None:
    _idx(tmp, magic=2051, count=0)


class _Payload:
    """Pickles into a call of os.system: what a hostile label file or Tune state would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def hostile_label_file(tmp: Path) -> None:
    torch.save({"worse_label": _Payload(tmp / "PWNED")}, tmp / "labels.pt")


def pickled_label_file(tmp: Path) -> None:
    """A plain pickle named .pt (not torch.save's zip): torch warns about its protocol, then refuses it."""
    import pickle

    (tmp / "evil.pt").write_bytes(pickle.dumps({"worse_label": _Payload(tmp / "PWNED")}, protocol=4))


def config_not_an_object(tmp: Path) -> None:
    (tmp / "runs" / "mine").mkdir(parents=True)
    (tmp / "runs" / "mine" / "config.json").write_text("[1, 2]")


def config_of_another_run(tmp: Path) -> None:
    (tmp / "runs" / "mine").mkdir(parents=True)
    (tmp / "runs" / "mine" / "config.json").write_text(json.dumps(RunConfig().to_dict()))


def toml_nested_3000_deep(tmp: Path) -> None:
    (tmp / "deep.toml").write_text("seed = " + "[" * 3000 + "]" * 3000 + "\n")


def json_nested_5000_deep(tmp: Path) -> None:
    (tmp / "deep.json").write_text("[" * 5000 + "]" * 5000)


def json_with_a_5000_digit_integer(tmp: Path) -> None:
    (tmp / "big.json").write_text('{"seed": ' + "9" * 5000 + "}")


def toml_in_latin_1(tmp: Path) -> None:
    (tmp / "latin.toml").write_bytes('[data]\nname = "café"\n'.encode("latin-1"))


def run_config_nested_5000_deep(tmp: Path) -> None:
    (tmp / "runs" / "mine").mkdir(parents=True)
    (tmp / "runs" / "mine" / "config.json").write_text('{"data": ' * 5000 + "1" + "}" * 5000)


def misspelt_toml(tmp: Path) -> None:
    (tmp / "vary.toml").write_text("[refine]\ntreshold = 0.5\n")


def misspelt_run_config(tmp: Path) -> None:
    config = RunConfig().to_dict()
    config["refine"]["treshold"] = config["refine"].pop("threshold")
    (tmp / "runs" / "mine").mkdir(parents=True)
    (tmp / "runs" / "mine" / "config.json").write_text(json.dumps(config))


def a_file(tmp: Path) -> None:
    (tmp / "afile").write_text("not a folder")


def finished_run(tmp: Path) -> None:
    """A real finished run of RUN --name done (trained once per session, copied in)."""
    shutil.copytree(_finished_template(), tmp / "runs" / FINISHED)


def corrupt_record(tmp: Path) -> None:
    finished_run(tmp)
    (tmp / "runs" / FINISHED / "record.parquet").write_bytes(b"PAR1 not really")


def precious_beside_the_export(tmp: Path) -> None:
    """A file the user never named, where `labels --output y.csv` also writes (y.pred_probs.npy)."""
    finished_run(tmp)
    (tmp / "y.pred_probs.npy").write_text("precious\n")


def existing_export(tmp: Path) -> None:
    finished_run(tmp)
    (tmp / "y.parquet").write_text("mine\n")


def garbage_samples(tmp: Path) -> None:
    finished_run(tmp)
    (tmp / "runs" / FINISHED / "samples.parquet").write_bytes(b"PAR1 not really")


def samples_without_columns(tmp: Path) -> None:
    finished_run(tmp)
    pl.DataFrame({"x": [1, 2]}).write_parquet(tmp / "runs" / FINISHED / "samples.parquet")


def record_without_test_acc(tmp: Path) -> None:
    finished_run(tmp)
    path = tmp / "runs" / FINISHED / "record.parquet"
    pl.read_parquet(path).drop("test_acc").write_parquet(path)


def _cache_entry(tmp: Path, kind: str) -> Path:
    """The template run's caches copied into the case's folder; the one entry of `kind` (pretrain, noise)."""
    shutil.copytree(_finished_template().parent.parent / "cache", tmp / "cache")
    (entry,) = (tmp / "cache" / kind).iterdir()
    return entry


def _damage_pretrain_entry(tmp: Path, damage: Callable[[dict], None]) -> None:
    path = _cache_entry(tmp, "pretrain")
    entry = torch.load(path, weights_only=True)
    damage(entry)
    torch.save(entry, path)


def pretrain_entry_of_another_shape(tmp: Path) -> None:
    def wider_first_layer(entry: dict) -> None:
        name = next(iter(entry["model"]))
        shape = entry["model"][name].shape
        entry["model"][name] = torch.zeros(2 * shape[0], *shape[1:])

    _damage_pretrain_entry(tmp, wider_first_layer)


def pretrain_entry_without_history(tmp: Path) -> None:
    _damage_pretrain_entry(tmp, lambda entry: entry.pop("history"))


def pretrain_entry_with_nan_weights(tmp: Path) -> None:
    def nan(entry: dict) -> None:
        for tensor in entry["model"].values():
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))

    _damage_pretrain_entry(tmp, nan)


def noise_entry_of_another_length(tmp: Path) -> None:
    path = _cache_entry(tmp, "noise")
    np.save(path, np.load(path)[:-1])


def noise_entry_of_garbage(tmp: Path) -> None:
    _cache_entry(tmp, "noise").write_bytes(b"\x93NUMPY garbage")


def _unfinished(tmp: Path) -> Path:
    finished_run(tmp)
    run = tmp / "runs" / FINISHED
    (run / "record.parquet").unlink()
    (run / "final_labels.npy").unlink()
    return run / "state.pt"


def truncated_checkpoint(tmp: Path) -> None:
    state = _unfinished(tmp)
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])


def checkpoint_of_another_config(tmp: Path) -> None:
    torch.save({"fingerprint": "0" * 16}, _unfinished(tmp))


def _study_file(tmp: Path, body: str) -> None:
    (tmp / "study.py").write_text(body)


def study_syntax_error(tmp: Path) -> None:
    _study_file(tmp, "from noisylab.sweeps import Study\n\nSTUDY = Study(name='x',\n")


def study_that_raises(tmp: Path) -> None:
    _study_file(tmp, "import json\n\nSETTINGS = json.loads('{broken')\n")


def study_named_outside(tmp: Path) -> None:
    _study_file(
        tmp,
        "from noisylab.sweeps import Study, SweepProfile\n"
        "STUDY = Study(name='../x', description='', grid={'method': ('ce',)},\n"
        "              profiles={'cpu': SweepProfile('tiny', seeds=(0,))})\n",
    )


_TEMPLATE: list[Path] = []


def _finished_template() -> Path:
    """Train RUN --name done once into a temporary folder (seconds: the tiny profile on 400 digits), with
    its caches beside its runs folder."""
    if not _TEMPLATE:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="noisylab-finished-"))
        args = _argv([*RUN, "--name", FINISHED], root, DIGITS[0])
        # Caches of its own: the set-ups copy its pre-training and noise entries (runs/../cache).
        result = runner.invoke(app, args, env={"NOISYLAB_CACHE": str(root / "cache")})
        assert result.exit_code == 0, result.output
        _TEMPLATE.append(root / "runs" / FINISHED)
    return _TEMPLATE[0]


DIGITS: list[Path] = []  # the digits .npz (set by the fixture, or by the table script)

# ---- the catalogue ------------------------------------------------------------------------------------

_ADDR = ["--workers", "1", "--address"]
_Q3 = ["--set", "selfie.history=3"]
CASES: list[Case] = [
    # options and config values
    Case("noise rate above 1", None, [*RUN, "--noise", "idn:1.2"], 2, "outside [0, 1)"),
    Case("negative noise rate", None, [*RUN, "--noise", "idn:-0.1"], 2, "outside [0, 1)"),
    Case("unknown method", None, [*RUN, "--method", "magic"], 2, "unknown method 'magic'"),
    Case("unknown model", None, [*RUN, "--model", "resnet19"], 2, "unknown model 'resnet19'"),
    Case("unknown profile", None, [*RUN, "--profile", "laptop"], 2, "unknown profile 'laptop'"),
    Case(
        "more workers than CPUs", None, [*RUN, "--workers", str(CPUS + 1)], 2, f"this machine's {CPUS} CPUs"
    ),
    Case(
        "stages beyond the epochs", None, [*RUN, "--set", "refine.stages=[[1,3],[1,2]]"], 2, "outside its 2"
    ),
    Case(
        "misspelt field",
        None,
        [*RUN, "--set", "refine.treshold=0.5"],
        2,
        "unknown config field 'refine.treshold' (did you mean `refine.threshold`?)",
    ),
    Case(
        "misspelt field in a --config file",
        misspelt_toml,
        [*RUN, "--config", "{tmp}/vary.toml"],
        2,
        "unknown config field 'refine.treshold' (did you mean `refine.threshold`?)",
    ),
    Case(
        "misspelt field in a run folder's config.json",
        misspelt_run_config,
        [*RUN, "--name", "mine"],
        2,
        "unknown config field 'refine.treshold' in a saved config (did you mean `refine.threshold`?)",
    ),
    Case("--set without a value", None, [*RUN, "--set", "refine.threshold"], 2, "expects PATH=VALUE"),
    Case(
        "infinite learning rate",
        None,
        [*RUN, "--set", "baseline.lr=inf"],
        2,
        "'baseline.lr' must be a finite",
    ),
    Case("NaN threshold", None, [*RUN, "--set", "refine.threshold=nan"], 2, "must be a finite number"),
    Case(
        "mentornet percentile above 1",
        None,
        [*RUN, "--method", "mentornet", "--set", "mentornet.percentile=1.5"],
        2,
        "mentornet.percentile must lie in (0, 1]",
    ),
    Case(
        "mentornet drop-out pieces that do not pair",
        None,
        [*RUN, "--method", "mentornet", "--set", "mentornet.dropout_rates=[0.5]"],
        2,
        "need one entry each per piece",
    ),
    Case(
        "selfie history longer than its warm-up",
        None,
        [*RUN, "--method", "selfie", "--set", "baseline.epochs=6", "--set", "selfie.warmup_epochs=2", *_Q3],
        2,
        "selfie.history (3) is longer than selfie.warmup_epochs (2)",
    ),
    Case(
        "selfie on a label file without a noise rate",
        None,
        [*RUN, "--method", "selfie", "--noise", "file:{tmp}/labels.npy"],
        2,
        "selfie needs selfie.noise_rate with label-file noise",
    ),
    Case(
        "reweight with no epoch for phase 2",
        None,
        [*RUN, "--method", "reweight", "--set", "baseline.epochs=1"],
        2,
        "reweight needs at least 1 epoch in each phase",
    ),
    Case("negative reweight cap", None, [*RUN, "--set", "reweight.max_weight=-1"], 2, "must be ≥ 0"),
    Case(
        "decoupling warm-up as long as the run",
        None,
        [*RUN, "--method", "decoupling", "--set", "decoupling.warmup_epochs=2"],
        2,
        "leaves no epoch of updates by disagreement",
    ),
    Case(
        "decoupling loss floor above the batch",
        None,
        [*RUN, "--method", "decoupling", "--set", "decoupling.min_batch_fraction=2"],
        2,
        "must lie in [0, 1]",
    ),
    Case("negative weight decay", None, [*RUN, "--set", "warmup.weight_decay=-0.1"], 2, "must be ≥ 0"),
    Case("negative seed", None, [*RUN, "--seed", "-1"], 2, "seed must lie in 0..4294967295"),
    Case("huge seed", None, [*RUN, "--seed", "99999999999999999999"], 2, "seed must lie in 0..4294967295"),
    Case(
        "seed 1e20",
        None,
        [*RUN, "--seed", "1e20"],
        2,
        "Invalid value for '--seed': Input should be a valid integer",
    ),
    Case("unknown command", None, ["runn"], 2, "No such command 'runn'"),
    # retries of Ray Train runs from their newest checkpoint
    Case(
        "negative --max-failures",
        None,
        [*RUN, "--workers", "2", "--max-failures", "-1"],
        2,
        "--max-failures must lie in 0..1000 (restarts from the newest checkpoint), got -1",
    ),
    Case(
        "--max-failures 10**6",
        None,
        [*RUN, "--workers", "2", "--max-failures", "1000000"],
        2,
        "--max-failures must lie in 0..1000",
    ),
    Case(
        "--max-failures not a number",
        None,
        [*RUN, "--max-failures", "many"],
        2,
        "Invalid value for '--max-failures'",
    ),
    Case(
        "--max-failures for a run in this process",
        None,
        [*RUN, "--max-failures", "5"],
        2,
        "--max-failures applies to Ray Train runs (--workers 2 or more, or --address)",
    ),
    Case(
        "sweep with negative --max-failures",
        None,
        ["sweep", "fmnist_cpu", "--dry-run", "--max-failures", "-2"],
        2,
        "--max-failures must lie in 0..1000",
    ),
    Case(
        "sweep --local with --max-failures",
        None,
        ["sweep", "fmnist_cpu", "--local", "--storage", "{tmp}/st", "--max-failures", "1"],
        2,
        "--max-failures applies to Ray Train trials: drop it with --local",
    ),
    # integer fields bounded where they are checked (a huge batch overflowed torch, after the folder was
    # claimed: the corrected command was then refused as "started with another config")
    Case(
        "batch of 10**20",
        None,
        [*RUN, "--method", "ce", "--set", "batch_size=100000000000000000000", "--name", "hb"],
        2,
        "config field 'batch_size' must be ≤ 2,147,483,647, got 100000000000000000000",
    ),
    Case(
        "batch larger than the training set",
        None,
        [*RUN, "--method", "ce", "--set", "batch_size=129"],
        2,
        "batch_size 129 is larger than the 128 training images",
    ),
    Case(
        "a million epochs",
        None,
        [*RUN, "--method", "ce", "--set", "baseline.epochs=1000000"],
        2,
        "config field 'baseline.epochs' must be ≤ 10,000, got 1000000",
    ),
    Case(
        "refinement epochs of 10**14",
        None,
        [*RUN, "--set", "refine.epochs=[2,100000000000000]"],
        2,
        "config field 'refine.epochs' must be ≤ 10,000, got [2, 100000000000000]",
    ),
    Case(
        "a network 100,000 channels wide",
        None,
        [*RUN, "--set", "model.width=100000"],
        2,
        "config field 'model.width' must be ≤ 512, got 100000",
    ),
    Case(
        "a subset of 10**20 images",
        None,
        [*RUN, "--set", "data.train_subset=100000000000000000000"],
        2,
        "config field 'data.train_subset' must be ≤ 2,147,483,647",
    ),
    # each method's own section (noisylab.config.sections): its check, after its paper defaults are resolved
    Case(
        "no baseline epoch",
        None,
        [*RUN, "--method", "ce", "--set", "baseline.epochs=0"],
        2,
        "baseline.epochs must be ≥ 1, got 0",
    ),
    Case(
        "negative mixup α",
        None,
        [*RUN, "--method", "mixup", "--set", "mixup.alpha=-1"],
        2,
        "mixup.alpha must be ≥ 0 (0 turns mixing off)",
    ),
    Case(
        "forward with 1 epoch",
        None,
        [*RUN, "--method", "forward", "--set", "baseline.epochs=1"],
        2,
        "forward needs at least 1 epoch in each phase, got 0 + 1",
    ),
    Case(
        "forget rate 1",
        None,
        [*RUN, "--method", "coteaching", "--set", "coteaching.forget_rate=1"],
        2,
        "coteaching.forget_rate must lie in [0, 1)",
    ),
    Case(
        "coteaching on a label file",
        None,
        [*RUN, "--method", "coteaching", "--noise", "file:{tmp}/labels.npy"],
        2,
        "--set coteaching.forget_rate=0.2",
    ),
    Case(
        "dividemix warm-up = budget",
        None,
        [*RUN, "--method", "dividemix", "--set", "baseline.epochs=4", "--set", "dividemix.warmup_epochs=4"],
        2,
        "dividemix.warmup_epochs (4) leaves no divided epoch of the run's 4",
    ),
    Case(
        "dividemix on a label file",
        None,
        [*RUN, "--method", "dividemix", "--noise", "file:{tmp}/labels.npy"],
        2,
        "--set dividemix.lambda_u=25",
    ),
    Case(
        "c2d warm-up = budget",
        None,
        [*RUN, "--method", "c2d", "--set", "c2d.warmup_epochs=2"],
        2,
        "c2d.warmup_epochs (2) leaves no DivideMix epoch of the run's 2",
    ),
    Case(
        "paper_dividemix with BYOL",
        None,
        [*RUN, "--method", "paper_dividemix", "--set", "pretrain.method=byol"],
        2,
        "pretrain.method must be simclr or none",
    ),
    Case("lsl with k = 0", None, [*RUN, "--method", "lsl", "--set", "lsl.k=0"], 2, "lsl.k must be ≥ 1"),
    Case(
        "lsl vote share above 1",
        None,
        [*RUN, "--method", "lsl", "--set", "lsl.select_threshold=1.5"],
        2,
        "lsl.select_threshold must lie in (0, 1]",
    ),
    Case(
        "lsl warm-up as long as the run",
        None,
        [*RUN, "--method", "lsl", "--set", "lsl.warmup_epochs=99"],
        2,
        "leaves no epoch with structural labels",
    ),
    # --config files
    Case(
        "--config TOML nested 3,000 deep",
        toml_nested_3000_deep,
        [*RUN, "--config", "{tmp}/deep.toml"],
        2,
        "deep.toml nests its values more than 16 levels deep",
    ),
    Case(
        "--config JSON nested 5,000 deep",
        json_nested_5000_deep,
        [*RUN, "--config", "{tmp}/deep.json"],
        2,
        "deep.json nests its values more than 16 levels deep",
    ),
    Case(
        "--config with a 5,000-digit integer",
        json_with_a_5000_digit_integer,
        [*RUN, "--config", "{tmp}/big.json"],
        2,
        "big.json holds an integer of more than 4,300 digits",
    ),
    Case(
        "--config not in UTF-8",
        toml_in_latin_1,
        [*RUN, "--config", "{tmp}/latin.toml"],
        2,
        "latin.toml is not UTF-8 text (byte 0xe9 at offset 18)",
    ),
    Case(
        "run folder's config.json nested 5,000 deep",
        run_config_nested_5000_deep,
        [*RUN, "--name", "mine"],
        2,
        "config.json nests its values more than 16 levels deep",
    ),
    # names and storage
    Case("--name with ..", None, [*RUN, "--name", "../x"], 2, "is not a plain name"),
    Case("--name absolute", None, [*RUN, "--name", "{tmp}/abs"], 2, "is not a plain name"),
    Case("--name empty", None, [*RUN, "--name", ""], 2, "is not a plain name"),
    Case("--name with a newline", None, [*RUN, "--name", "a\nb"], 2, "--name 'a\\nb' is not a plain name"),
    Case("--storage is a file", a_file, [*RUN, "--storage", "{tmp}/afile"], 2, "is a file, not a folder"),
    Case(
        "--storage under a file",
        a_file,
        [*RUN, "--storage", "{tmp}/afile/runs"],
        2,
        "a part of the path is a file",
    ),
    Case("unreachable --address", None, [*RUN, *_ADDR, "127.0.0.1:1"], 2, "cannot reach a Ray cluster"),
    Case("malformed --address", None, [*RUN, *_ADDR, "nowhere"], 2, "expected host:port"),
    Case("--workers 0 with --address", None, [*RUN, "--address", "127.0.0.1:1"], 2, "needs Ray workers"),
    # datasets and label files
    Case("missing dataset folder", None, [*RUN, "--dataset", "cifar10", "--data-root", "{tmp}/no"], 2, "no"),
    Case(
        "IDX with a bad magic number",
        idx_bad_magic,
        [*RUN, "--dataset", "mnist", "--data-root", "{tmp}/mnist"],
        2,
        "not an IDX images file",
    ),
    Case(
        "IDX with 0 images",
        idx_no_images,
        [*RUN, "--dataset", "mnist", "--data-root", "{tmp}/mnist"],
        2,
        "holds no images",
    ),
    Case(
        "negative label", negative_label, [*RUN, "--data-root", "{tmp}/negative.npz"], 2, "contains label -1"
    ),
    Case(
        "label 2**31-1 (npz)",
        absurd_label,
        [*RUN, "--data-root", "{tmp}/absurd.npz"],
        2,
        "2,147,483,648 classes",
    ),
    Case(
        "label 2**31-1 (Chaoyang)",
        chaoyang_absurd,
        [*RUN, "--dataset", "chaoyang", "--data-root", "{tmp}/chaoyang"],
        2,
        "2,147,483,648 classes",
    ),
    # what grows with the class count: the C × C transition matrix, IDN's C × D × C projection
    Case(
        "npz with 10,000 classes",
        ten_thousand_classes,
        [*RUN, "--data-root", "{tmp}/classes.npz", "--noise", "idn:0.3"],
        2,
        "10,000 classes are too many for this run: the noise transition matrix would hold 10,000 × 10,000 "
        "= 100,000,000 entries",
    ),
    Case(
        "IDN on 2,000 classes of 64×64 images",
        two_thousand_classes,
        [*RUN, "--data-root", "{tmp}/classes.npz", "--noise", "idn:0.3", "--image-size", "64"],
        2,
        "idn noise would draw a 2,000 × 4,096 × 2,000 projection for 1×64×64 images (16,384,000,000 random",
    ),
    Case(
        "2×2 images, padding 4",
        tiny_images,
        [*RUN, "--data-root", "{tmp}/tiny.npz", "--set", "data.crop_padding=4"],
        2,
        "too small for data.crop_padding=4",
    ),
    Case(
        "npz with an empty test split",
        empty_test_split,
        [*RUN, "--data-root", "{tmp}/empty_test.npz"],
        2,
        "test_labels is empty",
    ),
    Case(
        "label file with code in it",
        hostile_label_file,
        [*RUN, "--noise", "file:{tmp}/labels.pt"],
        2,
        "unsupported GLOBAL posix.system",
    ),
    Case(
        "label file that is a plain pickle",
        pickled_label_file,
        [*RUN, "--noise", "file:{tmp}/evil.pt"],
        2,
        "evil.pt as a torch file",
    ),
    # run folders
    Case(
        "config.json holding [1,2]",
        config_not_an_object,
        [*RUN, "--name", "mine"],
        2,
        "not a noisylab config",
    ),
    Case(
        "run name holding another config",
        config_of_another_run,
        [*RUN, "--name", "mine"],
        2,
        "another config",
    ),
    Case(
        "checkpoint of another config",
        checkpoint_of_another_config,
        [*RUN, "--name", FINISHED],
        2,
        "belongs to another config",
    ),
    Case("truncated state.pt", truncated_checkpoint, [*RUN, "--name", FINISHED], 2, "is damaged"),
    Case("corrupt record.parquet, run again", corrupt_record, [*RUN, "--name", FINISHED], 2, "is damaged"),
    Case(
        "finished run, other config",
        finished_run,
        [*RUN, "--name", FINISHED, "--seed", "3"],
        2,
        "another config",
    ),
    # damaged cache entries: set aside (renamed .bad, bytes kept) with one warning, computed again
    Case(
        "pre-training cache entry of another shape",
        pretrain_entry_of_another_shape,
        [*RUN, "--name", "fresh"],
        0,
        "cannot be used (backbone.stem.conv.weight is float32 [8, 1, 3, 3], "
        "the network's float32 [4, 1, 3, 3])",
        CACHE_ENV,
    ),
    Case(
        "pre-training cache entry without its history",
        pretrain_entry_without_history,
        [*RUN, "--name", "fresh"],
        0,
        "cannot be used (it lacks history): set aside as",
        CACHE_ENV,
    ),
    Case(
        "pre-training cache entry with NaN weights",
        pretrain_entry_with_nan_weights,
        [*RUN, "--name", "fresh"],
        0,
        "holds NaN or infinite values): set aside as",
        CACHE_ENV,
    ),
    Case(
        "noise cache entry of another length",
        noise_entry_of_another_length,
        [*RUN, "--name", "fresh"],
        0,
        "cannot be used (it holds labels of shape (1399,) for 1400 samples)",
        CACHE_ENV,
    ),
    Case(
        "noise cache entry of garbage",
        noise_entry_of_garbage,
        [*RUN, "--name", "fresh"],
        0,
        "cannot be used (it is not a readable .npy array): set aside as",
        CACHE_ENV,
    ),
    # listings
    Case(
        "fields --format xml", None, ["fields", "--format", "xml"], 2, "unknown format 'xml': choose one of"
    ),
    # show and report
    Case(
        "show a foreign file", corrupt_record, ["show", "{tmp}/runs/done/record.parquet"], 2, "not a noisylab"
    ),
    Case("show a missing run", None, ["show", "{tmp}/nothing"], 2, "no result record"),
    Case(
        "show a record without test_acc",
        record_without_test_acc,
        ["show", "{tmp}/runs/done"],
        2,
        "lacks the record columns test_acc",
    ),
    # labels
    Case(
        "labels beside a file it was not named",
        precious_beside_the_export,
        ["labels", "{tmp}/runs/done", "--output", "{tmp}/y.csv"],
        2,
        "y.pred_probs.npy, which already exists: `noisylab labels` writes",
    ),
    Case(
        "labels onto an existing --output",
        existing_export,
        ["labels", "{tmp}/runs/done", "--output", "{tmp}/y.parquet"],
        2,
        "pass --overwrite to replace them",
    ),
    Case(
        "labels of a garbage samples.parquet",
        garbage_samples,
        ["labels", "{tmp}/runs/done", "--output", "{tmp}/y.csv"],
        2,
        "samples.parquet is not a readable Parquet file",
    ),
    Case(
        "labels of a samples.parquet without its columns",
        samples_without_columns,
        ["labels", "{tmp}/runs/done", "--output", "{tmp}/y.csv"],
        2,
        "is not a noisylab samples table (it lacks the columns index",
    ),
    Case(
        "labels --folds 1",
        finished_run,
        ["labels", "{tmp}/runs/done", "--folds", "1", "--output", "{tmp}/oof.parquet"],
        2,
        "--folds 1: out-of-fold probabilities need at least 2 folds",
    ),
    Case(
        # 128 digits, about 13 of each class: 50 folds cannot all hold one of each.
        "labels --folds larger than a class",
        finished_run,
        ["labels", "{tmp}/runs/done", "--folds", "50", "--output", "{tmp}/oof.parquet"],
        2,
        "of the stratified folds would hold none of it: use --folds ≤ ",
    ),
    Case(
        "labels --folds with more --jobs than CPUs",
        finished_run,
        ["labels", "{tmp}/runs/done", "--folds", "3", "--jobs", "9999", "--output", "{tmp}/oof.parquet"],
        2,
        "--jobs 9999 would run more fold runs at once than this machine's",
    ),
    Case(
        "labels --folds with an unknown ranking",
        finished_run,
        ["labels", "{tmp}/runs/done", "--folds", "3", "--ranking", "magic", "--output", "{tmp}/oof.parquet"],
        2,
        "--ranking magic: choose one of auto, cleanlab, builtin",
    ),
    Case(
        "labels --jobs without --folds",
        finished_run,
        ["labels", "{tmp}/runs/done", "--jobs", "2", "--output", "{tmp}/y.csv"],
        2,
        "--jobs only apply with --folds K",
    ),
    Case(
        "report --output under a file",
        a_file,
        ["report", "--study", "fmnist_cpu", "--format", "markdown", "--output", "{tmp}/afile/t.md"],
        2,
        "cannot write",
    ),
    # sweeps
    Case("unknown study", None, ["sweep", "nope", "--dry-run"], 2, "unknown study 'nope'"),
    Case(
        "study without the profile",
        None,
        ["sweep", "fmnist_cpu", "--dry-run", "--profile", "tpu"],
        2,
        "has no 'tpu' profile",
    ),
    Case(
        "sweep --set unknown field",
        None,
        ["sweep", "fmnist_cpu", "--dry-run", "--set", "refine.nope=1"],
        2,
        "refine.nope",
    ),
    Case(
        "sweep into s3://",
        None,
        ["sweep", "fmnist_cpu", "--storage", "s3://bucket/studies"],
        2,
        "shared by every node",
    ),
    Case(
        "sweep, unreachable --address",
        None,
        ["sweep", "fmnist_cpu", "--storage", "{tmp}/st", "--address", "127.0.0.1:1"],
        2,
        "cannot reach a Ray cluster at 127.0.0.1:1",
    ),
    Case(
        "sweep --storage is a file",
        a_file,
        ["sweep", "fmnist_cpu", "--storage", "{tmp}/afile"],
        2,
        "is a file, not a folder",
    ),
    Case(
        "sweep --dry-run of a study whose data is missing",
        None,
        ["sweep", "paper_table3", "--profile", "tiny", "--dry-run", "--set", "data.root={tmp}/cifar"],
        2,
        "missing files of 1 of the 1 datasets the trials read: cifar100 ({tmp}/cifar/cifar-100-python/)",
    ),
    Case(
        "sweep of a study whose data is missing",
        None,
        ["sweep", "fmnist_cpu", "--profile", "tiny", "--storage", "{tmp}/st", "--set", "data.root={tmp}/f"],
        2,
        "missing files of 1 of the 1 datasets the trials read: fashion-mnist ({tmp}/f/train-images-idx3",
    ),
    Case(
        "study file with a syntax error",
        study_syntax_error,
        ["sweep", "{tmp}/study.py", "--dry-run"],
        2,
        "study.py:3: syntax error",
    ),
    Case(
        "study file that raises",
        study_that_raises,
        ["sweep", "{tmp}/study.py", "--dry-run"],
        2,
        "study.py:3: the study file raised JSONDecodeError",
    ),
    Case(
        "study named ../x",
        study_named_outside,
        ["sweep", "{tmp}/study.py", "--storage", "{tmp}/st"],
        2,
        "study name '../x' is not a plain name",
    ),
]


def _argv(argv: list[str], tmp: Path, npz: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)).replace("{npz}", str(npz)) for a in argv]


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` and its content hash: equal before and after means nothing changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_case(case: Case, tmp: Path, npz: Path) -> tuple[int, str, str, dict[str, str], dict[str, str]]:
    """(exit code, stderr, all output, files before, files after) of one case in folder `tmp`."""
    if case.setup is not None:
        case.setup(tmp)
    before = snapshot(tmp)
    env = {k: _argv([v], tmp, npz)[0] for k, v in (case.env or {}).items()}
    result = runner.invoke(app, _argv(case.argv, tmp, npz), env=env)
    return result.exit_code, result.stderr, result.output, before, snapshot(tmp)


def shown_line(code: int, stderr: str) -> str:
    """The line a case is about: the `error:` line of a refusal, the `warning:` line of a repaired run."""
    prefix = "warning: " if code == 0 else "error: "
    return next((line for line in stderr.splitlines() if line.startswith(prefix)), "")


def kept(before: dict[str, str], after: dict[str, str]) -> bool:
    """Every file of `before` is still there unchanged, or set aside unchanged as `<name>.bad`."""
    return all(
        after.get(path) == digest or after.get(path + ".bad") == digest for path, digest in before.items()
    )


@pytest.fixture(autouse=True)
def _digits(digits_npz: Path) -> None:
    DIGITS[:] = [digits_npz]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    case: Case, tmp_path: Path, digits_npz: Path
) -> None:
    code, stderr, output, before, after = run_case(case, tmp_path, digits_npz)
    lines = [line for line in stderr.splitlines() if line.strip()]
    message = _argv([case.message], tmp_path, digits_npz)[0]  # `{tmp}` in a message is the case's folder
    assert code == case.code, output
    assert "Traceback" not in output and "weights_only=False" not in output
    if case.code == 0:  # repaired: one warning, no error, nothing lost (a bad entry is kept as .bad)
        warnings = [line for line in lines if line.startswith("warning: ")]
        assert len(warnings) == 1 and message in warnings[0], stderr
        assert not any(line.startswith("error: ") for line in lines), stderr
        assert kept(before, after), "a file changed or vanished"
        return
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0], lines[0]
    assert after == before, "files changed, appeared or vanished"


def test_two_runs_started_together_with_one_name(tmp_path: Path, digits_npz: Path) -> None:
    """Both pass the name check before either writes; exactly one may claim the folder."""
    exe = str(Path(sys.executable).parent / "noisylab")
    args = _argv([*RUN, "--name", "race"], tmp_path, digits_npz)
    first = subprocess.Popen([exe, *args, "--seed", "0"], stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.Popen([exe, *args, "--seed", "1"], stderr=subprocess.PIPE, text=True)
    results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert refused.strip().count("\n") == 0 and refused.startswith("error: "), refused
    assert "another config" in refused or "another process" in refused, refused
    record = json.loads((tmp_path / "runs" / "race" / "config.json").read_text())
    winner = next(i for i, (code, _) in enumerate(results) if code == 0)
    assert record["seed"] == winner  # the folder holds the winner's config, not a mix


def test_full_disk_leaves_no_temporary_file_and_the_run_resumes(
    tmp_path: Path, digits_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import noisylab.train.runtime as runtime

    real_save = torch.save
    calls = {"n": 0}

    def full_after_one(obj: object, f: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: half written, then the disk is full
            f.write(b"x" * 45_000)  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime.torch, "save", full_after_one)
    args = _argv([*RUN, "--name", "full"], tmp_path, digits_npz)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot write")
    assert "the disk is full" in result.stderr and "Traceback" not in result.output
    run = tmp_path / "runs" / "full"
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(runtime.torch, "save", real_save)
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming run 'full'" in again.stderr, again.output


def test_read_only_storage_is_one_line(
    tmp_path: Path, digits_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root writes through chmod, so the file system's answer (EROFS) is simulated at the write."""
    import noisylab.atomic as atomic

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    result = runner.invoke(app, _argv([*RUN, "--name", "ro"], tmp_path, digits_npz))
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot write") and "the file system is read-only" in lines[-1]


def test_ctrl_c_says_where_and_exits_130(
    tmp_path: Path, digits_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import noisylab.train.runtime as runtime
    from noisylab.config.profiles import make_config
    from noisylab.trainables import get_method

    real = runtime.LocalReporter.report
    calls = {"n": 0}

    def interrupt_third(self: runtime.LocalReporter, metrics: dict, payload: dict) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(self, metrics, payload)

    monkeypatch.setattr(runtime.LocalReporter, "report", interrupt_third)
    # Without the pre-training cache: an earlier test's identical pre-training would shift the epochs.
    argv = _argv([*RUN, "--name", "stop", "--no-pretrain-cache"], tmp_path, digits_npz)
    result = runner.invoke(app, argv)
    assert result.exit_code == 130, result.output
    last = result.stderr.strip().splitlines()[-1]
    schedule = get_method("paper").schedule(make_config("tiny", {}))
    step = schedule[2]  # two epochs saved: the third was interrupted
    assert last == (
        f"error: interrupted at {step.place} (2 of {len(schedule)} epochs saved); "
        "run the same command to resume"
    )
    assert "Traceback" not in result.output


def test_labels_replaces_existing_files_only_with_overwrite(tmp_path: Path) -> None:
    """The refusal keeps the file the user never named; --overwrite replaces both files, as --help says."""
    finished_run(tmp_path)
    beside = tmp_path / "y.pred_probs.npy"
    beside.write_text("precious\n")
    args = ["labels", str(tmp_path / "runs" / FINISHED), "--output", str(tmp_path / "y.csv")]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and beside.read_text() == "precious\n"
    assert not (tmp_path / "y.csv").exists()
    done = runner.invoke(app, [*args, "--overwrite"])
    assert done.exit_code == 0, done.output
    assert done.stderr.splitlines() == [f"wrote {tmp_path / 'y.csv'}", f"wrote {beside}"]
    samples = pl.read_parquet(tmp_path / "runs" / FINISHED / "samples.parquet")
    assert np.array_equal(np.load(beside), np.asarray(samples["pred_probs"].to_numpy()))
    assert pl.read_csv(tmp_path / "y.csv")["given_label"].to_list() == samples["given_label"].to_list()
    usage = runner.invoke(app, ["labels", "--help"], env={"COLUMNS": "200"}).stdout
    assert ".pred_probs.npy" in usage and "--overwrite" in usage


def test_ctrl_c_while_the_data_is_prepared_is_one_line(
    tmp_path: Path, digits_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a large set or drawing its noise takes a while: Ctrl-C there says that nothing was lost."""
    import noisylab.runner as runner_module

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_module, "prepare_data", interrupted)
    result = runner.invoke(app, _argv(RUN, tmp_path, digits_npz))
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == (
        "error: interrupted while preparing the data, before the run started (nothing was written): "
        "run the same command to start it"
    )
    assert not list(tmp_path.iterdir())


def test_a_pickled_label_file_is_one_line_in_a_real_terminal(tmp_path: Path, digits_npz: Path) -> None:
    """Under pytest warnings never reach stderr, so the catalogue cannot see torch's two-line pickle
    warning: the installed command, in a process of its own, must print the refusal alone."""
    pickled_label_file(tmp_path)
    exe = str(Path(sys.executable).parent / "noisylab")
    args = _argv([*RUN, "--noise", "file:{tmp}/evil.pt"], tmp_path, digits_npz)
    done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "evil.pt as a torch file" in line
    assert not (tmp_path / "PWNED").exists()
