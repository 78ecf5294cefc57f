"""The report's pipeline against plain cross-entropy on Fashion-MNIST with IDN noise, CPU profile.

Runs (or reuses, when already finished under --storage) every method × noise rate × seed through
`noisylab run`'s driver with one Ray Train worker, then prints mean ± std over seeds of test accuracy,
macro-F1, wall time, and the label precision of the pipeline's consensus sets against the clean labels.

    .venv/bin/python benchmarks/paper_vs_ce.py --storage runs/paper_vs_ce [--seeds 0 1 2] [--rates 0.3 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl

from noisylab.config.profiles import make_config
from noisylab.results.records import RECORD_FILE
from noisylab.runner import execute


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", type=Path, default=Path("runs/paper_vs_ce"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.3, 0.5])
    ap.add_argument("--methods", nargs="+", default=["paper", "ce"])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--set", dest="sets", nargs="*", default=[], help="extra PATH=VALUE overrides")
    ap.add_argument("--report-only", action="store_true", help="only tabulate finished runs")
    args = ap.parse_args()
    extra = dict(s.split("=", 1) for s in args.sets)

    if not args.report_only:
        for seed in args.seeds:  # seeds outermost: every finished seed is a complete comparison
            for rate in args.rates:
                for method in args.methods:
                    cfg = make_config(
                        args.profile,
                        {"method": method, "seed": seed, "data.noise": f"idn:{rate}", "workers": args.workers}
                        | extra,
                    )
                    out = execute(cfg, storage=args.storage, progress=False, use_ray=args.workers > 0)
                    r = out.record
                    print(
                        f"{method:6s} idn:{rate} seed {seed}: acc {r['test_acc']:.4f} f1 {r['test_f1']:.4f} "
                        f"{r['wall_seconds']:.0f} s{' (reused)' if out.already_done else ''}",
                        file=sys.stderr,
                        flush=True,
                    )
    print(table(args.storage))


def consensus_precision(row: dict[str, Any]) -> float | None:
    its = row["iterations"]
    sizes = [it["consensus_size"] for it in its]
    hits = [it["consensus_size"] * (it["consensus_label_precision"] or 0.0) for it in its]
    return sum(hits) / sum(sizes) if its and sum(sizes) else None


def table(storage: Path) -> str:
    rows = [pl.read_parquet(p).row(0, named=True) for p in sorted(storage.glob(f"*/{RECORD_FILE}"))]
    if not rows:
        return "no finished runs"
    df = pl.DataFrame(
        [
            {
                "method": r["method"],
                "noise": r["noise"],
                "seed": r["seed"],
                "acc": 100 * r["test_acc"],
                "f1": 100 * r["test_f1"],
                "wall_s": r["wall_seconds"],
                "realised": 100 * r["realised_noise_rate"],
                "consensus_prec": None if (c := consensus_precision(r)) is None else 100 * c,
                "consensus_n": sum(it["consensus_size"] for it in r["iterations"])
                / max(len(r["iterations"]), 1),
                "warmup_acc": None if r["warmup_test_acc"] is None else 100 * r["warmup_test_acc"],
                "profile": r["profile"],
            }
            for r in rows
        ]
    )
    agg = (
        df.group_by("noise", "method")
        .agg(
            pl.len().alias("seeds"),
            pl.col("realised").mean(),
            pl.col("acc").mean().alias("acc_mean"),
            pl.col("acc").std().alias("acc_std"),
            pl.col("f1").mean().alias("f1_mean"),
            pl.col("f1").std().alias("f1_std"),
            pl.col("consensus_prec").mean().alias("cons_prec"),
            pl.col("consensus_n").mean().alias("cons_n"),
            pl.col("warmup_acc").mean().alias("warmup_acc"),
            pl.col("wall_s").median().alias("wall_s"),
        )
        .sort("noise", "method", descending=[False, True])
    )
    lines = [
        f"profile: {', '.join(sorted(set(df['profile'])))}; mean ± std over seeds",
        "| noise | method | seeds | realised noise % | test acc % | macro-F1 % | consensus label precision % "
        "| consensus size (mean per iteration) | warm-up acc % | median wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in agg.iter_rows(named=True):

        def pm(m: float | None, s: float | None) -> str:
            return "-" if m is None else f"{m:.2f} ± {0.0 if s is None else s:.2f}"

        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.2f}"

        acc, f1 = pm(r["acc_mean"], r["acc_std"]), pm(r["f1_mean"], r["f1_std"])
        cons_n = f(r["cons_n"]) if r["cons_prec"] else "-"
        lines.append(
            f"| {r['noise']} | {r['method']} | {r['seeds']} | {r['realised']:.1f} | {acc} | {f1} "
            f"| {f(r['cons_prec'])} | {cons_n} | {f(r['warmup_acc'])} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n\n" + json.dumps({"runs": len(rows)})


if __name__ == "__main__":
    main()
