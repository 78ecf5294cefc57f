"""`--vs-paper` compares like with like, and every table and figure names the budget its runs had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from record_factory import make_record, write_run
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.config.diff import with_config_columns
from noisylab.results.plots import accuracy_figure, curves_figure
from noisylab.results.published import load_published
from noisylab.results.report import budget, cells, report_tables, vs_paper
from noisylab.results.tables import render_text
from noisylab.sweeps import get_study

runner = CliRunner()
PUBLISHED_CE_CIFAR10_IDN20 = 75.81  # Report Table II


def record(profile: str, num_train: int, **kwargs: Any) -> dict[str, Any]:
    """A ce run on CIFAR-10 IDN 20 % under `profile`, trained on `num_train` images."""
    return make_record(method="ce", dataset="cifar10", noise="idn:0.2", profile=profile, **kwargs) | {
        "num_train": num_train
    }


def ce_row(table: pl.DataFrame, profile: str) -> dict[str, Any]:
    (row,) = table.filter((pl.col("method") == "ce") & (pl.col("profile") == profile)).iter_rows(named=True)
    return row


def test_a_run_at_another_scale_is_shown_beside_the_published_cell_without_a_gap() -> None:
    records = pl.DataFrame(
        [
            record("tiny", 128, seed=0, test_acc=0.20),
            record("gpu", 50_000, seed=0, test_acc=0.80),
            # the report's recipe on a subset is not the published scale either
            record("gpu", 5_000, seed=0, test_acc=0.70, config={"data.train_subset": 5000}),
        ]
    )
    table = vs_paper(cells(records), load_published())
    tiny = ce_row(table, "tiny")
    assert tiny["mean_pct"] == pytest.approx(20.0) and tiny["published_pct"] == PUBLISHED_CE_CIFAR10_IDN20
    assert tiny["diff_pct"] is None and tiny["num_train"] == 128  # beside it, budget shown, no gap
    full, subset = (
        table.filter((pl.col("method") == "ce") & (pl.col("num_train") == n)) for n in (50_000, 5_000)
    )
    assert full["diff_pct"].to_list() == [pytest.approx(80.0 - PUBLISHED_CE_CIFAR10_IDN20)]
    assert subset["diff_pct"].to_list() == [None] and subset["published_pct"].to_list() == [75.81]
    (comparison,) = report_tables(records, published=load_published())
    (why,) = [note for note in comparison.notes if note.startswith("gap left empty")]
    assert why.startswith("gap left empty for 2 cells: their runs trained with profiles gpu (5,000 training")
    assert "tiny (128 training images)" in why and "profile gpu" in why


def test_the_terminal_says_how_many_planned_cells_are_measured_and_why_gaps_are_empty(tmp_path: Path) -> None:
    write_run(tmp_path, record("tiny", 128, seed=0, test_acc=0.2, study="paper_table2"))
    result = runner.invoke(app, ["report", str(tmp_path), "--study", "paper_table2", "--vs-paper"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    planned = len(get_study("paper_table2").grid["method"]) * 2 * 3
    assert f"0 of {planned} planned cells measured, and 1 measured cells outside the plan" in lines
    assert any(
        line.startswith("gap left empty for 1 cells: their runs trained with profile tiny") for line in lines
    )
    assert lines[0].endswith("; profile tiny, 128 training images")
    as_csv = runner.invoke(app, ["report", str(tmp_path), "--vs-paper", "--format", "csv"])
    assert as_csv.exit_code == 0 and "note: gap left empty for 1 cells" in as_csv.stderr
    assert "gap left empty" not in as_csv.stdout  # the data file is data
    gaps = pl.read_csv(as_csv.stdout.encode()).filter(pl.col("n") > 0)["diff_pct"]
    assert gaps.null_count() == gaps.len()


def test_a_planned_cell_with_runs_counts_as_measured(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_run(tmp_path, make_record(method="ce", dataset="fashion-mnist", noise="idn:0.3", seed=seed,
                                        profile="cpu-small", study="fmnist_cpu"))  # fmt: skip
    tables = runner.invoke(app, ["report", str(tmp_path), "--study", "fmnist_cpu", "--vs-paper"]).stdout
    assert "1 of 2 planned cells measured" in tables.splitlines()


def test_published_f1_under_accuracy_says_why_its_cells_are_empty() -> None:
    medical = get_study("medical")
    (acc,) = report_tables(None, study=medical, published=load_published())
    (why,) = [note for note in acc.notes if "publish" in note]
    assert why == (
        "Report Table IV, Report Table V publish macro-F1 for chest-xray, chaoyang, not accuracy: their "
        "published cells are '-' under --metric acc; pass --metric f1 to compare them"
    )
    assert acc.frame["published_pct"].null_count() == acc.frame.height
    (f1,) = report_tables(None, study=medical, published=load_published(), metric="f1")
    assert not [note for note in f1.notes if "publish" in note]
    assert f1.frame["published_pct"].is_not_null().sum() == 12 + 8
    (best,) = report_tables(None, study=medical, published=load_published(), metric="f1_best")
    assert not [note for note in best.notes if "publish" in note]  # f1_best is set beside published F1


def test_captions_name_the_profile_and_the_training_set_size() -> None:
    records = pl.DataFrame(
        [record("cpu-small", 1500, seed=s, test_acc=0.6) for s in (0, 1)]
        + [record("tiny", 128, seed=0, test_acc=0.3)]
    )
    both = "profiles cpu-small (1,500 training images) and tiny (128 training images)"
    assert budget(cells(records)) == both
    tables = report_tables(records, table="all")
    assert all(t.title.endswith(both) for t in tables), [t.title for t in tables]
    latex = render_text(report_tables(records), "latex")
    assert r"\caption{test accuracy \% (mean $\pm$ std over seeds, n runs); profiles cpu-small" in latex
    assert render_text(report_tables(records), "markdown").splitlines()[0].endswith(both)
    planned = report_tables(None, study=get_study("paper_table2"), profile="cpu")
    assert planned[0].title.endswith("profile cpu, 4,000 training images")
    assert report_tables(None, study=get_study("paper_table2"))[0].title.endswith(
        "profile gpu, the whole training set"
    )


def test_figures_name_the_budget() -> None:
    records = pl.DataFrame(
        [
            record(
                "tiny",
                128,
                seed=s,
                test_acc=0.3,
                history=[{"phase": "train", "train_loss": 1.0, "test_acc": 0.3}],
            )
            for s in (0, 1)
        ]
    )
    fig = accuracy_figure(cells(records), "cifar10", "acc")
    assert fig.axes[0].get_title().endswith("\nprofile tiny, 128 training images")
    curves = curves_figure(with_config_columns(records), "cifar10")
    assert curves is not None
    assert curves._suptitle is not None and curves._suptitle.get_text() == "profile tiny, 128 training images"
