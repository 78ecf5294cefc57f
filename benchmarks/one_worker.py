"""One worker on one machine: in this process against Ray Train, measured side by side.

The same command, `noisylab run --method ce --noise idn:0.3 --profile cpu-small --seed 3` on
Fashion-MNIST, in four ways, alternated round after round so that a machine whose load changes weighs on
each alike:

    in-process     --workers 0
    default        no --workers: one worker, which trains in this process
    ray            --address local: Ray Train with one worker, on a Ray of the run's own (workers at the
                   driver's priority)
    ray-nice15     the same with RAY_worker_niceness=15: Ray's own default, what `noisylab run` did before

Each run is its own process; the script prints its wall time, the seconds until its first epoch ended
(start-up: imports, Ray, data), the seconds its epochs computed (`seconds` in metrics.jsonl) and the rest
(per-epoch reporting and checkpoints), and the ratios to the in-process median, with the load average.

    .venv/bin/python benchmarks/one_worker.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["run", "--method", "ce", "--noise", "idn:0.3", "--seed", "3"]
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "in-process": (["--workers", "0"], {}),
    "default": ([], {}),
    "ray": (["--address", "local"], {}),
    "ray-nice15": (["--address", "local"], {"RAY_worker_niceness": "15"}),
}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def one_run(variant: str, profile: str, storage: Path, cache: Path) -> dict[str, float]:
    extra, env = VARIANTS[variant]
    exe = str(Path(sys.executable).parent / "noisylab")
    args = [exe, *COMMAND, "--profile", profile, *extra, "--storage", str(storage), "--no-progress"]
    args.append("--no-pretrain-cache")
    started = time.time()
    t0 = time.perf_counter()
    done = subprocess.run(
        args, env=os.environ | env | {"NOISYLAB_CACHE": str(cache)}, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    (metrics,) = storage.glob("*/metrics.jsonl")
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    compute = sum(r["seconds"] for r in rows)
    first = rows[0]["time"] - started - rows[0]["seconds"]  # until the first epoch began
    return {"wall": wall, "startup": first, "compute": compute, "rest": wall - first - compute}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--profile", default="cpu-small", help="tiny: a check of the script in a minute")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        # The IDN draw of seed 3 on all 60,000 images, once, so that no timed run pays for it.
        warm = [
            str(Path(sys.executable).parent / "noisylab"),
            *COMMAND,
            "--profile",
            "tiny",
            "--workers",
            "0",
        ]
        warm += ["--storage", str(Path(scratch) / "warm"), "--no-progress"]
        subprocess.run(warm, env=os.environ | {"NOISYLAB_CACHE": str(cache)}, capture_output=True, check=True)
        for round_ in range(args.rounds):
            for variant in args.variants:
                before = load()
                row = one_run(variant, args.profile, Path(scratch) / f"{variant}-{round_}", cache)
                results[variant].append(row)
                print(
                    f"round {round_ + 1} {variant:<11} wall {row['wall']:6.1f} s  "
                    f"start-up {row['startup']:5.1f} s  epochs {row['compute']:6.1f} s  "
                    f"rest {row['rest']:5.1f} s  (load {before} → {load()})",
                    flush=True,
                )
    base = statistics.median(r["wall"] for r in results.get("in-process", results[args.variants[0]]))
    print("\n| way | runs | median wall s | × in-process | start-up s | epochs s | reports and the rest s |")
    print("|---|---|---|---|---|---|---|")
    for variant, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"| {variant} | {len(rows)} | {med['wall']:.1f} | {med['wall'] / base:.2f} | "
            f"{med['startup']:.1f} | {med['compute']:.1f} | {med['rest']:.1f} |"
        )


if __name__ == "__main__":
    main()
