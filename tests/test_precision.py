"""The GPU switches, exercised on the CPU: autocast precision (bf16, fp16 with loss scaling), the
channels-last layout and torch.compile, for a one-network and a two-network method.

Each switch must train to the accuracy band of fp32, and a crashed run must resume to exactly the
uninterrupted run of the same precision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import FIRST_BATCH, digits_config, digits_context
from torch import Tensor

from noisylab.data.augment import Augmenter
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train.engine import BatchOut, BatchPlace, Step, World, autocast, train_epoch
from noisylab.train.runtime import STATE_FILE, load_payload

# 600 digits, 6 epochs: ce reaches ~70 % test accuracy in fp32, far above chance (10 %).
BUDGET: dict[str, Any] = {
    "data.train_subset": 600,
    "baseline.epochs": 6,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "coteaching.gradual_epochs": 2,
}
SWITCHES: dict[str, dict[str, Any]] = {
    "bf16": {"precision": "bf16"},
    "fp16": {"precision": "fp16"},
    "channels_last": {"model.channels_last": True},
    "bf16_channels_last": {"precision": "bf16", "model.channels_last": True},
}
BAND = 0.12  # test accuracy within 12 points of fp32 (300 test digits: ±2.6 points of sampling noise)
TIMING = {"seconds", "images_per_s"}


def _run(digits_npz: Path, storage: Path, method: str, **switch: Any) -> dict[str, Any]:
    cfg = digits_config(digits_npz, method=method, **(BUDGET | switch))
    return execute(cfg, storage=storage, use_ray=False, progress=False).record


@pytest.fixture(scope="module")
def fp32(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    storage = tmp_path_factory.mktemp("fp32")
    return {m: _run(digits_npz, storage, m) for m in ("ce", "coteaching")}


# Every switch on the one-network method; on the two-network one, fp16 (a loss scale shared by two
# networks' steps) and bf16 with channels-last (both other switches at once): the two runs of each
# switch alone there added ~20 % to this file's time and nothing the combined run does not exercise.
CASES = [("ce", switch) for switch in SWITCHES] + [
    ("coteaching", "fp16"),
    ("coteaching", "bf16_channels_last"),
]


@pytest.mark.parametrize(("method", "switch"), CASES)
def test_each_switch_trains_to_the_accuracy_of_fp32(
    fp32: dict[str, dict[str, Any]], digits_npz: Path, tmp_path: Path, method: str, switch: str
) -> None:
    record = _run(digits_npz, tmp_path, method, **SWITCHES[switch])
    reference = fp32[method]["test_acc"]
    assert reference > 0.4  # the band means something only when fp32 learns
    assert abs(record["test_acc"] - reference) <= BAND, (record["test_acc"], reference)
    history = json.loads(record["history_json"])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    config = json.loads(record["config_json"])  # the record says which switches made it
    assert config["precision"] == SWITCHES[switch].get("precision", "fp32")
    assert config["model"]["channels_last"] == SWITCHES[switch].get("model.channels_last", False)


@pytest.mark.slow
def test_compiled_network_trains_to_the_accuracy_of_fp32(
    fp32: dict[str, dict[str, Any]], digits_npz: Path, tmp_path: Path
) -> None:
    record = _run(digits_npz, tmp_path, "ce", **{"model.compile": True})
    assert abs(record["test_acc"] - fp32["ce"]["test_acc"]) <= BAND


def test_compiling_a_two_network_method_is_refused_before_anything_is_written(
    digits_npz: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match=r"model\.compile is not supported for coteaching"):
        _run(digits_npz, tmp_path, "coteaching", **{"model.compile": True})
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_crashed_run_resumes_exactly_within_its_precision(
    digits_npz: Path, tmp_path: Path, precision: str
) -> None:
    cfg = digits_config(digits_npz, method="ce", **(BUDGET | {"precision": precision, "baseline.epochs": 4}))
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=2)
    run_dir = next((tmp_path / "b").iterdir())
    saved = load_payload(run_dir / STATE_FILE)
    if precision == "fp16":  # the loss scale travels in the checkpoint
        assert saved["scaler"] is not None and saved["scaler"]["scale"] > 0
    else:
        assert saved["scaler"] is None
    resumed = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert resumed.resumed

    def comparable(record: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(record["history_json"])]

    assert comparable(resumed.record) == comparable(whole)
    assert resumed.record["test_acc"] == whole["test_acc"]


def test_bf16_differs_from_fp32_so_the_switch_is_live(digits_npz: Path, tmp_path: Path) -> None:
    cfg = dict(BUDGET, **{"baseline.epochs": 1})
    runs = [
        execute(
            digits_config(digits_npz, method="ce", **(cfg | {"precision": p})),
            storage=tmp_path / p,
            use_ray=False,
            progress=False,
        ).record
        for p in ("fp32", "bf16")
    ]
    losses = [json.loads(r["history_json"])[0]["train_loss"] for r in runs]
    assert losses[0] != losses[1] and losses[1] == pytest.approx(losses[0], rel=0.05)


def test_the_engine_runs_the_batch_under_autocast_and_scales_fp16_gradients() -> None:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.arange(8) % 3
    dtypes: list[torch.dtype] = []

    def batch_fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        logits = model(x[idx])
        dtypes.append(logits.dtype)
        return BatchOut(torch.nn.functional.cross_entropy(logits, y[idx]), len(idx))

    step = Step("train", 1, 1, 0.1, 0.0)
    for precision, scaler in (("bf16", None), ("fp16", torch.amp.GradScaler("cpu", init_scale=1024.0))):
        before = model.weight.detach().clone()
        stats = train_epoch(
            model, optimizer, torch.arange(8), step=step, batch_size=4, batch_fn=batch_fn,
            generator=torch.Generator(), precision=precision, scaler=scaler,
        )  # fmt: skip
        assert stats.batches == 2 and torch.isfinite(torch.tensor(stats.loss))
        assert not torch.equal(model.weight, before)  # unscaled steps: a 1024× step would blow up
        assert model.weight.dtype == torch.float32  # weights stay fp32
        assert float((model.weight.detach() - before).abs().max()) < 1.0
    assert dtypes == [torch.bfloat16] * 2 + [torch.float16] * 2
    with autocast(torch.device("cpu"), "fp32"):
        assert model(x).dtype == torch.float32


def test_channels_last_batches_hold_the_same_values_in_nhwc_order() -> None:
    images = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8)
    plain = Augmenter.for_images(images)
    nhwc = Augmenter.for_images(images, channels_last=True)
    for name in ("plain", "weak", "simclr"):
        if name == "plain":
            a, b = plain.plain(images), nhwc.plain(images)
        else:
            a = getattr(plain, name)(images, torch.Generator().manual_seed(0))
            b = getattr(nhwc, name)(images, torch.Generator().manual_seed(0))
        assert torch.equal(a, b)
        assert b.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous(
            memory_format=torch.channels_last
        )


def test_the_worker_lays_out_the_network_and_batches_as_configured(digits_npz: Path) -> None:
    ctx = digits_context(digits_config(digits_npz, **{"model.channels_last": True, "precision": "fp16"}))
    conv = next(m for m in ctx.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert ctx.world.precision == "fp16" and ctx.scaler is not None
    assert ctx.augmenter.channels_last
    plain = digits_context(digits_config(digits_npz))
    assert plain.world.precision == "fp32" and plain.scaler is None and plain.model is plain.net
    assert FIRST_BATCH.index == 0 and World().precision == "fp32"
