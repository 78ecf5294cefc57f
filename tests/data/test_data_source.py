"""Which data a run used: names for reports, absolute roots and content fingerprints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from helpers import digits_config

from noisylab.data.prepare import prepare_data
from noisylab.data.source import MIB, describe_source, file_fingerprint, folder_fingerprint


def test_two_archives_are_two_datasets_and_one_archive_is_one(digits_npz: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    with np.load(digits_npz) as a:
        np.savez(other, **{k: a[k][:-1] if k.startswith("test") else a[k] for k in a.files})
    first = prepare_data(digits_config(digits_npz)).source
    again = prepare_data(digits_config(digits_npz)).source
    second = prepare_data(digits_config(other)).source
    assert first is not None and second is not None and again is not None
    assert (first.name, second.name) == ("digits", "other")
    assert first.root == str(digits_npz.resolve()) and Path(first.root).is_absolute()
    assert first.fingerprint == again.fingerprint != second.fingerprint
    named = prepare_data(digits_config(digits_npz, **{"data.name": "my-digits"}))
    assert named.dataset == "my-digits"


def test_large_file_fingerprint_reads_its_ends(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytearray(3 * MIB)
    path.write_bytes(bytes(data))
    before = file_fingerprint(path)
    stamp = path.stat().st_mtime_ns
    data[-1] = 1  # the last MiB changes; size and mtime are kept
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stamp, stamp))
    assert file_fingerprint(path) != before


def test_folder_fingerprint_and_name(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    (root / "train" / "cat").mkdir(parents=True)
    (root / "train" / "cat" / "a.png").write_bytes(b"x")
    before = describe_source("imagefolder", root)
    assert before.name == "pets" and before.fingerprint == folder_fingerprint(root)
    (root / "train" / "cat" / "b.png").write_bytes(b"y")
    assert describe_source("imagefolder", root).fingerprint != before.fingerprint
    assert describe_source("fashion-mnist", root).name == "fashion-mnist"  # a format with its own name
