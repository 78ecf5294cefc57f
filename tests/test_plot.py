"""Figures: accuracy against noise rate per dataset, selection precision for pipeline runs; real PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from record_factory import iteration, make_record, stage, write_run
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.results.plots import _mean_curve, plot_records, supervised_curve

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def _records() -> list[dict[str, object]]:
    """cifar10: ce and the pipeline (with stages) at two rates, two seeds; fashion-mnist: ce only."""
    out = []
    for noise in ("idn:0.2", "idn:0.5"):
        for seed in (0, 1):
            out.append(make_record(method="ce", noise=noise, seed=seed, test_acc=0.7 - 0.1 * seed))
            out.append(
                make_record(
                    method="paper",
                    noise=noise,
                    seed=seed,
                    test_acc=0.8,
                    stages=[stage(1, 1, 0.9), stage(1, 2, 0.92), stage(2, 1, 0.95)],
                    iterations=[iteration(1, 0.9, 0.75), iteration(2, 0.93, 0.8)],
                )
            )
    out.append(make_record(method="ce", dataset="fashion-mnist", noise="idn:0.3"))
    return out


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG and len(data) > 5_000


def test_figures_per_dataset(tmp_path: Path) -> None:
    written = plot_records(pl.DataFrame(_records()), tmp_path / "fig")
    names = sorted(p.name for p in written)
    # No selection figure for fashion-mnist: its only run is a baseline without stages.
    assert names == ["accuracy-cifar10.png", "accuracy-fashion-mnist.png", "selection-cifar10.png"]
    assert all(_is_png(p) for p in written)
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == names  # no temporary files left


def test_plot_command(tmp_path: Path) -> None:
    for record in _records():
        write_run(tmp_path / "runs", record)
    out = tmp_path / "figures" / "nested"
    result = runner.invoke(app, ["plot", str(tmp_path / "runs"), "--out", str(out), "--metric", "f1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy-cifar10.png",
        "accuracy-fashion-mnist.png",
        "selection-cifar10.png",
    ]
    assert all(_is_png(p) for p in out.iterdir())
    assert str(out / "accuracy-cifar10.png") in result.stdout


def test_plot_refuses_a_file_as_folder(tmp_path: Path) -> None:
    write_run(tmp_path / "runs", make_record())
    (tmp_path / "taken").write_text("x")
    result = runner.invoke(app, ["plot", str(tmp_path / "runs"), "--out", str(tmp_path / "taken")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "is a file" in result.stderr
    assert (tmp_path / "taken").read_text() == "x"
    result = runner.invoke(
        app, ["plot", str(tmp_path / "runs"), "--out", str(tmp_path / "f"), "--study", "nope"]
    )
    assert result.exit_code == 2 and "no records of study 'nope'" in result.stderr


def test_a_stage_that_selected_nothing_is_a_gap_not_a_crash(tmp_path: Path) -> None:
    empty = stage(1, 2, 0.0, recall=0.0, size=0.0) | {"selected_precision": None}
    record = make_record(
        stages=[stage(1, 1, 0.9), empty, stage(2, 1, 0.95)],
        iterations=[iteration(1, 0.9, 0.75), iteration(2, 0.93, 0.8)],
    )
    written = plot_records(pl.DataFrame([record, record | {"run_id": "other", "seed": 1}]), tmp_path)
    assert sorted(p.name for p in written) == ["accuracy-cifar10.png", "selection-cifar10.png"]


def test_pdf_and_svg_with_runs_counted_in_the_legend(tmp_path: Path) -> None:
    records = pl.DataFrame(_records())
    (pdf,) = [
        p for p in plot_records(records, tmp_path / "pdf", fmt="pdf") if p.name.startswith("accuracy-c")
    ]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    svgs = plot_records(records, tmp_path / "svg", fmt="svg")
    text = next(p for p in svgs if p.name == "accuracy-cifar10.svg").read_text()
    assert "<svg" in text and "n=2" in text and "instance-dependent" in text


def test_configurations_are_separate_lines(tmp_path: Path) -> None:
    from noisylab.results.plots import accuracy_figure
    from noisylab.results.report import cells

    records = [make_record(seed=s, test_acc=0.5) for s in (0, 1)]
    records.append(make_record(seed=0, test_acc=0.9, config={"refine.threshold": 0.5}))
    fig = accuracy_figure(cells(pl.DataFrame(records)), "cifar10", "acc")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["paper / defaults (n=2)", "paper / refine.threshold=0.5 (n=1)"]


def test_epoch_line_says_dash_for_an_empty_selection() -> None:
    from noisylab.results.live import describe

    line = describe(
        {
            "train_loss": 1.0,
            "images_per_s": 10.0,
            "stage": 1,
            "selected_size": 0,
            "selected_precision": float("nan"),
        }
    )
    assert "selected 0 (labels right -)" in line and "nan" not in line


def _epochs(losses: list[float], accs: list[float], *, pretrain: int = 0) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"step": i, "phase": "pretrain", "epoch": i + 1, "train_loss": 5.0} for i in range(pretrain)
    ]
    for i, (loss, acc) in enumerate(zip(losses, accs, strict=True)):
        rows.append(
            {"step": pretrain + i, "phase": "train", "epoch": i + 1, "train_loss": loss, "test_acc": acc}
        )
    return rows


def test_training_curves_leave_out_pre_training_and_average_over_seeds(tmp_path: Path) -> None:
    history = _epochs([2.0, 1.0, 0.2], [0.30, 0.50, 0.40], pretrain=2)
    assert supervised_curve(json.dumps(history)) == [(2.0, 30.0), (1.0, 50.0), (0.2, 40.0)]
    assert supervised_curve("not json") == [] and supervised_curve(None) == []
    runs = [[(2.0, 30.0), (1.0, 50.0)], [(1.0, 40.0), (0.5, None), (0.1, 20.0)]]
    epochs, means, stds = _mean_curve(runs, 1)  # accuracy: epoch 2 has one value, epoch 3 one run
    assert epochs == [1, 2, 3] and means == [35.0, 50.0, 20.0]
    assert stds[0] == pytest.approx(7.0711, abs=1e-3) and stds[1:] == [0.0, 0.0]
    # A curves figure for the runs with a history, beside the accuracy figure; `--method` keeps one method.
    for seed in (0, 1):
        record = make_record(
            method="ce",
            dataset="fashion-mnist",
            noise="idn:0.5",
            seed=seed,
            history=_epochs([2.0, 0.5, 0.1], [0.3, 0.45, 0.4]),
        )
        write_run(tmp_path / "runs", record)
    write_run(tmp_path / "runs", make_record(method="paper", dataset="fashion-mnist", noise="idn:0.5"))
    out = tmp_path / "figures"
    result = runner.invoke(app, ["plot", str(tmp_path / "runs"), "--method", "ce", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["accuracy-fashion-mnist.png", "curves-fashion-mnist.png"]
    assert _is_png(out / "curves-fashion-mnist.png")
    result = runner.invoke(app, ["plot", str(tmp_path / "runs"), "--method", "lsl", "--out", str(out)])
    assert result.exit_code == 2 and "no records of method lsl" in result.output
