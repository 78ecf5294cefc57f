"""The table of bad inputs in BENCHMARKS.md: every case of tests/test_bad_inputs.py, run through the CLI.

    .venv/bin/python benchmarks/bad_inputs_table.py > /tmp/table.md

Prints one Markdown row per case: the input, the exit code and the one line the user sees, the `error:`
line of a refusal or the `warning:` line of a run that repaired its input (folders of the run shortened
to `<tmp>`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_bad_inputs as catalogue
from conftest import _digits


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        img, y = _digits()
        npz = base / "digits.npz"
        np.savez(
            npz, train_images=img[:1400], train_labels=y[:1400], test_images=img[1400:], test_labels=y[1400:]
        )
        catalogue.DIGITS[:] = [npz]
        print("| input | exit | the one line |")
        print("|---|---|---|")
        for i, case in enumerate(catalogue.CASES):
            tmp = base / f"case{i}"
            tmp.mkdir()
            code, stderr, _, _, _ = catalogue.run_case(case, tmp, npz)
            shown = " ".join(catalogue.shown_line(code, stderr).split())
            line = shown.replace(str(tmp), "<tmp>").replace(str(npz), "<digits.npz>")
            cell = line.replace("|", "\\|")  # a pipe would end the Markdown cell
            print(f"| {case.id} | {code} | `{cell}` |")


if __name__ == "__main__":
    main()
