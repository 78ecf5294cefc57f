"""benchmarks/dividemix_official.py's own parts, none of which needs the official DivideMix checkout:
the synthetic set in CIFAR-10's pickle layout (read back by noisylab's loader and as the official code
reads it), the refusals of a missing or foreign `--official` (exit 2, one line), the in-memory source
rules, the width stand-in for `torch.nn`, the AUC stand-in and the table's ratio."""

from __future__ import annotations

import argparse
import importlib.util
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from noisylab.data.cifar import load_cifar10

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dividemix_official.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dividemix_official", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_synthetic_cifar_is_read_by_noisylab_and_as_the_official_code_reads_it(
    bench: ModuleType, tmp_path: Path
) -> None:
    folder = bench.write_synthetic_cifar(tmp_path, train=1000, test=200, seed=0)
    images, labels = bench.synthetic_set(1000, 200, seed=0)
    ds = load_cifar10(tmp_path)
    assert ds.train.images.shape == (1000, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (200, 3, 32, 32)
    assert torch.equal(ds.train.images, torch.from_numpy(images[:1000]))
    assert torch.equal(ds.test.images, torch.from_numpy(images[1000:]))
    assert ds.train.labels.tolist() == labels[:1000].tolist()
    assert ds.test.labels.tolist() == labels[1000:].tolist()
    assert len(ds.train.class_names) == 10
    assert np.bincount(labels[:1000]).tolist() == [100] * 10  # balanced
    assert np.bincount(labels[1000:]).tolist() == [20] * 10
    # The official loader: plain unpickling (latin1), data_batch_1..5 concatenated, rows reshaped to
    # (N, 3, 32, 32) and transposed to HWC for PIL.
    parts = []
    for i in range(1, 6):
        with (folder / f"data_batch_{i}").open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        assert isinstance(batch["labels"], list) and batch["data"].shape == (200, 3072)
        parts.append(batch["data"])
    hwc = np.concatenate(parts).reshape((1000, 3, 32, 32)).transpose((0, 2, 3, 1))
    assert np.array_equal(hwc, images[:1000].transpose(0, 2, 3, 1))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def _empty(folder: Path) -> None:
    pass


def _blank_files(folder: Path) -> None:
    for name in ("Train_cifar.py", "dataloader_cifar.py", "PreResNet.py"):
        (folder / name).write_text("print('not DivideMix')\n")


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (None, [], "--official PATH is required"),
        (None, ["--official", "{tmp}/absent"], "no such folder"),
        (_empty, ["--official", "{tmp}"], "does not look like the DivideMix checkout"),
        (_blank_files, ["--official", "{tmp}"], "is not the DivideMix code this script knows"),
        (_blank_files, ["--official", "{tmp}", "--divided", "2"], "--divided must be ≥ 3"),
    ],
)
def test_a_missing_or_foreign_official_checkout_exits_2_with_one_line(
    tmp_path: Path, setup: Callable[[Path], None] | None, args: list[str], expected: str
) -> None:
    if setup is not None:
        setup(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*")}
    done = _run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert done.stdout == ""
    assert {p: p.read_bytes() for p in tmp_path.rglob("*")} == before  # the folder is only read


def test_source_rules_replace_the_hard_coded_sizes_or_refuse(bench: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "Train_cifar.py").write_text(
        "warm_up = 10\ndef eval_train():\n    losses = torch.zeros(50000)\ndef create_model(): pass\n"
    )
    (tmp_path / "dataloader_cifar.py").write_text(
        "class cifar_dataloader: pass\nx = a.reshape((50000, 3, 32, 32))\ny = b.reshape((10000, 3, 32, 32))\n"
        "idx = list(range(50000))\nz = 150000\n"
    )
    (tmp_path / "PreResNet.py").write_text("")
    sources = bench.patched_sources(tmp_path, bench.size_rules(1000, 200, 3))
    assert "warm_up = 3" in sources["Train_cifar.py"] and "torch.zeros(1000)" in sources["Train_cifar.py"]
    loader = sources["dataloader_cifar.py"]
    assert "reshape((1000, 3, 32, 32))" in loader and "reshape((200, 3, 32, 32))" in loader
    assert "range(1000)" in loader and "z = 150000" in loader  # whole numbers only
    assert "50000" not in loader.replace("150000", "")
    assert (tmp_path / "Train_cifar.py").read_text().startswith("warm_up = 10")  # the files are untouched
    (tmp_path / "Train_cifar.py").write_text("warm_up = 10\n")
    with pytest.raises(bench.Refused, match="the loss buffer"):
        bench.patched_sources(tmp_path, bench.size_rules(1000, 200, 3))


def test_narrowed_nn_scales_every_channel_count_but_the_image_and_the_classes(bench: ModuleType) -> None:
    narrow = bench.NarrowedNN(16)
    stem = narrow.Conv2d(3, 64, kernel_size=3, padding=1, bias=False)
    assert (stem.in_channels, stem.out_channels, stem.padding) == (3, 16, (1, 1))
    down = narrow.Conv2d(128, 256, kernel_size=1, stride=2)
    assert (down.in_channels, down.out_channels, down.stride) == (32, 64, (2, 2))
    assert narrow.BatchNorm2d(512).num_features == 128
    head = narrow.Linear(512, 10)
    assert (head.in_features, head.out_features) == (128, 10)
    assert narrow.Sequential is nn.Sequential and narrow.Module is nn.Module
    full = bench.NarrowedNN(64)
    assert full.Conv2d(64, 128, 3).out_channels == 128


def test_auc_stand_in_matches_scikit_learn(bench: ModuleType) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    target = rng.random(300) < 0.4
    scores = np.round(rng.random(300) + 0.3 * target, 1)  # ties on purpose
    meter = bench.AUCMeter()
    meter.add(scores[:100], target[:100])
    meter.add(scores[100:], target[100:])
    assert meter.value()[0] == pytest.approx(roc_auc_score(target, scores))
    meter.reset()
    meter.add(scores, np.ones(300, dtype=bool))
    assert np.isnan(meter.value()[0])


def test_epoch_table_gives_the_ratio_of_the_divided_medians(bench: ModuleType) -> None:
    official, ours = bench.Side(), bench.Side()
    for phase, o, m in [("warm-up", 9.0, 5.0), ("warm-up", 2.0, 1.0), ("warm-up", 2.0, 1.0)] + [
        ("divided", s, s / 2) for s in (10.0, 12.0, 11.0, 50.0)
    ]:
        official.epochs.append(bench.Epoch(phase, o, 500.0 if phase == "divided" else None, 60.0))
        ours.epochs.append(bench.Epoch(phase, m, 450.0 if phase == "divided" else None, 61.5))
    args = argparse.Namespace(images=1000)
    text = bench.epoch_table(official, ours, args)
    assert "| median | divided epochs | 11.50 | 5.75 | | | ratio noisylab / official | **0.50** |" in text
    assert "| median | warm-up epochs 2+ | 2.00 | 1.00 |" in text  # the first warm-up epoch left out
    assert "| 4 | divided | 10.00 | 5.00 | 60.0 | 61.5 | 50 % | 45 % |" in text


def _side(bench: ModuleType, seconds: list[float], accs: list[float]) -> Any:
    return bench.Side(epochs=[bench.Epoch("divided", s, None, a) for s, a in zip(seconds, accs, strict=True)])


def test_parity_is_judged_on_the_final_accuracy_and_the_time_to_the_official_final(bench: ModuleType) -> None:
    """The official ends at 70 %; noisylab first reaches 70 % at its epoch 3 after 6 s, the official at its
    epoch 4 after 40 s (its own final, first reached there): time share 0.15; final 69 % is within 2."""
    official = _side(bench, [10, 10, 10, 10], [50.0, 60.0, 65.0, 70.0])
    ours = _side(bench, [2, 2, 2, 2], [55.0, 66.0, 71.0, 69.0])
    assert official.reaches(70.0) == (4, 40.0) and ours.reaches(70.0) == (3, 6.0)
    assert ours.reaches(99.0) is None and ours.best() == (71.0, 3)
    ce = bench.CrossEntropy(final=40.0, best=52.0, best_epoch=2, last_loss=0.1)
    results = [bench.SeedResult(0, official, ours, ce)]
    lines = bench.verdict(results)
    assert "noisylab − official -1.00 points [ok" in lines[0]
    assert "median over seeds: 0.15 (0.15) [ok" in lines[1]
    assert "last training loss 0.100" in lines[2]
    table = bench.parity_table(results)
    assert "| 0 | noisylab DivideMix | 69.00 | 71.00 (3) | 3 | 6 | 8 | |" in table
    assert "| 0 | official DivideMix | 70.00 | 70.00 (4) | 4 | 40 | 40 | |" in table
    # A side that never reaches the official's final fails the time target, and a gap over 2 points fails.
    slow = _side(bench, [1, 1, 1, 1], [10.0, 20.0, 30.0, 60.0])
    lines = bench.verdict([bench.SeedResult(0, official, slow, None)])
    assert "[FAILS" in lines[0] and "inf" in lines[1] and "[FAILS" in lines[1] and len(lines) == 2


def test_official_test_log_is_read_in_epoch_order(bench: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "acc.txt"
    log.write_text("Epoch:0   Accuracy:10.50\nEpoch:2   Accuracy:30.00\nEpoch:1   Accuracy:20.25\n")
    assert bench.official_accuracies(log) == [10.5, 20.25, 30.0]


def test_crop_rule_leaves_the_official_flip_only(bench: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "Train_cifar.py").write_text(
        "warm_up = 10\ndef eval_train():\n    losses = torch.zeros(50000)\ndef create_model(): pass\n"
    )
    (tmp_path / "dataloader_cifar.py").write_text(
        "class cifar_dataloader: pass\nt = transforms.Compose([\n"
        "        transforms.RandomCrop(32, padding=4),\n        transforms.RandomHorizontalFlip(),\n"
        "])\nx = a.reshape((50000, 3, 32, 32))\ny = b.reshape((10000, 3, 32, 32))\n"
    )
    (tmp_path / "PreResNet.py").write_text("")
    rules = bench.size_rules(1000, 200, 3) + bench.crop_rules()
    loader = bench.patched_sources(tmp_path, rules)["dataloader_cifar.py"]
    assert "RandomCrop" not in loader and "transforms.RandomHorizontalFlip()" in loader
    (tmp_path / "dataloader_cifar.py").write_text("class cifar_dataloader: pass\nx = 50000\ny = 10000\n")
    with pytest.raises(bench.Refused, match="RandomCrop"):
        bench.patched_sources(tmp_path, rules)


def test_fashion_mnist_set_is_padded_to_cifar_shape_in_three_identical_channels(bench: ModuleType) -> None:
    images, labels, names = bench.fashion_mnist_set(50, 20)
    assert images.shape == (70, 3, 32, 32) and images.dtype == np.uint8 and len(names) == 10
    assert np.array_equal(images[:, 0], images[:, 1]) and np.array_equal(images[:, 0], images[:, 2])
    assert not images[:, :, :2].any() and not images[:, :, :, -2:].any()  # the 2-pixel black border
    assert np.bincount(labels[:50]).tolist() == [5] * 10 and np.bincount(labels[50:]).tolist() == [2] * 10


def test_a_seed_measured_before_is_read_back_only_with_the_same_settings(
    bench: ModuleType, tmp_path: Path
) -> None:
    args = bench.parse_args(["--official", str(tmp_path)])
    official = _side(bench, [10, 10, 10], [50.0, 60.0, 70.0])
    ours = _side(bench, [2, 2, 2], [55.0, 66.0, 71.0])
    ce = bench.CrossEntropy(final=40.0, best=52.0, best_epoch=2, last_loss=0.1)
    result = bench.SeedResult(1, official, ours, ce)
    path = tmp_path / bench.RESULT_FILE
    bench.save_result(path, result, args)
    assert bench.load_result(path, args) == result
    assert bench.load_result(path, bench.parse_args(["--official", str(tmp_path), "--width", "8"])) is None
    no_ce = bench.SeedResult(1, official, ours, None)
    bench.save_result(path, no_ce, bench.parse_args(["--official", str(tmp_path), "--no-ce"]))
    assert bench.load_result(path, args) is None  # CE asked for but never measured: measure again
    path.write_text("{half a fi")
    assert bench.load_result(path, args) is None
