"""CIFAR-10/100 pickles in torchvision's layout, and the restricted unpickler that reads them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from noisylab.data import load_dataset
from noisylab.data.cifar import safe_unpickle
from noisylab.errors import UserError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _dump(path: Path, obj: Any, protocol: int = 2) -> None:
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)


def _batch(rng: np.random.Generator, n: int, label_key: bytes, classes: int) -> dict[bytes, Any]:
    """A batch dict shaped like the original (Python 2) files: bytes keys, uint8 [N, 3072] data."""
    return {
        b"batch_label": b"training batch",
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _write_cifar10(root: Path, protocol: int = 2) -> dict[str, dict[bytes, Any]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": _batch(rng, 2, b"labels", 10) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, 3, b"labels", 10)
    for name, batch in batches.items():
        _dump(folder / name, batch, protocol)
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": 2, b"num_vis": 3072}
    _dump(folder / "batches.meta", meta, protocol)
    return batches


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_round_trip(tmp_path: Path, protocol: int) -> None:
    batches = _write_cifar10(tmp_path, protocol)
    data = load_dataset("cifar10", tmp_path)
    assert data.train.images.shape == (10, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (3, 3, 32, 32)
    assert data.train.class_names == tuple(CIFAR10_NAMES)
    first = batches["data_batch_1"][b"data"][0]
    # Rows are R plane, G plane, B plane: pixel (row 0, col 1) of green is element 1024 + 1.
    assert int(data.train.images[0, 1, 0, 1]) == int(first[1024 + 1])
    assert np.array_equal(data.train.images[0].numpy(), first.reshape(3, 32, 32))
    expected = [label for i in range(1, 6) for label in batches[f"data_batch_{i}"][b"labels"]]
    assert data.train.labels.tolist() == expected
    assert data.test.labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar10_resize(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    assert load_dataset("cifar10", tmp_path, image_size=16).train.images.shape == (10, 3, 16, 16)


def test_cifar100_with_str_keys(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    train = {
        "data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        "fine_labels": [0, 99, 5, 5],
        "coarse_labels": [0, 1, 2, 3],
    }
    test: dict[str, Any] = {
        "data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
        "fine_labels": [1, 2],
        "coarse_labels": [0, 0],
    }
    _dump(folder / "train", train, protocol=4)
    _dump(folder / "test", test, protocol=4)
    meta = {"fine_label_names": [f"c{k}" for k in range(100)], "coarse_label_names": ["x"] * 20}
    _dump(folder / "meta", meta)
    data = load_dataset("cifar100", tmp_path)
    assert data.train.num_classes == 100 and data.train.class_names[99] == "c99"
    assert data.train.labels.tolist() == [0, 99, 5, 5]
    assert np.array_equal(data.test.images.numpy().reshape(2, 3072), test["data"])


def test_python2_pickle_as_in_the_original_files(tmp_path: Path) -> None:
    """The real batches were written by Python 2 cPickle: str opcodes and numpy.core globals."""
    opcodes = (
        b"\x80\x02}q\x00(U\x04data"
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        b"(K\x01K\x02K\x03\x86cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        b"\x89U\x06\x00\x01\x02\x03\x04\xfftb"
        b"U\x06labels](K\x01K\x02eu."
    )
    (tmp_path / "batch").write_bytes(opcodes)
    batch = safe_unpickle(tmp_path / "batch")
    assert batch["labels"] == [1, 2]
    assert batch["data"].dtype == np.uint8
    assert batch["data"].tolist() == [[0, 1, 2], [3, 4, 255]]


class _Exploit:
    """Unpickling this calls os.system; a safe loader must refuse before the call."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_disallowed_global_is_refused_not_run(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    _dump(tmp_path / "cifar-10-batches-py" / "data_batch_3", {b"data": _Exploit(marker), b"labels": []})
    with pytest.raises(UserError, match=r"refusing to unpickle .*data_batch_3.*(posix|os)\.system"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_truncated_pickle(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match=r"test_batch .*corrupt or truncated"):
        load_dataset("cifar10", tmp_path)


def test_missing_batch_file(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(UserError, match=r"data_batch_5 does not exist"):
        load_dataset("cifar10", tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"CIFAR-100 not found .*cifar-100-python/"):
        load_dataset("cifar100", tmp_path)


def test_wrong_data_shape(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    _dump(
        tmp_path / "cifar-10-batches-py" / "data_batch_2",
        {b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]},
    )
    with pytest.raises(UserError, match=r"data_batch_2: 'data' must be a uint8 array \[N, 3072\]"):
        load_dataset("cifar10", tmp_path)


def test_label_outside_classes(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 10]}
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", batch)
    with pytest.raises(UserError, match=r"label 10 outside the 10 classes"):
        load_dataset("cifar10", tmp_path)
