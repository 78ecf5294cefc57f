"""MNIST / Fashion-MNIST IDX files: tiny files with genuine headers, gzipped and raw."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from noisylab.data import load_dataset
from noisylab.data.idx import FASHION_MNIST_CLASSES
from noisylab.errors import UserError

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write(path: Path, payload: bytes, gz: bool) -> None:
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def _write_set(
    root: Path, *, gz: bool, n_train: int = 5, n_test: int = 3, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write(root / f"{prefix}-images-idx3-ubyte", _idx_bytes(images, 2051), gz)
        _write(root / f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels, 2049), gz)
        arrays[f"{prefix}_images"], arrays[f"{prefix}_labels"] = images, labels
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = _write_set(tmp_path, gz=gz)
    data = load_dataset("mnist", tmp_path)
    assert data.name == "mnist"
    assert data.train.images.shape == (5, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (3, 1, 28, 28)
    assert np.array_equal(data.train.images[:, 0].numpy(), arrays["train_images"])
    assert np.array_equal(data.test.images[:, 0].numpy(), arrays["t10k_images"])
    assert data.train.labels.dtype == torch.int64
    assert data.train.labels.tolist() == arrays["train_labels"].tolist()
    assert data.train.class_names == tuple(str(k) for k in range(10))


def test_fashion_mnist_names_and_resize(tmp_path: Path) -> None:
    _write_set(tmp_path, gz=True)
    data = load_dataset("fashion-mnist", tmp_path, image_size=32)
    assert data.train.class_names[0] == "T-shirt/top" and data.train.class_names[-1] == "Ankle boot"
    assert len(data.train.class_names) == 10
    assert data.train.images.shape == (5, 1, 32, 32) and data.train.images.dtype == torch.uint8


def test_torchvision_raw_layout_is_found(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_set(raw, gz=False)
    assert len(load_dataset("mnist", tmp_path).train) == 5


def test_missing_folder_names_file_and_fix(tmp_path: Path) -> None:
    expected = r"Fashion-MNIST not found in .*train-images-idx3-ubyte\[\.gz\].*--data-root"
    with pytest.raises(UserError, match=expected):
        load_dataset("fashion-mnist", tmp_path / "nowhere")


def test_truncated_raw_file(tmp_path: Path) -> None:
    _write_set(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"is truncated"):
        load_dataset("mnist", tmp_path)


def test_truncated_gzip_file(tmp_path: Path) -> None:
    _write_set(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(UserError, match=r"corrupt or truncated"):
        load_dataset("mnist", tmp_path)


def test_wrong_magic(tmp_path: Path) -> None:
    _write_set(tmp_path, gz=False)
    labels = np.zeros(5, dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 2051))
    with pytest.raises(UserError, match=r"magic number 2051, expected 2049"):
        load_dataset("mnist", tmp_path)


def test_image_and_label_counts_must_match(tmp_path: Path) -> None:
    _write_set(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4, dtype=np.uint8), 2049))
    with pytest.raises(UserError, match=r"5 images but .* 4 labels"):
        load_dataset("mnist", tmp_path)


def test_label_beyond_ten_classes(tmp_path: Path) -> None:
    _write_set(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([0, 1, 12], dtype=np.uint8), 2049))
    with pytest.raises(UserError, match=r"label 12 but MNIST has 10 classes"):
        load_dataset("mnist", tmp_path)


@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist() -> None:
    data = load_dataset("fashion-mnist")
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert data.train.class_names == FASHION_MNIST_CLASSES
    assert data.train.labels.bincount().tolist() == [6000] * 10
    assert data.test.labels.bincount().tolist() == [1000] * 10
