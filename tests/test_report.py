"""Report tables from planted records: pivot statistics, best configuration, diagnostics, time, the
comparison with published numbers, the planned grid, and every output format."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from record_factory import iteration, make_record, stage, write_run
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.config.diff import with_config_columns
from noisylab.config.run import RunConfig, unresolved
from noisylab.errors import UserError
from noisylab.results.published import load_published
from noisylab.results.report import (
    best_configs,
    cells,
    pivot,
    refinement_table,
    report_tables,
    selection_table,
    time_table,
    vs_paper,
)
from noisylab.results.tables import Titled, to_latex, to_markdown, write_tables
from noisylab.sweeps import get_study

runner = CliRunner()


def frame(records: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(records)


def grid_records() -> list[dict[str, object]]:
    """ce and paper on two datasets × two IDN rates, three seeds; paper misses cifar100 IDN 50 %."""
    out = []
    accs = {"ce": (0.80, 0.82, 0.84), "paper": (0.90, 0.91, 0.95)}
    for dataset in ("cifar10", "cifar100"):
        for noise in ("idn:0.2", "idn:0.5"):
            for method, values in accs.items():
                if method == "paper" and dataset == "cifar100" and noise == "idn:0.5":
                    continue
                for seed, acc in enumerate(values):
                    out.append(
                        make_record(
                            method=method,
                            dataset=dataset,
                            noise=noise,
                            seed=seed,
                            test_acc=acc,
                            test_f1=acc / 2,
                        )
                    )
    return out


# ------------------------------------------------------------------------------------------- pivot


def test_cells_mean_std_and_n() -> None:
    table = cells(frame(grid_records()))
    ce = table.filter(
        (pl.col("method") == "ce") & (pl.col("dataset") == "cifar10") & (pl.col("noise_rate") == 0.2)
    )
    assert ce["n"].to_list() == [3]
    assert ce["mean_pct"][0] == pytest.approx(82.0)
    assert ce["std_pct"][0] == pytest.approx(2.0)  # sample std of 80, 82, 84
    f1 = cells(frame(grid_records()), "f1").filter(pl.col("method") == "paper")
    assert f1["mean_pct"][0] == pytest.approx(100 * (0.90 + 0.91 + 0.95) / 3 / 2)


def test_pivot_layout_and_cells() -> None:
    table = pivot(cells(frame(grid_records())), method_order=["paper", "ce"])
    assert table.columns == [
        "method",
        "cifar10 IDN 20%",
        "cifar10 IDN 50%",
        "cifar100 IDN 20%",
        "cifar100 IDN 50%",
    ]
    assert table["method"].to_list() == ["paper", "ce"]
    ce = table.row(1, named=True)
    assert ce["cifar10 IDN 20%"] == "82.00 ± 2.00 (n=3)"
    paper = table.row(0, named=True)
    assert paper["cifar100 IDN 50%"] is None  # nothing ran there
    assert paper["cifar10 IDN 50%"].startswith("92.00 ± 2.65")


def test_pivot_splits_rows_by_model_only_when_several() -> None:
    records = [
        make_record(method="paper", model=m, seed=s, test_acc=a)
        for m, a in (("resnet18", 0.6), ("resnet34", 0.7))
        for s in (0, 1)
    ]
    table = pivot(cells(frame(records)))
    assert table.columns[:2] == ["method", "model"]
    assert table["cifar10 IDN 20%"].to_list() == ["60.00 ± 0.00 (n=2)", "70.00 ± 0.00 (n=2)"]
    single = pivot(cells(frame(records[:2])))
    assert "model" not in single.columns
    assert single["cifar10 IDN 20%"].to_list() == ["60.00 ± 0.00 (n=2)"]


def test_one_seed_has_no_std() -> None:
    table = pivot(cells(frame([make_record(test_acc=0.5)])))
    assert table["cifar10 IDN 20%"].to_list() == ["50.00 (n=1)"]


# ------------------------------------------------------------------------------------------- best


def test_best_method_per_cell_of_a_plain_grid() -> None:
    records = [
        make_record(
            method=m,
            noise=noise,
            seed=s,
            test_acc=acc + 0.01 * s,
            study="paper_table2",
            params={"method": m, "data.dataset": "cifar10", "data.noise": noise, "seed": s},
        )
        for noise, planted in (("idn:0.2", "paper"), ("idn:0.5", "ce"))
        for m in ("ce", "paper", "mixup")
        for s in (0, 1)
        for acc in [0.7 if m == planted else 0.5]
    ]
    best = best_configs(frame(records))
    assert best["noise"].to_list() == ["IDN 20%", "IDN 50%"]
    assert best["best"].to_list() == ["method=paper", "method=ce"]
    assert best["mean"].to_list() == pytest.approx([70.5, 70.5])
    assert best["configs"].to_list() == [3, 3]
    assert best["margin"].to_list() == pytest.approx([20.0, 20.0])
    assert best["metric"].to_list() == ["test_acc (max)"] * 2


def test_best_configuration_of_a_search_groups_seeds() -> None:
    planted = {"refine.threshold": 0.75, "refine.lrs": [0.001, 0.0001]}
    others = [
        {"refine.threshold": 1.25, "refine.lrs": [0.001, 0.0001]},
        {"refine.threshold": 0.5, "refine.lrs": [1e-4, 1e-5]},
    ]
    records = []
    for params, accs in [(planted, (0.80, 0.70)), (others[0], (0.90, 0.40)), (others[1], (0.60, 0.65))]:
        for seed, acc in enumerate(accs):
            point = {
                "method": "paper",
                "data.dataset": "cifar10",
                "data.noise": "idn:0.2",
                "seed": seed,
            } | params
            records.append(make_record(study="stages_thresholds", params=point, seed=seed, test_acc=acc))
    best = best_configs(frame(records)).row(0, named=True)
    # (0.80 + 0.70) / 2 = 75 beats (0.90 + 0.40) / 2 = 65, although that config has the single best run.
    assert best["best"] == "method=paper, refine.lrs=[0.001, 0.0001], refine.threshold=0.75"
    assert best["mean"] == pytest.approx(75.0) and best["n"] == 2 and best["configs"] == 3
    assert best["margin"] == pytest.approx(10.0)


# ------------------------------------------------------------------------------------ diagnostics


def _pipeline_run(seed: int, p11: float, p12: float, label_acc: float) -> dict[str, object]:
    return make_record(
        method="paper",
        seed=seed,
        stages=[stage(1, 1, p11, recall=0.4), stage(1, 2, p12, recall=0.6), stage(2, 1, 0.95)],
        iterations=[iteration(1, 0.9, label_acc), iteration(2, 0.92, label_acc + 0.02)],
    )


def test_diagnostics_average_per_stage_and_iteration() -> None:
    records = frame(
        [_pipeline_run(0, 0.80, 0.90, 0.70), _pipeline_run(1, 0.90, 0.94, 0.74), make_record(method="ce")]
    )
    sel = selection_table(records)
    assert sel.select("iteration", "stage").rows() == [(1, 1), (1, 2), (2, 1)]
    assert sel["n"].to_list() == [2, 2, 2]
    assert sel["selected_precision_pct"].to_list() == pytest.approx([85.0, 92.0, 95.0])
    assert sel["selected_recall_pct"].to_list()[:2] == pytest.approx([40.0, 60.0])
    assert set(sel["method"].to_list()) == {"paper"}  # the baseline has no stages
    ref = refinement_table(records)
    assert ref["iteration"].to_list() == [1, 2]
    assert ref["label_acc_pct"].to_list() == pytest.approx([72.0, 74.0])
    assert ref["consensus_label_precision_pct"].to_list() == pytest.approx([90.0, 92.0])


def test_diagnostics_of_baselines_only_are_empty() -> None:
    records = frame([make_record(method="ce")])
    assert selection_table(records).height == 0 and refinement_table(records).height == 0


# -------------------------------------------------------------------------------------------- time


def test_time_relative_to_ce() -> None:
    records = [
        make_record(method="ce", seed=0, wall_seconds=100),
        make_record(method="ce", seed=1, wall_seconds=120),
        make_record(method="paper", seed=0, wall_seconds=220),
        make_record(method="paper", seed=1, wall_seconds=242),
        make_record(method="paper", seed=2, wall_seconds=396),
        make_record(method="paper", dataset="cifar100", wall_seconds=50),  # no ce there
    ]
    table = time_table(frame(records))
    rows = {(r["method"], r["dataset"]): r for r in table.iter_rows(named=True)}
    assert rows[("ce", "cifar10")]["vs_ce"] == pytest.approx(1.0)
    # ce's median is 110 s: the ratios are 2.0, 2.2 and 3.6, their median 2.2 (their mean would be 2.6).
    assert rows[("paper", "cifar10")]["vs_ce"] == pytest.approx(2.2)
    assert rows[("paper", "cifar10")]["median_wall_s"] == pytest.approx(242.0)
    assert rows[("paper", "cifar100")]["vs_ce"] is None
    assert rows[("paper", "all")]["vs_ce"] == pytest.approx(2.2) and rows[("paper", "all")]["n"] == 4


# ---------------------------------------------------------------------------------------- vs paper


def _published(tmp_path: Path, rows: list[str]) -> pl.DataFrame:
    path = tmp_path / "mine.csv"
    path.write_text(
        "table,dataset,noise_kind,noise_rate,method,model,metric,value_pct,source\n" + "\n".join(rows)
    )
    return load_published(path)


def test_vs_paper_joins_and_differences(tmp_path: Path) -> None:
    published = _published(
        tmp_path,
        [
            "T2,cifar10,idn,0.2,ce,,acc,85.5,Report Table II",  # no model: any backbone
            "T2,cifar10,idn,0.2,paper,resnet34,acc,93.0,Report Table III",  # another backbone
            "T2,cifar10,idn,0.2,dividemix,,acc,90.0,DivideMix paper",  # not run here
            "T2,cifar10,idn,0.2,ce,,f1,70.0,Report Table II F1",  # another metric
            "T2,cifar10,idn,0.3,ce,,acc,80.0,a cell not in the table",
            "T2,cifar10,idn,0.2,mixup,resnet18,acc,88.0,a paper's ResNet-18",  # the depth, any block
            "T2,cifar10,idn,0.2,forward,preact_resnet18,acc,87.0,PreAct only",  # not a post-act run
        ],
    ).filter(pl.col("table") == "T2")  # these rows alone, without the shipped ones for the same cells
    records = frame(
        [make_record(method="ce", seed=s, test_acc=a) for s, a in enumerate((0.80, 0.82, 0.84))]
        + [make_record(method="paper", seed=0, test_acc=0.9)]
        + [make_record(method="mixup", seed=0, test_acc=0.86)]
        + [make_record(method="forward", seed=0, test_acc=0.85, model="resnet18")]
    )
    table = vs_paper(cells(records), published)
    rows = {(r["method"], r["model"]): r for r in table.iter_rows(named=True)}
    assert rows[("ce", "preact_resnet18")]["published_pct"] == pytest.approx(85.5)
    assert rows[("ce", "preact_resnet18")]["diff_pct"] == pytest.approx(82.0 - 85.5)
    assert rows[("ce", "preact_resnet18")]["source"] == "Report Table II"
    assert rows[("paper", "preact_resnet18")]["published_pct"] is None  # the published row is for resnet34
    assert (
        rows[("paper", "resnet34")]["mean_pct"] is None
        and rows[("paper", "resnet34")]["published_pct"] == 93.0
    )
    assert rows[("dividemix", None)]["n"] == 0 and rows[("dividemix", None)]["published_pct"] == 90.0
    # A published "resnet18" is the depth: DivideMix's PreAct network is set beside it.
    assert rows[("mixup", "preact_resnet18")]["diff_pct"] == pytest.approx(86.0 - 88.0)
    # A published PreAct row is not set beside a post-activation run; it is listed on its own.
    assert rows[("forward", "resnet18")]["published_pct"] is None
    assert rows[("forward", "preact_resnet18")]["n"] == 0
    assert table.height == 7  # the IDN 30 % row has no cell here, the F1 row another metric
    assert table["method"].to_list()[:2] == ["ce", "forward"]  # measured rows first
    f1 = vs_paper(cells(records, "f1"), published, "f1")
    assert f1.filter(pl.col("method") == "ce")["published_pct"].to_list() == [70.0]


def test_user_csv_adds_and_overrides_shipped_rows(tmp_path: Path) -> None:
    shipped = load_published()
    fmnist = pl.col("dataset") == "fashion-mnist"
    ce30 = shipped.filter(fmnist & (pl.col("method") == "ce") & (pl.col("noise_rate") == 0.3))
    assert ce30["value_pct"].to_list() == [88.38]
    merged = _published(
        tmp_path,
        ["mine,fashion-mnist,idn,0.3,ce,resnet18,acc,80.0,my rerun", "mine,cifar10,idn,0.4,ce,,acc,85.5,x"],
    )
    assert merged.height == shipped.height + 1
    again = merged.filter(
        (pl.col("method") == "ce") & (pl.col("dataset") == "fashion-mnist") & (pl.col("noise_rate") == 0.3)
    )
    assert again["value_pct"].to_list() == [80.0]


def test_shipped_numbers_have_sources() -> None:
    shipped = load_published()
    assert shipped.height > 0 and shipped["source"].null_count() == 0
    per_table = dict(shipped.group_by("table").len().iter_rows())
    # Table II: 10 methods × CIFAR-10/100 × IDN 20/30/50 %; III: 2 methods × ResNet-34; IV: 3 methods × 2 sets
    # × 2 rates (F1); V: 2 focal variants × 2 × 2; C2D README: DivideMix and C2D × 4 symmetric rates.
    assert per_table == {
        "Report Table II": 60,
        "Report Table III": 6,
        "Report Table IV": 12,
        "Report Table V": 8,
        "C2D README": 8,
        "Yao2021 Fashion-MNIST": 12,
    }
    report = shipped.filter(pl.col("table").str.starts_with("Report"))
    assert report["source"].str.contains("Improving Training For Noisy Labels").all()
    ours = report.filter(pl.col("method") == "paper_dividemix")
    assert ours.height == 6 + 3 + 4 and set(ours["model"].to_list()) == {"resnet18", "resnet34"}
    assert report.filter(pl.col("dataset").is_in(["chest-xray", "chaoyang"]))[
        "metric"
    ].unique().to_list() == ["f1"]
    fmnist = shipped.filter(pl.col("dataset") == "fashion-mnist")
    assert fmnist["source"].str.contains("Yao et al. 2021").all()
    fmnist = {(r["method"], r["noise_rate"]): r["value_pct"] for r in fmnist.iter_rows(named=True)}
    assert (
        fmnist[("ce", 0.5)] == 52.32
        and fmnist[("coteaching", 0.2)] == 91.21
        and fmnist[("causalnl", 0.5)] == 78.19
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("t,cifar10,idn,0.2,ce,,accuracy,85,x", "metric must be one of"),
        ("t,cifar10,idn,twenty,ce,,acc,85,x", "noise_rate 'twenty' is not a number"),
        ("t,cifar10,idn,20,ce,,acc,85,x", "noise_rate is a fraction"),
        ("t,cifar10,gaussian,0.2,ce,,acc,85,x", "noise_kind must be one of"),
    ],
)
def test_bad_published_rows_are_refused(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        _published(tmp_path, [row])
    result = runner.invoke(
        app, ["report", "--study", "fmnist_cpu", "--published", str(tmp_path / "mine.csv")]
    )
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and message in result.stderr


# ------------------------------------------------------------------------------------ planned grid


def test_planned_grid_with_published_values_before_anything_ran(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--study", "paper_table2", "--vs-paper", "--format", "csv"])
    assert result.exit_code == 0, result.output
    table = pl.read_csv(result.stdout.encode())
    study = get_study("paper_table2")
    planned = table.filter(pl.col("profile").is_not_null())
    assert planned.height == len(study.grid["method"]) * 2 * 3  # methods × datasets × rates
    assert set(table["n"].to_list()) == {0} and table["mean_pct"].null_count() == table.height
    assert table["method"].to_list()[: len(study.grid["method"])] == list(study.grid["method"])
    # Every published cell of Tables II and III is there: beside its planned cell, or (methods not run
    # here, ResNet-34) as a reference row.
    published = table.filter(pl.col("published_pct").is_not_null())
    assert published.height == 60 + 6
    ours = published.filter((pl.col("method") == "paper_dividemix") & (pl.col("dataset") == "cifar10"))
    assert ours["profile"].null_count() == 0  # the report's method is planned, not only quoted
    assert {"reweight", "decoupling", "mentornet", "lsl"} <= set(published["method"].to_list())
    # A user CSV adds to and overrides the shipped rows.
    extra = tmp_path / "table2.csv"
    extra.write_text(
        "table,dataset,noise_kind,noise_rate,method,model,metric,value_pct,source\n"
        "Table II,cifar10,idn,0.2,ce,,acc,85.5,my reading\n"
        "Table II,cifar10,idn,0.2,paper,,acc,70.0,my run\n"
    )
    result = runner.invoke(
        app, ["report", "--study", "paper_table2", "--vs-paper", "--published", str(extra), "--format", "csv"]
    )
    table = pl.read_csv(result.stdout.encode())
    cell = table.filter((pl.col("dataset") == "cifar10") & (pl.col("noise") == "IDN 20%"))
    by_method = {r["method"]: r["published_pct"] for r in cell.iter_rows(named=True)}
    assert by_method["ce"] == 85.5 and by_method["paper"] == 70.0 and by_method["mixup"] == 73.17
    # The medical tables are F1.
    result = runner.invoke(
        app, ["report", "--study", "medical", "--vs-paper", "--metric", "f1", "--format", "csv"]
    )
    table = pl.read_csv(result.stdout.encode())
    assert table.filter(pl.col("published_pct").is_not_null()).height == 12 + 8
    # Fashion-MNIST: the shipped anchors appear beside the planned cells, and for methods not run here.
    result = runner.invoke(
        app, ["report", "--study", "fmnist_cpu", "--profile", "cpu", "--vs-paper", "--format", "csv"]
    )
    table = pl.read_csv(result.stdout.encode())
    by_method = {r["method"]: r for r in table.iter_rows(named=True)}
    assert by_method["ce"]["published_pct"] == 88.38 and by_method["ce"]["profile"] == "cpu-small"
    assert by_method["paper"]["published_pct"] is None
    assert by_method["causalnl"]["published_pct"] == 90.68 and by_method["causalnl"]["n"] == 0


def test_measured_cells_fill_the_planned_grid(tmp_path: Path) -> None:
    for seed, acc in enumerate((0.6, 0.7)):
        write_run(
            tmp_path,
            make_record(
                method="ce",
                dataset="fashion-mnist",
                noise="idn:0.3",
                seed=seed,
                test_acc=acc,
                study="fmnist_cpu",
                profile="cpu-small",
                params={"seed": seed},
            ),
            study_layout=True,
        )
    write_run(tmp_path, make_record(method="ce", study="other", params={}), study_layout=True)
    result = runner.invoke(app, ["report", str(tmp_path), "--study", "fmnist_cpu", "--format", "csv"])
    assert result.exit_code == 0, result.output
    table = pl.read_csv(result.stdout.encode())
    # numbers, not text: mean, std and n of the one column
    assert table.rows() == [
        ("paper", None, None, 0),
        ("ce", pytest.approx(65.0), pytest.approx(7.0711, abs=1e-3), 2),
    ]
    # Records of another study only: the planned grid, and a note saying so.
    result = runner.invoke(
        app, ["report", str(tmp_path / "other"), "--study", "fmnist_cpu", "--format", "csv"]
    )
    assert result.exit_code == 0 and "planned grid" in result.stderr
    assert pl.read_csv(result.stdout.encode())["method"].to_list() == ["paper", "ce"]


def test_nothing_to_report_is_refused() -> None:
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 2 and result.stderr.startswith("error: nothing to report")


# ----------------------------------------------------------------------------------------- formats


def _all_tables() -> list[Titled]:
    records = frame([*grid_records(), _pipeline_run(0, 0.8, 0.9, 0.7)])
    return report_tables(records, table="all", published=load_published())


def test_csv_and_parquet_round_trip(tmp_path: Path) -> None:
    tables = _all_tables()
    assert [t.name for t in tables] == [
        "vs_paper",
        "pivot",
        "cells",
        "best",
        "selection",
        "refinement",
        "time",
    ]
    for fmt in ("csv", "parquet"):
        written = write_tables(tables, fmt, tmp_path / f"report.{fmt}")
        assert [p.name for p in written] == [f"report.{t.name}.{fmt}" for t in tables]
        for t, path in zip(tables, written, strict=True):
            back = pl.read_csv(path, schema=t.export.schema) if fmt == "csv" else pl.read_parquet(path)
            assert_frame_equal(back, t.export)
    pivot_only = report_tables(frame(grid_records()))
    (path,) = write_tables(pivot_only, "csv", tmp_path / "pivot.csv")
    assert_frame_equal(pl.read_csv(path, schema=pivot_only[0].export.schema), pivot_only[0].export)


def test_pivot_files_hold_numbers_not_text(tmp_path: Path) -> None:
    (table,) = report_tables(frame(grid_records()))
    for fmt in ("csv", "parquet"):
        (path,) = write_tables([table], fmt, tmp_path / f"pivot.{fmt}")
        back = pl.read_csv(path) if fmt == "csv" else pl.read_parquet(path)
        ce = back.filter(pl.col("method") == "ce").row(0, named=True)
        assert ce["cifar10 IDN 20% mean"] == pytest.approx(82.0)
        assert ce["cifar10 IDN 20% std"] == pytest.approx(2.0)
        assert ce["cifar10 IDN 20% n"] == 3
        assert back.schema["cifar10 IDN 20% mean"].is_numeric()
        paper = back.filter(pl.col("method") == "paper").row(0, named=True)
        assert paper["cifar100 IDN 50% mean"] is None and paper["cifar100 IDN 50% n"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_markdown_and_latex_hold_the_cells(tmp_path: Path) -> None:
    table = report_tables(frame(grid_records()))[0]
    md = to_markdown(table.frame)
    assert "| method | cifar10 IDN 20% |" in md and "| ce | 82.00 ± 2.00 (n=3) |" in md
    tex = to_latex(table.frame, table.title, table.bold)
    assert r"cifar10 IDN 20\%" in tex and r"82.00 $\pm$ 2.00 (n=3)" in tex and r"\end{tabular}" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"\hline" not in tex
    # paper has the best mean in three columns, ce in the one paper did not run
    assert r"\textbf{92.00 $\pm$ 2.65 (n=3)}" in tex and r"\textbf{82.00 $\pm$ 2.00 (n=3)}" in tex
    assert tex.count(r"\textbf") == 4
    (written,) = write_tables([table], "markdown", tmp_path / "r.md")
    assert "82.00 ± 2.00 (n=3)" in written.read_text()


def test_cli_output_files_and_terminal(tmp_path: Path) -> None:
    for record in grid_records():
        write_run(tmp_path / "runs", record)
    store = str(tmp_path / "runs")
    result = runner.invoke(
        app, ["report", store, "--format", "parquet", "--output", str(tmp_path / "p.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(tmp_path / "p.parquet")["method"].to_list() == ["ce", "paper"]
    result = runner.invoke(app, ["report", store, "--format", "latex", "--table", "all"])
    assert result.exit_code == 0 and result.stdout.count(r"\begin{tabular}") == 6
    result = runner.invoke(app, ["report", store, "--metric", "f1", "--format", "markdown"])
    assert (
        result.exit_code == 0
        and "| ce | 41.00 ± 1.00 (n=3) |" in result.stdout
        and "macro-F1" in result.stdout
    )
    result = runner.invoke(app, ["report", store, "--table", "all"])  # the terminal
    assert result.exit_code == 0 and "best configuration" in result.stdout and "wall time" in result.stdout
    for args, message in [
        (["--format", "parquet"], "needs --output"),
        (["--format", "xlsx"], "unknown format 'xlsx'"),
        (["--metric", "auc"], "unknown metric 'auc'"),
        (["--table", "all", "--format", "csv"], "holds one table"),
        (["--format", "csv", "--output", str(tmp_path / "no" / "x.csv")], "does not exist"),
    ]:
        result = runner.invoke(app, ["report", store, *args])
        assert result.exit_code == 2 and result.stderr.startswith("error: ") and message in result.stderr, (
            args
        )


# ------------------------------------------------------------------ configurations are never pooled


def test_runs_that_differ_in_more_than_the_seed_are_separate_rows() -> None:
    varied = {"refine.threshold": 0.5, "loss.main": "ce"}
    records = [
        make_record(seed=0, test_acc=0.10),
        make_record(seed=1, test_acc=0.12),
        make_record(seed=0, test_acc=0.90, config=varied),
    ]
    table = pivot(cells(frame(records)))
    assert table["config"].to_list() == ["defaults", "loss.main=ce, refine.threshold=0.5"]
    assert table["cifar10 IDN 20%"].to_list() == ["11.00 ± 1.41 (n=2)", "90.00 (n=1)"]
    best = best_configs(frame(records))
    assert best["configs"].to_list() == [2]
    assert best["best"].to_list() == [
        "method=paper, model.name=preact_resnet18, loss.main=ce, refine.threshold=0.5"
    ]


def test_a_variant_is_described_against_its_own_defaults() -> None:
    records = [make_record(method="paper_focal", seed=s, test_acc=0.5) for s in (0, 1)] + [
        make_record(method="paper_focal", seed=0, test_acc=0.6, config={"loss.focal_gamma": 1.0})
    ]
    table = cells(frame(records)).sort("config")
    assert table["config"].to_list() == ["", "loss.focal_gamma=1.0"]
    assert table["n"].to_list() == [2, 1]


def test_a_sweep_label_holds_what_varies_within_the_study_not_its_axes_or_shared_settings() -> None:
    shared = {"data.train_subset": 500}  # a setting of the whole study: not what tells rows apart
    records = [
        make_record(
            method=m,
            seed=s,
            study="s",
            params={"method": m, "data.noise": "idn:0.2", "seed": s, "refine.threshold": t},
            config=shared,
        )
        for m in ("paper", "paper_focal")
        for t in (0.5, 1.5)
        for s in (0, 1)
    ]
    table = cells(frame(records))
    assert sorted(set(table["config"].to_list())) == ["refine.threshold=0.5", "refine.threshold=1.5"]
    assert table["n"].to_list() == [2] * 4


def test_same_label_but_different_configs_stay_apart() -> None:
    # Two sweeps with different study-wide settings: each label is empty, but the configs differ.
    records = [
        make_record(seed=s, study=name, params={"seed": s}, config={"data.train_subset": n})
        for name, n in (("a", 500), ("b", 900))
        for s in (0, 1)
    ]
    table = cells(frame(records))
    assert table.height == 2 and table["n"].to_list() == [2, 2]
    assert table["config"].n_unique() == 2


def test_in_process_and_one_ray_worker_are_one_configuration() -> None:
    records = [make_record(seed=0, config={"workers": 0}), make_record(seed=1, config={"workers": 1})]
    records.append(make_record(seed=0, config={"workers": 2}))  # two ranks split batches: another config
    table = cells(frame(records)).sort("config")
    assert table["config"].to_list() == ["", "workers=2"] and table["n"].to_list() == [2, 1]


def test_a_value_a_rule_chose_is_no_difference_and_an_equal_given_one_is_the_same_config() -> None:
    records = [  # DivideMix at 50 % symmetric noise on CIFAR-10: the paper's λ_u is 25
        make_record(method="dividemix", noise="sym:0.5", seed=0),
        make_record(method="dividemix", noise="sym:0.5", seed=1, config={"dividemix.lambda_u": 25.0}),
        make_record(method="dividemix", noise="sym:0.5", seed=0, config={"dividemix.lambda_u": 50.0}),
        make_record(method="dividemix", noise="sym:0.9", seed=0),  # λ_u 50 and a 5-epoch window, by rule
        make_record(method="ce", seed=0, config={"warmup.epochs": 10}),  # its budget follows: 35 epochs
    ]
    labelled = with_config_columns(frame(records))
    assert labelled["config"].to_list() == ["", "", "dividemix.lambda_u=50.0", "", "warmup.epochs=10"]
    keys = labelled["config_key"].to_list()
    assert keys[0] == keys[1] and len(set(keys)) == 4
    table = cells(frame(records)).filter(pl.col("method") == "dividemix").sort("n")
    assert table["n"].to_list() == [1, 1, 2]


def test_a_record_saved_before_resolution_is_one_config_with_a_new_one() -> None:
    new = make_record(method="coteaching", noise="sym:0.3", seed=0)
    old = make_record(method="coteaching", noise="sym:0.3", seed=1)
    legacy = unresolved(RunConfig.from_dict(json.loads(str(old["config_json"])))).to_dict()
    old["config_json"] = json.dumps({k: v for k, v in legacy.items() if k != "resolved"})
    assert json.loads(str(old["config_json"]))["coteaching"]["forget_rate"] is None
    table = cells(frame([new, old]))
    assert table["n"].to_list() == [2] and table["config"].to_list() == [""]
