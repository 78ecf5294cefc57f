"""The `paper_ablation` study: which component of the report's pipeline moves accuracy, at one CPU budget.

    .venv/bin/python benchmarks/paper_ablation.py                  # run (or resume) the study, then print
    .venv/bin/python benchmarks/paper_ablation.py --report-only    # print from an existing store

The study runs with `noisylab sweep paper_ablation --profile cpu --local` (two trials at once, no Ray).
Prints Markdown tables: test accuracy and macro-F1 (mean ± std over seeds), the median wall time of each
arm relative to `ce` (a reused pre-training counts with the seconds it took), classes the arm gave up on
(test accuracy under 5 %, mean per run), and, for the arms that refine labels, the consensus set and the
labels after each iteration: its size, the share of its new labels that are right, how many labels
changed, and the share of right labels in the whole training set.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import polars as pl
from study_records import study_records

from noisylab.results.report import cells, pivot, time_table
from noisylab.results.tables import to_markdown

STUDY = "paper_ablation"
LOST = 0.05  # a class whose test accuracy is under this was given up on
ITERATION_KEYS = ("consensus_size", "consensus_label_precision", "relabelled", "label_acc")


def lost_classes(records: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for (method, noise), group in records.group_by(["method", "noise"], maintain_order=True):
        lost = [sum(1 for a in accs if a is not None and a < LOST) for accs in group["test_class_acc"]]
        worst = [min(a for a in accs if a is not None) for accs in group["test_class_acc"]]
        rows.append(
            {
                "method": method,
                "noise": noise,
                "classes lost (mean per run)": statistics.mean(lost),
                "worst class acc %": round(100 * statistics.mean(worst), 1),
            }
        )
    return pl.DataFrame(rows).sort("method", "noise")


def iteration_table(records: pl.DataFrame) -> pl.DataFrame:
    """Per refining arm × noise × iteration: the consensus and label figures, mean over seeds."""
    rows = []
    for (method, noise), group in records.group_by(["method", "noise"], maintain_order=True):
        per_iteration: dict[int, dict[str, list[float]]] = {}
        clean_share = 1 - statistics.mean(group["realised_noise_rate"].to_list())
        for history_json in group["history_json"]:
            for h in json.loads(history_json):
                if "label_acc" in h:
                    slot = per_iteration.setdefault(int(h["iteration"]), {k: [] for k in ITERATION_KEYS})
                    for k in ITERATION_KEYS:
                        if h.get(k) is not None:
                            slot[k].append(float(h[k]))
        for iteration, values in sorted(per_iteration.items()):
            row: dict[str, Any] = {"method": method, "noise": noise, "iteration": iteration}
            for k in ITERATION_KEYS:
                vals = [v for v in values[k] if v == v]  # NaN: an empty consensus has no precision
                scale = 100.0 if k in ("consensus_label_precision", "label_acc") else 1.0
                row[k] = round(scale * statistics.mean(vals), 1) if vals else None
            row["labels right before %"] = round(100 * clean_share, 1)
            rows.append(row)
    if not rows:
        return pl.DataFrame({"method": [], "noise": [], "iteration": []})
    return pl.DataFrame(rows, infer_schema_length=None).sort("method", "noise", "iteration")


def main() -> None:
    records = study_records(STUDY, __doc__, local=True)
    from noisylab.sweeps.paper_ablation import ARMS

    order = [m for m in ARMS if m in set(records["method"].to_list())]
    print(f"### {STUDY}: test accuracy % (mean ± std over seeds), {len(records)} runs\n")
    print(to_markdown(pivot(cells(records, "acc"), method_order=order)))
    print("\n### macro-F1 %\n")
    print(to_markdown(pivot(cells(records, "f1"), method_order=order)))
    print("\n### wall time, median over runs, × ce's median at the same noise rate\n")
    print(to_markdown(time_table(records).filter(pl.col("noise") == "all").sort("vs_ce")))
    print(f"\n### classes given up on (test accuracy < {100 * LOST:.0f} %)\n")
    print(to_markdown(lost_classes(records)))
    print("\n### label refinement per iteration (mean over seeds)\n")
    print(to_markdown(iteration_table(records)))


if __name__ == "__main__":
    main()
