"""Fixed-seed records of every method, to show that a change of the engine changed no result.

Each method runs once, in-process, on scikit-learn's digits (the `tiny` profile, 400 images, width 8,
symmetric noise 30 %, seed 0). What is kept is everything the run computed: the per-epoch history
without its clocks (seconds, images/s) and the final metrics. `--compare` prints, per method, whether
two such files agree exactly.

    .venv/bin/python benchmarks/method_records.py --out before.json            # on the old code
    .venv/bin/python benchmarks/method_records.py --out after.json             # on the new code
    .venv/bin/python benchmarks/method_records.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CLOCKS = {"seconds", "images_per_s", "wall_seconds", "started_at", "finished_at"}
FINAL = ("test_acc", "test_f1", "final_label_acc", "epochs")


def write_digits(path: Path) -> Path:
    """scikit-learn's digits as a MedMNIST-layout .npz: 16×16 uint8, first 1,400 for training."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = (d.images * 255.0 / 16.0).round().astype(np.uint8).repeat(2, axis=1).repeat(2, axis=2)
    y = d.target.astype(np.int64)
    np.savez(path, train_images=img[:1400], train_labels=y[:1400, None], test_images=img[1400:],
             test_labels=y[1400:, None])  # fmt: skip
    return path


def record_of(method: str, npz: Path, storage: Path) -> dict[str, Any]:
    from noisylab.api import run

    overrides = {
        "data.dataset": "npz",
        "data.root": str(npz),
        "data.noise": "sym:0.3",
        "data.train_subset": 400,
        "data.test_subset": 200,
        "data.crop_padding": 1,
        "data.flip": False,
        "model.width": 8,
        "baseline.epochs": 5,  # long enough for DivideMix's λ_u ramp and Co-teaching's forget-rate ramp
        "dividemix.warmup_epochs": 2,
        "coteaching.gradual_epochs": 2,
        "workers": 0,
        "method": method,
        "profile": "tiny",
    }
    rec = run(None, storage=storage, name=method, **{k.replace(".", "__"): v for k, v in overrides.items()})
    history = [{k: v for k, v in row.items() if k not in CLOCKS} for row in json.loads(rec["history_json"])]
    return {"history": history} | {k: rec.get(k) for k in FINAL}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--methods", nargs="*", help="default: every method that is not a variant, and paper_byol"
    )
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        print("| method | epochs | history and final metrics |\n| :--- | ---: | :--- |")
        same = True
        for method in sorted(set(before) | set(after)):
            a, b = before.get(method), after.get(method)
            verdict = "identical" if a == b else ("only in one file" if a is None or b is None else "DIFFER")
            same &= verdict == "identical"
            print(f"| {method} | {len((a or b)['history'])} | {verdict} |")
        sys.exit(0 if same else 1)
    from noisylab.config.variants import VARIANTS
    from noisylab.trainables import method_names

    # Every trainable once, and BYOL pre-training (its EMA update is per optimiser step).
    methods = args.methods or [m for m in method_names() if m not in VARIANTS] + ["paper_byol"]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        npz = write_digits(Path(d) / "digits.npz")
        for method in methods:
            out[method] = record_of(method, npz, Path(d) / "runs")
            print(f"{method}: {len(out[method]['history'])} epochs, test acc {out[method]['test_acc']}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
