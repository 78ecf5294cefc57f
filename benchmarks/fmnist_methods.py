"""Every method on Fashion-MNIST (the `fmnist_methods` study): accuracy, wall time against `ce`, and each
method's own mechanism measured against the clean labels — the numbers that tell a weak result from a bug.

    .venv/bin/python benchmarks/fmnist_methods.py                  # run (or resume) the study, then print
    .venv/bin/python benchmarks/fmnist_methods.py --report-only    # print from an existing store

Prints Markdown tables: the pivot (mean ± std over seeds), the median wall time relative to `ce`, and
per method × noise rate the last epoch's mechanism figures (Co-teaching's kept-set precision, DivideMix's
division precision/recall, Forward's transition-matrix error, Reweight's mean weight on wrong and right
labels, Decoupling's share of updates on wrong labels, the pipeline's consensus-label precision and
label accuracy) next to the share of right labels in the data, plus the worst class's test accuracy.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import polars as pl
from study_records import study_records

from noisylab.results.report import cells, pivot, time_table
from noisylab.results.tables import to_markdown

STUDY = "fmnist_methods"

# Per method: the history keys that show its mechanism at work (last epoch that has them).
MECHANISMS: dict[str, tuple[str, ...]] = {
    "coteaching": ("kept_fraction", "kept_precision_net1", "kept_precision_net2"),
    "dividemix": ("division_net1_precision", "division_net1_recall", "division_net1_size"),
    "forward": ("transition_error",),
    "reweight": ("transition_error", "beta_mean_wrong", "beta_mean_right"),
    "decoupling": ("update_fraction", "update_noisy_share", "seen_noisy_share"),
    "paper": ("consensus_label_precision", "consensus_size", "label_acc"),
    "paper_focal": ("consensus_label_precision", "consensus_size", "label_acc"),
    "paper_swce_focal": ("consensus_label_precision", "consensus_size", "label_acc"),
    "paper_byol": ("consensus_label_precision", "consensus_size", "label_acc"),
}


def last_values(history_json: str, keys: tuple[str, ...]) -> dict[str, float]:
    history: list[dict[str, Any]] = json.loads(history_json)
    out: dict[str, float] = {}
    for row in history:
        for k in keys:
            if row.get(k) is not None:
                out[k] = float(row[k])
    return out


def mechanism_table(records: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for (method, noise), group in records.group_by(["method", "noise"], maintain_order=True):
        keys = MECHANISMS.get(str(method), ())
        per_run = [last_values(h, keys) for h in group["history_json"]]
        row: dict[str, Any] = {
            "method": method,
            "noise": noise,
            "labels right in data %": 100 * (1 - statistics.mean(group["realised_noise_rate"].to_list())),
            "worst class acc %": 100 * statistics.mean(min(c) for c in group["test_class_acc"].to_list()),
        }
        for k in keys:
            values = [r[k] for r in per_run if k in r]
            if values:
                scale = 1.0 if k.endswith(("size", "error")) or k.startswith("beta") else 100.0
                row[k] = f"{scale * statistics.mean(values):.3g}"
        rows.append(row)
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.sort(["method", "noise"])


def main() -> None:
    records = study_records(STUDY, __doc__)
    methods = list(dict.fromkeys(records.sort("method")["method"].to_list()))
    print(f"### {STUDY}: test accuracy % (mean ± std over seeds), {len(records)} runs\n")
    print(to_markdown(pivot(cells(records, "acc"), method_order=methods)))
    print("\n### macro-F1 %\n")
    print(to_markdown(pivot(cells(records, "f1"), method_order=methods)))
    print("\n### wall time, median over runs, × ce's median at the same noise rate\n")
    times = time_table(records).filter(pl.col("noise") == "all")
    print(to_markdown(times.sort("vs_ce")))
    print(
        "\n### mechanisms (last epoch, mean over seeds; precision = share of the set whose label is right)\n"
    )
    print(to_markdown(mechanism_table(records)))


if __name__ == "__main__":
    main()
