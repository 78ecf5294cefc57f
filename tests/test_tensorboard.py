"""`--logger tensorboard` on a run without Tune: tags by meaning, the steps of metrics.jsonl, and the
hyper-parameters of the sections the method reads; the event file read back as TensorBoard would."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.results.live import METRICS_FILE, read_metrics
from noisylab.results.tensorboard import read_hparams, read_scalars, scalars, tag

runner = CliRunner()
TINY = ["--profile", "tiny", "--workers", "0", "--no-progress", "--set", "data.crop_padding=1"]


def logged_run(npz: Path, storage: Path, method: str) -> Path:
    args = [
        "run",
        "--dataset",
        "npz",
        "--data-root",
        str(npz),
        "--storage",
        str(storage),
        "--noise",
        "sym:0.2",
    ]
    result = runner.invoke(
        app, [*args, "--method", method, *TINY, "--logger", "tensorboard", "--no-pretrain-cache"]
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = storage.iterdir()
    return run_dir


def test_a_pipeline_run_reads_like_tensorboard(digits_npz: Path, tmp_path: Path) -> None:
    run_dir = logged_run(digits_npz, tmp_path, "paper")
    (events,) = run_dir.glob("events.out.tfevents.*")
    points = read_scalars(events)
    tags = {t for t, _, _ in points}
    assert {"train/loss", "test/acc", "test/f1", "selection/size", "consensus/size", "labels/acc"} <= tags
    assert {f"test/class_acc/{c}" for c in range(10)} <= tags  # the digits' classes, one tag each
    assert not [t for t in tags if t.startswith("ray/")]
    epochs = read_metrics(run_dir / METRICS_FILE)
    assert sorted({s for t, s, _ in points if t == "train/loss"}) == [row["step"] for row in epochs]
    losses = {s: v for t, s, v in points if t == "train/loss"}  # float32 in the file
    assert all(abs(losses[row["step"]] - row["train_loss"]) < 1e-5 for row in epochs)
    tested = [row for row in epochs if row.get("test_acc") is not None]
    assert [s for t, s, _ in points if t == "test/acc"] == [row["step"] for row in tested]
    hparams = read_hparams(events)
    sections = {k.split(".")[0] for k in hparams if "." in k}
    assert sections == {"data", "model", "pretrain", "warmup", "refine", "loss"}
    assert hparams["refine.threshold"] == 1.0 and hparams["method"] == "paper"
    assert hparams["refine.epochs"] == json.dumps([2, 2])  # lists as JSON text
    assert len(hparams) < 95


def test_a_baseline_lists_its_own_sections(digits_npz: Path, tmp_path: Path) -> None:
    run_dir = logged_run(digits_npz, tmp_path, "dividemix")
    (events,) = run_dir.glob("events.out.tfevents.*")
    sections = {k.split(".")[0] for k in read_hparams(events) if "." in k}
    assert sections == {"data", "model", "baseline", "dividemix"}
    tags = {t for t, _, _ in read_scalars(events)}
    assert {"test/acc_net1", "test/acc_net2", "train/loss_x", "dividemix/lambda_u"} <= tags


def test_tags_by_meaning() -> None:
    assert tag("train_loss", "paper") == "train/loss"
    assert tag("selected_precision", "paper") == "selection/precision"
    assert tag("consensus_label_precision", "paper") == "consensus/label_precision"
    assert tag("current_label_acc", "selfie") == "labels/current_label_acc"
    assert tag("weight_mean", "mentornet") == "mentornet/weight_mean"
    epoch = {"step": 3, "test_acc": 0.5, "selected_precision": None, "test_class_acc": [0.1, 0.9]}
    shown = scalars(epoch, "paper", ("cat", "dog"))
    assert shown == {"test/acc": 0.5, "test/class_acc/cat": 0.1, "test/class_acc/dog": 0.9}
