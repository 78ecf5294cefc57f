"""The demo's seed-0 result, recorded, so that a change that moves it is seen when it is made.

`make demo` (the pipeline on Fashion-MNIST, IDN 30 %, the `cpu` profile, seed 0) is the figure README and
BENCHMARKS.md quote. `benchmarks/demo_record.json` keeps what that run computed: its config and the
config's fingerprint, the per-epoch history without its clocks, and the final metrics. Two checks read it:

- tests/test_demo_record.py (no training, part of the suite): the config `make demo` builds today has the
  recorded fingerprint, and the figure the documents quote is the recorded one. A changed default (the
  network, an epoch count, a learning rate) fails there, naming the fields that moved.
- this script (one demo run, minutes on 2 cores): the run's history and final metrics equal the recorded
  ones exactly, or it names the first epoch that differs. For changes of the engine's numerics.

    .venv/bin/python benchmarks/demo_record.py                          # run the demo and compare
    .venv/bin/python benchmarks/demo_record.py --check runs/<demo run>  # compare a finished demo run
    .venv/bin/python benchmarks/demo_record.py --record runs/<demo run> # re-record (say why in BENCHMARKS)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RECORD = Path(__file__).resolve().parent / "demo_record.json"
# The Makefile's `demo` target with its seed and its profile on a machine without a GPU made explicit.
DEMO_ARGS = ["run", "--dataset", "fashion-mnist", "--noise", "idn:0.3", "--method", "paper", "--seed", "0"]
DEMO_ARGS += ["--profile", "cpu"]
CLOCKS = {"seconds", "images_per_s", "time"}
FINAL = ("test_acc", "test_f1", "final_label_acc")


def recorded() -> dict[str, Any]:
    return dict(json.loads(RECORD.read_text()))


def result_of(run_dir: Path) -> dict[str, Any]:
    """What a finished demo run computed: config, fingerprint, history without clocks, final metrics."""
    from noisylab.config.run import RunConfig
    from noisylab.results.records import RECORD_FILE, read_record

    rec = read_record(run_dir / RECORD_FILE)
    cfg = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    history = [{k: v for k, v in row.items() if k not in CLOCKS} for row in json.loads(rec["history_json"])]
    return {
        "fingerprint": cfg.fingerprint(),
        "config": json.loads(cfg.to_json()),
        "final": {k: rec.get(k) for k in FINAL},
        "history": history,
    }


def difference(want: dict[str, Any], got: dict[str, Any]) -> str | None:
    """None when `got` is the recorded result; else one line naming where it first differs."""
    if got["fingerprint"] != want["fingerprint"]:
        return f"the config differs (fingerprint {got['fingerprint']}, recorded {want['fingerprint']})"
    for i, (a, b) in enumerate(zip(want["history"], got["history"], strict=False)):
        if a != b:
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            return f"epoch {i + 1} ({a.get('phase')}) differs first, in {', '.join(keys)}"
    if len(want["history"]) != len(got["history"]):
        return f"{len(got['history'])} epochs, recorded {len(want['history'])}"
    if got["final"] != want["final"]:
        return f"final metrics {got['final']}, recorded {want['final']}"
    return None


def run_demo(storage: Path) -> Path:
    """The demo in a fresh store and a fresh cache (nothing reused from earlier runs)."""
    env = os.environ | {"NOISYLAB_CACHE": str(storage / "cache")}
    noisylab = Path(sys.executable).parent / "noisylab"
    args = [*DEMO_ARGS, "--storage", str(storage / "runs"), "--no-progress"]
    subprocess.run([str(noisylab), *args], env=env, check=True)
    (run_dir,) = (storage / "runs").iterdir()
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, metavar="RUN_DIR", help="compare a finished demo run")
    group.add_argument("--record", type=Path, metavar="RUN_DIR", help="write its result as the record")
    args = parser.parse_args()
    if args.record:
        RECORD.write_text(json.dumps(result_of(args.record), indent=1, sort_keys=True) + "\n")
        print(f"wrote {RECORD}")
        return
    if args.check:
        got = result_of(args.check)
    else:
        with tempfile.TemporaryDirectory(prefix="nl-demo-") as scratch:
            got = result_of(run_demo(Path(scratch)))
    verdict = difference(recorded(), got)
    final = got["final"]
    print(f"demo seed 0: test acc {final['test_acc']:.2%}, macro-F1 {final['test_f1']:.2%}")
    if verdict is not None:
        sys.exit(f"the demo's result moved: {verdict}")
    print("identical to benchmarks/demo_record.json")


if __name__ == "__main__":
    main()
