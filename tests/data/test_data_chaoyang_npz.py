"""Chaoyang (JSON lists of relative paths) and MedMNIST-style .npz archives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from noisylab.data import load_dataset
from noisylab.data.chaoyang import CHAOYANG_CLASSES
from noisylab.errors import UserError

# ----------------------------------------------------------------------------- Chaoyang


def _write_chaoyang(root: Path, labels: dict[str, list[int]]) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    written: dict[str, list[np.ndarray]] = {}
    for split, split_labels in labels.items():
        entries = []
        for i, label in enumerate(split_labels):
            array = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
            name = f"{split}/{i}-IMG{i:03d}-{label}.png"
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / name)
            entries.append({"name": name, "label": label})
            written.setdefault(split, []).append(array)
        (root / f"{split}.json").write_text(json.dumps(entries))
    return written


def test_chaoyang_round_trip(tmp_path: Path) -> None:
    written = _write_chaoyang(tmp_path, {"train": [0, 3, 1, 2, 2], "test": [1, 0]})
    data = load_dataset("chaoyang", tmp_path, image_size=5)
    assert data.train.class_names == CHAOYANG_CLASSES == ("normal", "serrated", "adenocarcinoma", "adenoma")
    assert data.train.images.shape == (5, 3, 5, 5) and data.train.images.dtype == torch.uint8
    assert data.train.labels.tolist() == [0, 3, 1, 2, 2]
    assert np.array_equal(data.test.images[1].permute(1, 2, 0).numpy(), written["test"][1])
    assert data.test.files == ("test/0-IMG000-1.png", "test/1-IMG001-0.png")  # the JSON's names


def test_chaoyang_default_size_and_numeric_names(tmp_path: Path) -> None:
    _write_chaoyang(tmp_path, {"train": [0, 2], "test": [1]})
    data = load_dataset("chaoyang", tmp_path)
    assert data.train.class_names == ("0", "1", "2")
    assert data.test.images.shape == (1, 3, 224, 224)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (-1, "has label -1, outside the classes"),
        ("2", "non-integer label '2'"),
        (1.5, "non-integer label 1.5"),
    ],
)
def test_chaoyang_bad_label(tmp_path: Path, label: Any, message: str) -> None:
    _write_chaoyang(tmp_path, {"train": [0, 1], "test": [1]})
    entries = json.loads((tmp_path / "train.json").read_text())
    entries[1]["label"] = label
    (tmp_path / "train.json").write_text(json.dumps(entries))
    with pytest.raises(UserError, match=message):
        load_dataset("chaoyang", tmp_path, image_size=5)


def test_chaoyang_missing_image_and_json(tmp_path: Path) -> None:
    _write_chaoyang(tmp_path, {"train": [0, 1], "test": [1]})
    (tmp_path / "test" / "0-IMG000-1.png").unlink()
    with pytest.raises(UserError, match=r"0-IMG000-1\.png does not exist"):
        load_dataset("chaoyang", tmp_path, image_size=5)
    (tmp_path / "test.json").unlink()
    with pytest.raises(UserError, match=r"expected test.json there"):
        load_dataset("chaoyang", tmp_path, image_size=5)


def test_chaoyang_invalid_json(tmp_path: Path) -> None:
    _write_chaoyang(tmp_path, {"train": [0, 1], "test": [1]})
    (tmp_path / "train.json").write_text('[{"name": "x.png", "label": 0}')
    with pytest.raises(UserError, match=r"cannot parse .*train.json"):
        load_dataset("chaoyang", tmp_path)
    (tmp_path / "train.json").write_text('{"name": "x.png"}')
    with pytest.raises(UserError, match=r"non-empty JSON list"):
        load_dataset("chaoyang", tmp_path)


# ----------------------------------------------------------------------------- npz


def _medmnist(channels: int | None, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    tail = (6, 6) if channels is None else (6, 6, channels)
    return {
        "train_images": rng.integers(0, 256, (7, *tail), dtype=np.uint8),
        "train_labels": np.array([[0], [1], [2], [4], [1], [0], [2]], dtype=np.uint8),
        "val_images": rng.integers(0, 256, (2, *tail), dtype=np.uint8),
        "val_labels": np.array([[9], [9]], dtype=np.uint8),
        "test_images": rng.integers(0, 256, (3, *tail), dtype=np.uint8),
        "test_labels": np.array([3, 0, 1], dtype=np.int64),
    }


def test_npz_grayscale_round_trip(tmp_path: Path) -> None:
    arrays = _medmnist(None)
    np.savez(tmp_path / "pathmnist.npz", **arrays)
    data = load_dataset("npz", tmp_path / "pathmnist.npz")
    assert data.train.images.shape == (7, 1, 6, 6) and data.train.images.dtype == torch.uint8
    assert np.array_equal(data.train.images[:, 0].numpy(), arrays["train_images"])
    assert data.train.labels.tolist() == [0, 1, 2, 4, 1, 0, 2]
    assert data.test.labels.tolist() == [3, 0, 1]
    assert data.train.class_names == ("0", "1", "2", "3", "4")  # val's label 9 is ignored
    assert data.train.files is None  # an array format names no files


def test_npz_rgb_from_folder_and_resize(tmp_path: Path) -> None:
    arrays = _medmnist(3)
    np.savez_compressed(tmp_path / "only.npz", **arrays)
    data = load_dataset("npz", tmp_path)
    assert data.test.images.shape == (3, 3, 6, 6)
    assert np.array_equal(data.test.images.permute(0, 2, 3, 1).numpy(), arrays["test_images"])
    assert load_dataset("npz", tmp_path, image_size=12).train.images.shape == (7, 3, 12, 12)


def test_npz_negative_label(tmp_path: Path) -> None:
    arrays = _medmnist(None)
    arrays["test_labels"] = np.array([0, -2, 1])
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(UserError, match=r"test_labels contains label -2, outside the classes"):
        load_dataset("npz", tmp_path / "x.npz")


def test_npz_missing_key_and_multilabel(tmp_path: Path) -> None:
    arrays = _medmnist(None)
    del arrays["test_images"]
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(UserError, match=r"lacks test_images"):
        load_dataset("npz", tmp_path / "a.npz")
    arrays = _medmnist(None)
    arrays["train_labels"] = np.zeros((7, 14), dtype=np.uint8)
    np.savez(tmp_path / "b.npz", **arrays)
    with pytest.raises(UserError, match=r"multi-label"):
        load_dataset("npz", tmp_path / "b.npz")


def test_npz_object_array_is_not_unpickled(tmp_path: Path) -> None:
    arrays: dict[str, Any] = dict(_medmnist(None))
    arrays["train_labels"] = np.array([{"evil": 1}] * 7, dtype=object)
    np.savez(tmp_path / "obj.npz", **arrays)
    with pytest.raises(UserError, match=r"cannot read .*obj.npz"):
        load_dataset("npz", tmp_path / "obj.npz")


def test_npz_bad_files(tmp_path: Path) -> None:
    (tmp_path / "garbage.npz").write_bytes(b"definitely not a zip archive")
    with pytest.raises(UserError, match=r"cannot read .*garbage.npz"):
        load_dataset("npz", tmp_path / "garbage.npz")
    np.savez(tmp_path / "second.npz", **_medmnist(None))
    with pytest.raises(UserError, match=r"exactly one .npz file"):
        load_dataset("npz", tmp_path)
    with pytest.raises(UserError, match=r"does not exist"):
        load_dataset("npz", tmp_path / "nope.npz")


def test_npz_float_images(tmp_path: Path) -> None:
    arrays = _medmnist(None)
    arrays["train_images"] = arrays["train_images"].astype(np.float32)
    np.savez(tmp_path / "f.npz", **arrays)
    with pytest.raises(UserError, match=r"train_images must be uint8"):
        load_dataset("npz", tmp_path / "f.npz")
