"""Tables from result records: pure functions, records frame in, Polars table out.

* `cells`         one row per (method, model, profile, dataset, noise): mean ± std over seeds, n, in %
* `pivot`         the paper's layout: rows method (× model, × profile when several), columns
                  dataset × noise rate, cells "mean ± std (n=…)"
* `vs_paper`      `cells` beside published numbers, with measured − published
* `best_configs`  per study and dataset × noise: the configuration (trial parameters less the seed)
                  with the best mean of the study's metric
* `selection_table`, `refinement_table`  the pipeline's diagnostics, mean over seeds
* `time_table`    wall time per method relative to `ce` at the same dataset × noise × profile

`planned_cells` gives a study's grid as empty cells, so a table can be shown (with published values)
before anything ran. Every percentage is 100 × the record's fraction; std is the sample std (ddof 1)
over seeds and is empty for a single seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from noisylab.config.diff import with_config_columns
from noisylab.config.profiles import at_published_scale
from noisylab.errors import UserError
from noisylab.results.tables import Titled

# --metric: which reading of a run's test curve a table pools. The last epoch is what papers usually
# print; at small budgets one epoch swings by several points, so the mean over the last 10 evaluated
# epochs (Co-teaching's reading) and the best epoch's value are kept too (`results.curve_summary`).
METRICS = {
    "acc": "test_acc",
    "f1": "test_f1",
    "acc_last10": "test_acc_last10",
    "f1_last10": "test_f1_last10",
    "acc_best": "best_test_acc",
    "f1_best": "best_test_f1",
}
METRIC_NAMES = {
    "acc": "test accuracy",
    "f1": "test macro-F1",
    "acc_last10": "test accuracy, mean of the last 10 epochs",
    "f1_last10": "test macro-F1, mean of the last 10 epochs",
    "acc_best": "test accuracy at the best epoch",
    "f1_best": "test macro-F1 at the best epoch",
}
# Record columns holding fractions in [0, 1] (shown in %); a study may optimise any record column.
FRACTIONS = (
    "test_acc",
    "test_f1",
    "warmup_test_acc",
    "warmup_test_f1",
    "final_label_acc",
    "test_acc_last10",
    "test_f1_last10",
    "best_test_acc",
    "best_test_f1",
)
# `config`: what sets the run's config apart besides these columns (confdiff); a cell pools seeds only.
CELL_KEYS = ("method", "model", "profile", "config", "dataset", "noise_kind", "noise_rate", "noise")
_KIND_LABELS = {"idn": "IDN", "symmetric": "sym", "pair": "pair", "none": "clean"}
_JOIN_DIGITS = 6  # noise rates are joined after rounding: 0.2 from a record and from a CSV are the same


def noise_label(kind: str | None, rate: float | None, noise: str | None = None) -> str:
    """'IDN 20%', 'sym 40%', 'clean'; given label files keep their record text."""
    if kind is None:
        return noise or "-"
    if kind == "file" or kind not in _KIND_LABELS:
        return noise or kind
    if kind == "none":
        return "clean"
    return f"{_KIND_LABELS[kind]} {100 * (rate or 0.0):g}%"


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Exactly `schema`'s columns, in its order, with its types."""
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def metric_column(metric: str) -> str:
    if metric not in METRICS:
        raise UserError(f"unknown metric '{metric}': choose one of {', '.join(METRICS)}")
    return METRICS[metric]


def model_family(model: str | None) -> str | None:
    """The plain depth name a published row may give for a model: preact_resnet18 → resnet18 (papers
    write "ResNet-18" for DivideMix's PreAct network too); other names are their own family."""
    if model is None:
        return None
    return model.removeprefix("preact_")


def published_metric(metric: str) -> str:
    """The published numbers' metric a reading is set beside: papers print one value per cell (acc or
    f1), so the last-10 mean and the best epoch are compared with it too."""
    return metric.split("_")[0]


# --------------------------------------------------------------------------------------------- cells

_CELL_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "model": pl.String(),
    "profile": pl.String(),
    "config": pl.String(),
    "dataset": pl.String(),
    "noise_kind": pl.String(),
    "noise_rate": pl.Float64(),
    "noise": pl.String(),
    "n": pl.UInt32(),
    "mean_pct": pl.Float64(),
    "std_pct": pl.Float64(),
    # The budget of the cell's runs: their training-set size (a planned cell: the profile's subset, null
    # for the whole set), and whether they ran at the scale published numbers were made at (the report's
    # recipe on the whole training set: `profiles.at_published_scale`), the only cells `vs_paper` subtracts.
    "num_train": pl.Int64(),
    "full_scale": pl.Boolean(),
}


def _train_subset(config_json: str | None) -> tuple[bool, int | None]:
    """(whether the saved config could be read, its data.train_subset)."""
    try:
        data = json.loads(config_json or "")["data"]
        return True, data.get("train_subset")
    except (ValueError, TypeError, KeyError, AttributeError):
        return False, None


def _with_scale(records: pl.DataFrame) -> pl.DataFrame:
    """`records` plus `_full_scale` (see `_CELL_SCHEMA`) and `num_train` (null where a record lacks it)."""
    texts = records["config_json"].to_list() if "config_json" in records.columns else [None] * records.height
    profiles = records["profile"].to_list() if "profile" in records.columns else [None] * records.height
    full = []
    for text, profile in zip(texts, profiles, strict=True):
        readable, subset = _train_subset(text)
        full.append(readable and at_published_scale(profile, subset))
    out = records.with_columns(pl.Series("_full_scale", full, dtype=pl.Boolean))
    if "num_train" not in out.columns:
        out = out.with_columns(pl.lit(None, pl.Int64).alias("num_train"))
    return out


def cells(records: pl.DataFrame, metric: str = "acc") -> pl.DataFrame:
    """Mean and std (in %) of the metric over the runs (seeds) of each method × model × profile ×
    config × dataset × noise; `n` counts the runs with a value. Runs whose configs differ in more than
    the seed are never pooled: they differ in `config`."""
    column = metric_column(metric)
    if records.height == 0:
        return pl.DataFrame(schema=_CELL_SCHEMA)
    records = _with_scale(with_config_columns(records))
    value = pl.col(column).cast(pl.Float64) * 100
    out = (
        records.group_by(list(CELL_KEYS))
        .agg(
            value.count().cast(pl.UInt32).alias("n"),
            value.mean().alias("mean_pct"),
            value.std(ddof=1).alias("std_pct"),
            pl.col("num_train").cast(pl.Int64).max().alias("num_train"),
            pl.col("_full_scale").all().alias("full_scale"),
        )
        .sort("dataset", "noise_kind", "noise_rate", "method", "model", "profile", "config", nulls_last=True)
    )
    return _conform(out, _CELL_SCHEMA)


def planned_cells(study: Any, profile: str) -> pl.DataFrame:
    """The grid of a `noisylab.sweeps.Study` under one of its profiles, as cells with no runs (n = 0),
    in the study's own order. Each grid point is resolved through the run profile, so a grid without a
    model axis gets the profile's model."""
    from noisylab.config.profiles import make_config

    sweep = study.profile(profile)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for point in study.grid_points(profile):
        point = {k: v for k, v in point.items() if k != "seed"}
        cfg = make_config(sweep.run_profile, dict(sweep.overrides) | point)
        spec = cfg.data.noise_spec
        row = {
            "method": cfg.method,
            "model": cfg.model.name,
            "profile": cfg.profile,
            "config": "",
            "dataset": cfg.data.dataset,
            "noise_kind": spec.kind,
            "noise_rate": spec.rate,
            "noise": spec.label(),
            "n": 0,
            "mean_pct": None,
            "std_pct": None,
            "num_train": cfg.data.train_subset,
            "full_scale": at_published_scale(cfg.profile, cfg.data.train_subset),
        }
        rows.setdefault(tuple(row[k] for k in CELL_KEYS), row)
    return pl.DataFrame(list(rows.values()), schema=_CELL_SCHEMA, orient="row")


def with_planned(measured: pl.DataFrame, planned: pl.DataFrame) -> pl.DataFrame:
    """Measured cells plus the planned cells that have no measured counterpart (any profile)."""
    keys = ["method", "model", "dataset", "noise_kind", "noise_rate"]
    missing = planned.join(measured, on=keys, how="anti", nulls_equal=True)
    return pl.concat([measured, missing])


# --------------------------------------------------------------------------------------------- pivot


def format_cell(mean: float | None, std: float | None, n: int) -> str | None:
    if n == 0 or mean is None:
        return None
    spread = f" ± {std:.2f}" if std is not None else ""
    return f"{mean:.2f}{spread} (n={n})"


def pivot_row_keys(cell_table: pl.DataFrame) -> list[str]:
    keys = ["method"] + [k for k in ("model", "profile") if cell_table[k].n_unique() > 1]
    return keys + (["config"] if (cell_table["config"].fill_null("") != "").any() else [])


def _pivot_grid(
    cell_table: pl.DataFrame, method_order: Sequence[str]
) -> tuple[list[str], list[tuple[Any, ...]], list[str], dict[tuple[Any, ...], dict[str, dict[str, Any]]]]:
    """Row keys, rows (in order), column labels (in order) and each cell's {mean_pct, std_pct, n}."""
    row_keys = pivot_row_keys(cell_table)
    order = {m: i for i, m in enumerate(method_order)}

    def row_rank(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return (order.get(key[0], len(order)), *(str(k) for k in key))

    rows = sorted({tuple(r[k] for k in row_keys) for r in cell_table.iter_rows(named=True)}, key=row_rank)
    datasets = list(dict.fromkeys(cell_table["dataset"].to_list()))
    columns: dict[tuple[Any, ...], str] = {}
    grid: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {row: {} for row in rows}
    for r in cell_table.iter_rows(named=True):
        key = (datasets.index(r["dataset"]), r["noise_kind"] or "", r["noise_rate"] or 0.0, r["noise"] or "")
        label = f"{r['dataset']} {noise_label(r['noise_kind'], r['noise_rate'], r['noise'])}"
        columns[key] = label
        grid[tuple(r[k] for k in row_keys)][label] = r
    return row_keys, rows, [columns[k] for k in sorted(columns)], grid


def _row_values(row_keys: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    values = dict(zip(row_keys, row, strict=True))
    if values.get("config") == "":
        values["config"] = "defaults"  # a blank cell would read as "unknown"
    return values


def pivot(cell_table: pl.DataFrame, *, method_order: Sequence[str] = ()) -> pl.DataFrame:
    """Rows method (× model, × profile when the cells hold several, × config when any run differs from
    its method's defaults), columns 'dataset noise', cells 'mean ± std (n=…)' in %; empty where nothing
    ran. Methods in `method_order` come first, in that order, the rest alphabetically."""
    row_keys, rows, labels, grid = _pivot_grid(cell_table, method_order)
    data = []
    for row in rows:
        cells_of_row = {
            c: format_cell(cell["mean_pct"], cell["std_pct"], cell["n"])
            if (cell := grid[row].get(c))
            else None
            for c in labels
        }
        data.append(_row_values(row_keys, row) | cells_of_row)
    schema = {k: pl.String() for k in row_keys} | {c: pl.String() for c in labels}
    return pl.DataFrame(data, schema=schema, orient="row")


def pivot_numbers(cell_table: pl.DataFrame, *, method_order: Sequence[str] = ()) -> pl.DataFrame:
    """The pivot for files: the same rows, and for each 'dataset noise' column three numeric ones,
    '<column> mean', '<column> std' (in %) and '<column> n', so a CSV or Parquet reads back as numbers."""
    row_keys, rows, labels, grid = _pivot_grid(cell_table, method_order)
    data = []
    for row in rows:
        values = _row_values(row_keys, row)
        for c in labels:
            cell = grid[row].get(c) or {}
            values |= {
                f"{c} mean": cell.get("mean_pct"),
                f"{c} std": cell.get("std_pct"),
                f"{c} n": cell.get("n", 0),
            }
        data.append(values)
    schema: dict[str, pl.DataType] = {k: pl.String() for k in row_keys}
    for c in labels:
        schema |= {f"{c} mean": pl.Float64(), f"{c} std": pl.Float64(), f"{c} n": pl.UInt32()}
    return pl.DataFrame(data, schema=schema, orient="row")


def best_cells(numbers: pl.DataFrame, labels: Sequence[str]) -> frozenset[tuple[int, str]]:
    """(row, column) of the highest mean in each pivot column (ties: all of them), for bold type."""
    out = set()
    for c in labels:
        means = numbers[f"{c} mean"]
        top = means.max()
        if top is not None:
            out |= {(i, c) for i, m in enumerate(means.to_list()) if m is not None and m == top}
    return frozenset(out)


# ------------------------------------------------------------------------------------------ vs paper

_VS_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "model": pl.String(),
    "profile": pl.String(),
    "num_train": pl.Int64(),  # the runs' training-set size: the budget beside the published cell
    "config": pl.String(),
    "dataset": pl.String(),
    "noise": pl.String(),
    "n": pl.UInt32(),
    "mean_pct": pl.Float64(),
    "std_pct": pl.Float64(),
    "published_pct": pl.Float64(),
    "diff_pct": pl.Float64(),
    "published_in": pl.String(),  # the published row's `table` (e.g. "Report Table II")
    "source": pl.String(),
}


def vs_paper(cell_table: pl.DataFrame, published: pl.DataFrame, metric: str = "acc") -> pl.DataFrame:
    """Each cell beside its published value (joined on method × dataset × noise kind and rate, and on
    the model when the published row names one) and `diff_pct` = measured − published, for cells run at
    the published scale only (`full_scale`: a `tiny` run beside a full-scale number is no gap; it is
    shown beside it with `diff_pct` empty, and `vs_paper_notes` says why). Published rows for the same
    dataset × noise cells without a measured or planned counterpart (a method noisylab does not run,
    another backbone) are listed too, after the cells, with the measured columns empty."""
    metric_column(metric)
    rate = pl.col("noise_rate").round(_JOIN_DIGITS).alias("_rate")
    on = ["method", "dataset", "noise_kind", "_rate"]
    mine = cell_table.with_columns(rate).with_row_index("_row")
    pub = published.filter(pl.col("metric") == published_metric(metric)).with_columns(rate)
    pub = pub.join(mine.select(on[1:]).unique(), on=on[1:], how="semi")  # only the cells shown
    any_model = pub.filter(pl.col("model") == "")
    one_model = pub.filter(pl.col("model") != "")
    # A published "resnet18" is the depth the paper names, so a preact_resnet18 run is set beside it
    # when no row names preact_resnet18 itself (the exact model wins, then the family, then any model).
    mine = mine.with_columns(
        pl.col("model").map_elements(model_family, return_dtype=pl.String).alias("_family")
    )
    picked = ["value_pct", "table", "source"]
    family = one_model.select(*on, pl.col("model").alias("_family"), *picked)
    measured = (
        mine.join(one_model.select(*on, "model", *picked), on=[*on, "model"], how="left")
        .join(family, on=[*on, "_family"], how="left", suffix="_family")
        .join(any_model.select(*on, *picked), on=on, how="left", suffix="_any")
        .with_columns(
            pl.coalesce("value_pct", "value_pct_family", "value_pct_any").alias("published_pct"),
            pl.coalesce("table", "table_family", "table_any").alias("published_in"),
            pl.coalesce("source", "source_family", "source_any").alias("source"),
        )
        .with_columns(
            pl.when(pl.col("full_scale"))
            .then(pl.col("mean_pct") - pl.col("published_pct"))
            .otherwise(None)
            .alias("diff_pct")
        )
    )
    reference = pl.concat(
        [
            one_model.join(mine, on=[*on, "model"], how="anti").join(
                mine.select(*on, pl.col("_family").alias("model")), on=[*on, "model"], how="anti"
            ),
            any_model.join(mine, on=on, how="anti").with_columns(pl.lit(None, pl.String).alias("model")),
        ]
    ).select(
        *on,
        "model",
        "noise_rate",
        pl.lit(None, pl.String).alias("profile"),
        pl.lit(None, pl.Int64).alias("num_train"),
        pl.lit(None, pl.String).alias("config"),
        pl.lit(None, pl.String).alias("noise"),
        pl.lit(0, pl.UInt32).alias("n"),
        pl.lit(None, pl.Float64).alias("mean_pct"),
        pl.lit(None, pl.Float64).alias("std_pct"),
        pl.col("value_pct").alias("published_pct"),
        pl.lit(None, pl.Float64).alias("diff_pct"),
        pl.col("table").alias("published_in"),
        "source",
        pl.lit(None, pl.UInt32).alias("_row"),  # after every measured row of its cell
    )
    columns = [*_VS_SCHEMA, "noise_kind", "noise_rate", "_rate", "_row"]
    out = _labelled(pl.concat([measured.select(columns), reference.select(columns)], how="vertical_relaxed"))
    datasets = {d: i for i, d in enumerate(dict.fromkeys(out["dataset"].to_list()))}
    out = out.sort(
        pl.col("dataset").replace_strict(datasets, return_dtype=pl.Int64),
        "noise_kind",
        "_rate",
        "_row",
        "method",
        nulls_last=True,
    )
    return _conform(out, _VS_SCHEMA)


_METRIC_WORDS = {"acc": "accuracy", "f1": "macro-F1"}


def _size(n: int | None) -> str:
    return "the whole training set" if n is None else f"{n:,} training images"


def budget(cell_table: pl.DataFrame) -> str:
    """What the table's runs trained with, for its caption: 'profile cpu-small, 1,500 training images', or
    'profiles cpu (4,000 training images) and tiny (128 training images)'. The measured cells' budgets;
    a table of planned cells only names the planned ones ('the whole training set' where no subset)."""
    measured = cell_table.filter(pl.col("n") > 0)
    rows = measured if measured.height else cell_table
    sizes: dict[str, list[int | None]] = {}
    for profile, n in rows.select("profile", "num_train").unique().sort("profile", "num_train").iter_rows():
        if profile is not None:
            sizes.setdefault(profile, []).append(n)
    if not sizes:
        return "budget unknown"
    parts = {p: " and ".join(_size(n) for n in ns) for p, ns in sizes.items()}
    if len(parts) == 1:
        ((profile, text),) = parts.items()
        return f"profile {profile}, {text}"
    return "profiles " + " and ".join(f"{p} ({text})" for p, text in parts.items())


def vs_paper_notes(
    table: pl.DataFrame,
    cell_table: pl.DataFrame,
    published: pl.DataFrame,
    metric: str,
    *,
    planned: tuple[int, int] | None = None,
) -> tuple[str, ...]:
    """The lines under a comparison with published numbers: how many cells are measured (`planned`: how
    many of the planned cells have runs, and how many were planned), why a gap is left empty where a run
    is set beside a published number of another scale, and why published cells are empty when the
    published tables give another metric than `metric`."""
    notes = []
    measured = int((cell_table["n"] > 0).sum())
    if planned is not None:
        done, total = planned
        extra = measured - done
        notes.append(
            f"{done} of {total} planned cells measured"
            + (f", and {extra} measured cells outside the plan" if extra > 0 else "")
        )
    else:
        notes.append(f"{measured} measured cells")
    unlike = table.filter(
        (pl.col("n") > 0) & pl.col("published_pct").is_not_null() & pl.col("diff_pct").is_null()
    )
    if unlike.height:
        notes.append(
            f"gap left empty for {unlike.height} cells: their runs trained with {budget(unlike)}, the "
            "published numbers with the full recipe on the whole training set (profile gpu); side by side, "
            "neither measures the other"
        )
    want = published_metric(metric)
    on = ["dataset", "noise_kind", "_rate"]
    rate = pl.col("noise_rate").round(_JOIN_DIGITS).alias("_rate")
    shown = cell_table.with_columns(rate).select(on).unique()
    pub = published.with_columns(rate).join(shown, on=on, how="semi")
    have = pub.filter(pl.col("metric") == want).select(on).unique()
    other = pub.filter(pl.col("metric") != want).join(have, on=on, how="anti")
    if other.height:
        datasets = ", ".join(dict.fromkeys(other["dataset"].to_list()))
        tables = ", ".join(dict.fromkeys(other["table"].to_list()))
        theirs = other["metric"][0]
        notes.append(
            f"{tables} publish {_METRIC_WORDS.get(theirs, theirs)} for {datasets}, not "
            f"{_METRIC_WORDS[want]}: their published cells are '-' under --metric {metric}; pass --metric "
            f"{theirs} to compare them"
        )
    return tuple(notes)


# -------------------------------------------------------------------------------------- best configs


def _config_text(params_json: str | None, method: str | None, model: str | None, config: str | None) -> str:
    """A trial's point in its search space less the seed (and less dataset and noise, which are table
    columns), as 'path=value' pairs; a run made outside a sweep is described by method, model and what
    else differs from the method's defaults (`confdiff`)."""
    params: dict[str, Any] = json.loads(params_json) if params_json else {}
    if not isinstance(params, dict) or not params:
        plain = f"method={method}, model.name={model}"
        return f"{plain}, {config}" if config else plain
    shown = {k: v for k, v in sorted(params.items()) if k not in ("seed", "data.dataset", "data.noise")}
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in shown.items())


def _study_objective(study: str | None, fallback: str) -> tuple[str, str]:
    if study:
        from noisylab.sweeps import get_study, study_names

        if study in study_names():
            s = get_study(study)
            return s.metric, s.mode
    return fallback, "max"


_BEST_SCHEMA: dict[str, pl.DataType] = {
    "study": pl.String(),
    "dataset": pl.String(),
    "noise": pl.String(),
    "profile": pl.String(),
    "metric": pl.String(),
    "best": pl.String(),
    "mean": pl.Float64(),
    "std": pl.Float64(),
    "n": pl.UInt32(),
    "configs": pl.UInt32(),
    "margin": pl.Float64(),
}


def best_configs(records: pl.DataFrame, metric: str = "acc") -> pl.DataFrame:
    """Per study × dataset × noise × profile: the configuration with the best mean of the study's
    metric (its `metric`/`mode`; `metric` here for runs outside a known study), with the number of
    configurations compared and the margin to the runner-up. Metrics that are fractions are in %.
    For a plain grid the configurations are the methods, so this is the best method per cell."""
    fallback = metric_column(metric)
    if records.height == 0:
        return pl.DataFrame(schema=_BEST_SCHEMA)
    records = with_config_columns(records)
    configs = [
        _config_text(*row) for row in records.select("params_json", "method", "model", "config").iter_rows()
    ]
    frame = records.with_columns(pl.Series("_config", configs, dtype=pl.String))
    rows: list[dict[str, Any]] = []
    for (study,), part in frame.group_by(["study"], maintain_order=True):
        column, mode = _study_objective(study, fallback)
        if column not in part.columns:
            column, mode = fallback, "max"
        scale = 100.0 if column in FRACTIONS else 1.0
        value = pl.col(column).cast(pl.Float64) * scale
        cell = ["dataset", "noise_kind", "noise_rate", "noise", "profile"]
        stats = part.group_by([*cell, "_config"]).agg(
            value.mean().alias("mean"), value.std(ddof=1).alias("std"), value.count().alias("n")
        )
        stats = stats.filter(pl.col("mean").is_not_null())
        for _, options in stats.group_by(cell, maintain_order=True):
            ranked = options.sort("mean", "_config", descending=[mode == "max", False])
            best = ranked.row(0, named=True)
            margin = abs(best["mean"] - ranked["mean"][1]) if ranked.height > 1 else None
            rows.append(
                {
                    "study": study,
                    "dataset": best["dataset"],
                    "noise": noise_label(best["noise_kind"], best["noise_rate"], best["noise"]),
                    "profile": best["profile"],
                    "metric": f"{column} ({mode})",
                    "best": best["_config"],
                    "mean": best["mean"],
                    "std": best["std"],
                    "n": best["n"],
                    "configs": ranked.height,
                    "margin": margin,
                    "_rate": best["noise_rate"],
                }
            )
    out = pl.DataFrame(rows, schema=_BEST_SCHEMA | {"_rate": pl.Float64()}, orient="row")
    return out.sort("study", "dataset", "_rate", "noise", "profile", nulls_last=True).drop("_rate")


# --------------------------------------------------------------------------------------- diagnostics

_GROUP = ["method", "model", "profile", "config", "dataset", "noise_kind", "noise_rate", "noise"]


def _exploded(records: pl.DataFrame, column: str) -> pl.DataFrame | None:
    """One row per element of a list-of-struct column, with the run's grouping columns; None when no
    record has such elements (baselines have no stages)."""
    if column not in records.columns:
        return None
    dtype = records.schema[column]
    if not isinstance(dtype, pl.List) or not isinstance(dtype.inner, pl.Struct):
        return None
    rows = with_config_columns(records).select(*_GROUP, "run_id", column).explode(column).drop_nulls(column)
    return rows.unnest(column) if rows.height else None


def _labelled(frame: pl.DataFrame) -> pl.DataFrame:
    labels = [
        noise_label(k, r, n) for k, r, n in frame.select("noise_kind", "noise_rate", "noise").iter_rows()
    ]
    return frame.with_columns(pl.Series("noise", labels, dtype=pl.String))


def _pct(name: str) -> pl.Expr:
    return (pl.col(name).cast(pl.Float64).mean() * 100).alias(f"{name}_pct")


_SELECTION_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "model": pl.String(),
    "profile": pl.String(),
    "config": pl.String(),
    "dataset": pl.String(),
    "noise": pl.String(),
    "iteration": pl.Int64(),
    "stage": pl.Int64(),
    "n": pl.UInt32(),
    "selected_size": pl.Float64(),
    "selected_precision_pct": pl.Float64(),
    "selected_recall_pct": pl.Float64(),
}


def _per_step_means(
    records: pl.DataFrame, column: str, keys: list[str], aggs: list[pl.Expr], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """Explode the per-step list `column` of every record and average `aggs` over seeds per method ×
    model × profile × dataset × noise × `keys`, with the number of runs `n`."""
    rows = _exploded(records, column)
    if rows is None:
        return pl.DataFrame(schema=schema)
    out = (
        rows.group_by([*_GROUP, *keys])
        .agg(pl.col("run_id").n_unique().cast(pl.UInt32).alias("n"), *aggs)
        .sort("dataset", "noise_kind", "noise_rate", "method", "model", "profile", *keys)
    )
    return _conform(_labelled(out), schema)


def selection_table(records: pl.DataFrame) -> pl.DataFrame:
    """Per method × dataset × noise × refinement iteration × stage: the mean over seeds of the
    selected set's size, precision (share of selected samples whose label is right) and recall (share
    of right labels that were selected), against the clean labels."""
    aggs = [
        pl.col("selected_size").cast(pl.Float64).mean(),
        _pct("selected_precision"),
        _pct("selected_recall"),
    ]
    return _per_step_means(records, "stages", ["iteration", "stage"], aggs, _SELECTION_SCHEMA)


_REFINEMENT_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "model": pl.String(),
    "profile": pl.String(),
    "config": pl.String(),
    "dataset": pl.String(),
    "noise": pl.String(),
    "iteration": pl.Int64(),
    "n": pl.UInt32(),
    "consensus_size": pl.Float64(),
    "consensus_label_precision_pct": pl.Float64(),
    "relabelled": pl.Float64(),
    "label_acc_pct": pl.Float64(),
}


def refinement_table(records: pl.DataFrame) -> pl.DataFrame:
    """Per method × dataset × noise × refinement iteration: the mean over seeds of the consensus set's
    size, the share of its new labels that are right, how many labels changed, and the accuracy of
    the whole training label vector afterwards."""
    aggs = [
        pl.col("consensus_size").cast(pl.Float64).mean(),
        _pct("consensus_label_precision"),
        pl.col("relabelled").cast(pl.Float64).mean(),
        _pct("label_acc"),
    ]
    return _per_step_means(records, "iterations", ["iteration"], aggs, _REFINEMENT_SCHEMA)


# ---------------------------------------------------------------------------------------------- time

_TIME_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "model": pl.String(),
    "profile": pl.String(),
    "config": pl.String(),
    "dataset": pl.String(),
    "noise": pl.String(),
    "n": pl.UInt32(),
    "median_wall_s": pl.Float64(),
    "vs_ce": pl.Float64(),
}


def time_table(records: pl.DataFrame, *, baseline: str = "ce") -> pl.DataFrame:
    """Median wall time per method × model × profile × dataset × noise, and `vs_ce`: the median over
    the method's runs of (run's wall time / median wall time of the `baseline` runs with the same
    dataset × noise × profile); empty where no baseline ran. When the records span several dataset ×
    noise cells, one more row per method (dataset and noise 'all') gives the median over all of them."""
    if records.height == 0:
        return pl.DataFrame(schema=_TIME_SCHEMA)
    records = with_config_columns(records)
    cell = ["dataset", "noise_kind", "noise_rate", "noise", "profile"]
    base = (
        records.filter(pl.col("method") == baseline)
        .group_by(cell)
        .agg(pl.col("wall_seconds").median().alias("_base"))
    )
    runs = records.join(base, on=cell, how="left", nulls_equal=True).with_columns(
        (pl.col("wall_seconds") / pl.col("_base")).alias("_ratio")
    )
    stats = [
        pl.len().cast(pl.UInt32).alias("n"),
        pl.col("wall_seconds").median().alias("median_wall_s"),
        pl.col("_ratio").median().alias("vs_ce"),
    ]
    per_cell = _labelled(runs.group_by(_GROUP).agg(stats)).sort(
        "dataset", "noise_kind", "noise_rate", "method", "model", "profile"
    )
    out = per_cell.select(list(_TIME_SCHEMA))
    if records.select(cell[:-1]).unique().height > 1:
        overall = (
            runs.group_by("method", "model", "profile", "config")
            .agg(stats)
            .sort("method", "model", "profile", "config")
        )
        overall = overall.with_columns(pl.lit("all").alias("dataset"), pl.lit("all").alias("noise"))
        out = pl.concat([out, overall.select(list(_TIME_SCHEMA))])
    return _conform(out, _TIME_SCHEMA)


# ------------------------------------------------------------------------------------------ assembly

TABLES = ("pivot", "cells", "best", "diagnostics", "time", "all")


def _planned_profile(study: Any, profile: str | None, records: pl.DataFrame) -> str:
    """The study profile whose grid is planned: the one asked for; else the one whose run profile the
    records were made with; else gpu (the report's recipe) when the study has it."""
    if profile is not None:
        study.profile(profile)  # UserError for a profile the study lacks
        return profile
    ran = set(records["profile"].drop_nulls().to_list()) if records.height else set()
    for name, sweep in study.profiles.items():
        if sweep.run_profile in ran:
            return str(name)
    return "gpu" if "gpu" in study.profiles else str(next(iter(study.profiles)))


def report_tables(
    records: pl.DataFrame | None,
    *,
    table: str = "pivot",
    metric: str = "acc",
    study: Any | None = None,
    profile: str | None = None,
    published: pl.DataFrame | None = None,
) -> list[Titled]:
    """The tables `noisylab report` shows. With a `study`, its planned grid fills the cells no record
    covers; with `published`, the pivot is replaced by the comparison with the published numbers."""
    if table not in TABLES:
        raise UserError(f"unknown table '{table}': choose one of {', '.join(TABLES)}")
    metric_column(metric)
    records = records if records is not None else pl.DataFrame()
    cell_table = cells(records, metric)
    method_order: list[str] = []
    name = ""
    coverage: tuple[int, int] | None = None
    if study is not None:
        planned = planned_cells(study, _planned_profile(study, profile, records))
        missing = with_planned(cell_table, planned).height - cell_table.height
        coverage = (planned.height - missing, planned.height)
        cell_table = with_planned(cell_table, planned)
        method_order = [str(m) for m in study.grid.get("method", ())]
        name = f"{study.name}: "
    scale = budget(cell_table)  # every caption names it: a tiny run's table must not pass for the paper's
    what = METRIC_NAMES[metric].removeprefix("test ")
    chosen = ["pivot", "cells", "best", "diagnostics", "time"] if table == "all" else [table]
    if table == "all" and published is not None:
        chosen.insert(0, "vs_paper")  # every table: the comparison and the plain pivot both
    out: list[Titled] = []
    for t in chosen:
        comparing = t == "vs_paper" or (t == "pivot" and table != "all")
        if comparing and published is not None:
            compared = vs_paper(cell_table, published, metric)
            out.append(
                Titled(
                    "vs_paper",
                    f"{name}test {what} % (mean ± std over seeds) vs published; diff = measured − published; "
                    f"{scale}",
                    compared,
                    notes=vs_paper_notes(compared, cell_table, published, metric, planned=coverage),
                )
            )
        elif t == "pivot":
            title = f"{name}test {what} % (mean ± std over seeds, n runs); {scale}"
            shown = pivot(cell_table, method_order=method_order)
            numbers = pivot_numbers(cell_table, method_order=method_order)
            labels = [c for c in shown.columns if c not in numbers.columns]
            out.append(Titled("pivot", title, shown, data=numbers, bold=best_cells(numbers, labels)))
        elif t == "cells":
            out.append(Titled("cells", f"{name}test {what} % per cell; {scale}", cell_table))
        elif t == "best":
            out.append(
                Titled(
                    "best",
                    f"{name}best configuration per dataset × noise; {scale}",
                    best_configs(records, metric),
                )
            )
        elif t == "diagnostics":
            out.append(
                Titled(
                    "selection",
                    f"{name}selection per stage (against clean labels); {scale}",
                    selection_table(records),
                )
            )
            out.append(
                Titled("refinement", f"{name}refinement per iteration; {scale}", refinement_table(records))
            )
        elif t == "time":
            out.append(
                Titled(
                    "time", f"{name}wall time (vs_ce: × the ce runs' median); {scale}", time_table(records)
                )
            )
    return out
