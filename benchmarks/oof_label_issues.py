"""Label issues from in-sample against out-of-fold pred_probs, and the fold runs' wall time in parallel
against one after another: Fashion-MNIST, IDN 30 %, a CPU profile.

    .venv/bin/python benchmarks/oof_label_issues.py --storage /tmp/oof-bench [--method ce]
        [--profile cpu-small] [--folds 5] [--repeats 2] [--set PATH=VALUE ...]

`--repeats 0` trains the fold runs once, side by side, for the precision/recall table alone.
`--set` goes to `noisylab run` (the fold runs take the whole run's config), to shrink a profile further on
a machine shared with other work.

Everything goes through the installed `noisylab` command, timed as a user waits for it:

1. `noisylab run` trains the whole (noisy) training set once; its `samples.parquet` holds the final
   network's in-sample pred_probs.
2. `noisylab labels RUN --folds K` trains the K fold runs side by side (as many at once as the CPUs
   allow), and, on fresh storage, `--jobs 1` trains the same K runs one after another with every CPU;
   the two alternate `--repeats` times, so both see the same load.
3. Both probability sets are ranked by cleanlab's `find_label_issues` and by noisylab's own confident
   learning; a flagged label counts as right when the given label differs from the clean one.

Prints two Markdown tables: precision and recall of the flagged sets, and the wall times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from noisylab.results.issues import Ranking, find_issues, score_flags

NOISYLAB = str(Path(sys.executable).parent / "noisylab")


def timed(argv: list[str]) -> float:
    """Seconds `noisylab argv` took; its output goes to this script's stderr."""
    started = time.perf_counter()
    subprocess.run([NOISYLAB, *argv], check=True, stdout=sys.stderr)
    return time.perf_counter() - started


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", type=Path, default=Path("/tmp/oof-bench"))
    ap.add_argument("--method", default="ce")
    ap.add_argument("--profile", default="cpu-small")
    ap.add_argument("--noise", default="idn:0.3")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    args = ap.parse_args()
    store = args.storage.resolve()
    store.mkdir(parents=True, exist_ok=True)
    print(f"load at the start: {load()}", file=sys.stderr)

    run_argv = ["run", "--dataset", "fashion-mnist", "--noise", args.noise, "--method", args.method]
    run_argv += ["--profile", args.profile, "--seed", str(args.seed), "--workers", "0", "--no-progress"]
    run_argv += ["--storage", str(store / "whole"), "--name", "whole"]
    for override in args.overrides:
        run_argv += ["--set", override]
    run_seconds = timed(run_argv)
    whole = store / "whole" / "whole"

    parallel: list[float] = []
    sequential: list[float] = []
    # --repeats 0: the fold runs once, side by side, for the precision/recall table alone (no timing).
    modes: list[tuple[str, list[str], list[float]]] = [("parallel", [], parallel)]
    if args.repeats:
        modes.append(("sequential", ["--jobs", "1"], sequential))
    for r in range(max(args.repeats, 1)):
        for mode, extra, times in modes:
            folder = store / f"{mode}{r}"
            folder.mkdir(exist_ok=True)
            argv = ["labels", str(whole), "--folds", str(args.folds), "--storage", str(folder)]
            argv += ["--output", str(folder / "oof.parquet"), "--overwrite", *extra]
            times.append(timed(argv))
    print(f"load at the end: {load()}", file=sys.stderr)

    samples = pl.read_parquet(whole / "samples.parquet")
    oof = pl.read_parquet(store / "parallel0" / "oof.parquet")
    assert samples["dataset_index"].to_list() == oof["dataset_index"].to_list()  # one sample order
    given, clean = samples["given_label"].to_numpy(), samples["clean_label"].to_numpy()
    wrong = int((given != clean).sum())
    shrunk = f" ({', '.join(args.overrides)})" if args.overrides else ""
    print(
        f"{args.method}, profile {args.profile}{shrunk}, Fashion-MNIST {args.noise}, seed {args.seed}: "
        f"{len(given):,} training labels, {wrong:,} of them wrong; K = {args.folds}\n"
    )
    print("| pred_probs | ranking | flagged | precision % | recall % |")
    print("|---|---|---|---|---|")
    for name, table in (("in-sample (final network)", samples), ("out-of-fold", oof)):
        probs = np.asarray(table["pred_probs"].to_numpy())
        rankings: tuple[Ranking, ...] = ("cleanlab", "builtin")
        for ranking in rankings:
            issues = find_issues(given, probs, ranking=ranking)
            s = score_flags(issues.flagged, given, clean)
            print(f"| {name} | {ranking} | {s.flagged:,} | {100 * s.precision:.1f} | {100 * s.recall:.1f} |")
    if not sequential:
        side = f"the {args.folds} fold runs side by side: {parallel[0]:.0f} s"
        print(f"\nthe in-sample run: {run_seconds:.0f} s; {side}")
        return
    med_p, med_s = statistics.median(parallel), statistics.median(sequential)
    print(f"\n| {args.folds} fold runs | wall time, each repeat (s) | median (s) |")
    print("|---|---|---|")
    print(f"| side by side (default) | {', '.join(f'{t:.0f}' for t in parallel)} | {med_p:.0f} |")
    print(f"| one after another (--jobs 1) | {', '.join(f'{t:.0f}' for t in sequential)} | {med_s:.0f} |")
    ratios = ", ".join(f"{p / s:.2f}" for p, s in zip(parallel, sequential, strict=True))
    print(
        f"\nside by side / one after another: {med_p / med_s:.2f} (medians; per repeat {ratios}); "
        f"the in-sample run alone: {run_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
