"""Figures from result records (PNG, PDF or SVG; matplotlib's Agg renderer, no display, no pyplot state).

* `accuracy-<dataset>.<fmt>`  test accuracy (or macro-F1) against the noise rate, one line per method
                              (× model × profile × config when several), mean ± std over seeds as error
                              bars, the number of runs per line in the legend
* `selection-<dataset>.<fmt>` the pipeline's diagnostics: selection precision at every stage of every
                              refinement iteration, and training-label accuracy after each iteration,
                              one line per method × config × noise rate, mean ± std over seeds
* `curves-<dataset>.<fmt>`    the training curves: the training loss on the labels each method trains on
                              (the noisy ones for CE) and the test accuracy after every supervised epoch,
                              one line per method × config × noise rate, mean over seeds with a ± std
                              band: whether a network memorises the noise (loss → 0 while test accuracy
                              falls from its peak) shows here

Colours are Okabe and Ito's palette (told apart with the common colour-vision deficiencies); past its
eight colours the marker and line style change, so a dozen methods stay apart in print too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from noisylab.atomic import write_with
from noisylab.config.diff import with_config_columns
from noisylab.errors import UserError
from noisylab.results.report import METRIC_NAMES, budget, cells, metric_column, noise_label

# Okabe & Ito (2008), "Color Universal Design": distinguishable under protan-, deutan- and tritanopia.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D")
LINESTYLES = ("-", "--", ":", "-.")
FORMATS = ("png", "pdf", "svg")
KIND_AXIS = {"idn": "instance-dependent (IDN)", "symmetric": "symmetric", "pair": "pair-flip", "none": "no"}

DPI = 120  # dots per inch of the written PNGs
SIZE = (6.4, 4.2)  # inches, one panel


def style(i: int) -> dict[str, Any]:
    """Colour, marker and line style of the i-th line: a new marker and style every len(PALETTE) lines."""
    turn = i // len(PALETTE)
    return {
        "color": PALETTE[i % len(PALETTE)],
        "marker": MARKERS[turn % len(MARKERS)],
        "linestyle": LINESTYLES[turn % len(LINESTYLES)],
    }


def plot_records(
    records: pl.DataFrame, out_dir: Path, *, metric: str = "acc", fmt: str = "png"
) -> list[Path]:
    """Write the figures for `records` into `out_dir` (created if needed) as `fmt` files; returns them."""
    metric_column(metric)
    if fmt not in FORMATS:
        raise UserError(f"unknown figure format '{fmt}': choose one of {', '.join(FORMATS)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output {out_dir} is a file: give a folder for the figures")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {out_dir} ({e.strerror or e})") from None
    written = []
    table = cells(records, metric)
    for dataset in dict.fromkeys(table["dataset"].to_list()):
        fig = accuracy_figure(table.filter(pl.col("dataset") == dataset), dataset, metric)
        written.append(_save(fig, out_dir / f"accuracy-{_slug(dataset)}.{fmt}"))
    records = with_config_columns(records)
    for dataset in dict.fromkeys(records["dataset"].to_list()):
        fig_sel = selection_figure(records.filter(pl.col("dataset") == dataset), dataset)
        if fig_sel is not None:
            written.append(_save(fig_sel, out_dir / f"selection-{_slug(dataset)}.{fmt}"))
        fig_curves = curves_figure(records.filter(pl.col("dataset") == dataset), dataset)
        if fig_curves is not None:
            written.append(_save(fig_curves, out_dir / f"curves-{_slug(dataset)}.{fmt}"))
    return written


def _line_name(row: dict[str, Any], keys: list[str]) -> str:
    return " / ".join(str(row[k] or "defaults") for k in keys)


def _runs(ns: list[int]) -> str:
    """'n=3', or 'n=1–3' when the points of a line rest on different numbers of runs."""
    lo, hi = min(ns), max(ns)
    return f"n={lo}" if lo == hi else f"n={lo}–{hi}"


def accuracy_figure(table: pl.DataFrame, dataset: str, metric: str) -> Figure:
    """`table`: `report.cells` of one dataset."""
    fig = Figure(figsize=SIZE, dpi=DPI)
    ax = fig.add_subplot()
    keys = ["method"] + [k for k in ("model", "profile") if table[k].n_unique() > 1]
    keys += ["config"] if (table["config"].fill_null("") != "").any() else []
    kinds = table["noise_kind"].unique().to_list()
    groups = table.group_by(["noise_kind", *keys], maintain_order=True)
    for i, ((kind, *_), sub) in enumerate(groups):
        sub = sub.sort("noise_rate")
        label = _line_name(sub.row(0, named=True), keys)
        label += (
            f" ({kind}, {_runs(sub['n'].to_list())})" if len(kinds) > 1 else f" ({_runs(sub['n'].to_list())})"
        )
        ax.errorbar(
            (sub["noise_rate"] * 100).to_list(),
            sub["mean_pct"].to_list(),
            yerr=sub["std_pct"].fill_null(0.0).to_list(),
            capsize=3,
            label=label,
            **style(i),
        )
    ax.set_xticks(sorted({100 * r for r in table["noise_rate"].to_list()}))
    name = METRIC_NAMES[metric]
    ax.set_xlabel(
        f"{KIND_AXIS.get(kinds[0], kinds[0])} noise rate (%)" if len(kinds) == 1 else "noise rate (%)"
    )
    ax.set_ylabel(f"{name} (%)")
    ax.set_title(f"{dataset}: {name}, mean ± std over seeds\n{budget(table)}", fontsize="medium")
    ax.grid(alpha=0.3)
    _legend_beside(ax)
    fig.tight_layout()
    return fig


def _stats(rows: pl.DataFrame, by: list[str], value: str) -> pl.DataFrame:
    """Mean ± std over seeds. A stage that selected nothing has no precision (null): its point is NaN,
    a gap in the line, not an error; std is 0 where fewer than two seeds have a value."""
    v = pl.col(value).cast(pl.Float64) * 100
    return (
        rows.group_by(by)
        .agg(
            v.mean().fill_null(float("nan")).alias("mean"),
            v.std(ddof=1).fill_null(0.0).fill_nan(0.0).alias("std"),
        )
        .sort(by)
    )


def selection_figure(records: pl.DataFrame, dataset: str) -> Figure | None:
    """Selection precision per (iteration, stage) and label accuracy per iteration; None when no run of
    `records` has refinement stages (baselines)."""
    dtype = records.schema.get("stages")
    if not isinstance(dtype, pl.List) or not isinstance(dtype.inner, pl.Struct):
        return None
    line_keys = ["method", "config", "noise_kind", "noise_rate", "noise"]
    stages = records.select(*line_keys, "stages").explode("stages").drop_nulls("stages").unnest("stages")
    if stages.height == 0:
        return None
    fig = Figure(figsize=(SIZE[0] * 2, SIZE[1]), dpi=DPI)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    points = stages.select("iteration", "stage").unique().sort("iteration", "stage")
    ticks = {(i, s): n for n, (i, s) in enumerate(points.iter_rows())}
    lines = _stats(stages, [*line_keys, "iteration", "stage"], "selected_precision").group_by(
        line_keys, maintain_order=True
    )
    for n, (key, line) in enumerate(lines):
        x = [ticks[(i, s)] for i, s in line.select("iteration", "stage").iter_rows()]
        left.errorbar(
            x, line["mean"].to_list(), yerr=line["std"].to_list(), capsize=3, label=_label(key), **style(n)
        )
    left.set_xticks(list(ticks.values()), [f"{i}.{s}" for i, s in ticks])
    _finish(
        left, "iteration.stage", "selection precision (%)", f"{dataset}: selected samples with a right label"
    )
    left.set_ylim(0, 100)  # a share: ±1 std over a few seeds must not draw bars below 0 % or above 100 %
    _label_accuracy(right, records, line_keys)
    _finish(
        right,
        "refinement iteration",
        "training-label accuracy (%)",
        f"{dataset}: labels after each iteration",
    )
    _budget_title(fig, records)
    fig.tight_layout()
    return fig


def _budget_title(fig: Figure, records: pl.DataFrame) -> None:
    """The runs' profile and training-set size over a figure of panels: a tiny run's curve must not pass
    for a full-scale one."""
    fig.suptitle(budget(cells(records)), fontsize="small")


def supervised_curve(history_json: str | None) -> list[tuple[float | None, float | None]]:
    """(training loss, test accuracy %) after each supervised epoch of a run, in order: pre-training
    epochs (a self-supervised loss on no labels) are left out; None where the epoch has no value."""
    try:
        history = json.loads(history_json) if history_json else []
    except ValueError:
        return []
    out: list[tuple[float | None, float | None]] = []
    for h in history if isinstance(history, list) else []:
        if not isinstance(h, dict) or h.get("phase") == "pretrain":
            continue
        loss, acc = h.get("train_loss"), h.get("test_acc")
        out.append((None if loss is None else float(loss), None if acc is None else 100 * float(acc)))
    return out


def curves_figure(records: pl.DataFrame, dataset: str) -> Figure | None:
    """Training loss and test accuracy per supervised epoch, mean ± std over each line's runs; None when
    no run holds a per-epoch history."""
    if "history_json" not in records.columns:
        return None
    line_keys = ["method", "config", "noise_kind", "noise_rate", "noise"]
    lines: dict[tuple[Any, ...], list[list[tuple[float | None, float | None]]]] = {}
    for row in records.select(*line_keys, "history_json").iter_rows(named=True):
        curve = supervised_curve(row["history_json"])
        if curve:
            lines.setdefault(tuple(row[k] for k in line_keys), []).append(curve)
    if not lines:
        return None
    fig = Figure(figsize=(SIZE[0] * 2, SIZE[1]), dpi=DPI)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for n, (key, runs) in enumerate(lines.items()):
        label = f"{_label(key)} (n={len(runs)})"
        for ax, column in ((left, 0), (right, 1)):
            epochs, means, stds = _mean_curve(runs, column)
            if not epochs:
                continue
            look = style(n)
            ax.plot(epochs, means, label=label, color=look["color"], linestyle=look["linestyle"])
            ax.fill_between(
                epochs,
                [m - s for m, s in zip(means, stds, strict=True)],
                [m + s for m, s in zip(means, stds, strict=True)],
                color=look["color"],
                alpha=0.15,
            )
    _finish(
        left, "supervised epoch", "training loss", f"{dataset}: loss on the labels trained on", legend=False
    )
    _finish(right, "supervised epoch", "test accuracy (%)", f"{dataset}: test accuracy per epoch")
    _budget_title(fig, records)
    fig.tight_layout()
    return fig


def _mean_curve(
    runs: list[list[tuple[float | None, float | None]]], column: int
) -> tuple[list[int], list[float], list[float]]:
    """Epochs (1-based) where at least one run has a value, the mean there and the std (0 for one run)."""
    epochs: list[int] = []
    means: list[float] = []
    stds: list[float] = []
    for e in range(max(len(r) for r in runs)):
        values = [v for r in runs if e < len(r) and (v := r[e][column]) is not None]
        if not values:
            continue
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        epochs.append(e + 1)
        means.append(mean)
        stds.append(var**0.5)
    return epochs, means, stds


def _label_accuracy(ax: Axes, records: pl.DataFrame, line_keys: list[str]) -> None:
    dtype = records.schema.get("iterations")
    if not isinstance(dtype, pl.List) or not isinstance(dtype.inner, pl.Struct):
        return
    rows = records.select(*line_keys, "iterations").explode("iterations").drop_nulls("iterations")
    if rows.height == 0:
        return
    ax.set_xticks(sorted(set(rows.unnest("iterations")["iteration"].to_list())))
    lines = _stats(rows.unnest("iterations"), [*line_keys, "iteration"], "label_acc").group_by(
        line_keys, maintain_order=True
    )
    for n, (key, line) in enumerate(lines):
        ax.errorbar(
            line["iteration"].to_list(),
            line["mean"].to_list(),
            yerr=line["std"].to_list(),
            capsize=3,
            label=_label(key),
            **style(n),
        )


def _label(key: tuple[Any, ...]) -> str:
    method, config, kind, rate, noise = key
    return f"{method}{f' [{config}]' if config else ''}, {noise_label(kind, rate, noise)}"


def _finish(ax: Axes, xlabel: str, ylabel: str, title: str, *, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        _legend_beside(ax)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "dataset"


def _save(fig: Figure, path: Path) -> Path:
    """Atomically (`atomic.write_with`): a half-drawn figure never takes the name."""
    write_with(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".")))
    return path


def _legend_beside(ax: Any) -> None:
    """The legend right of the axes: with a dozen methods inside it would hide the lines it names."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
