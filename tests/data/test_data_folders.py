"""Class-per-folder datasets: Kermany chest X-rays (grayscale) and generic ImageFolder (RGB)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisylab.data import load_dataset
from noisylab.errors import UserError


def _save(path: Path, array: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def _pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _write_tree(root: Path, classes: dict[str, int], shape: tuple[int, ...]) -> dict[str, list[np.ndarray]]:
    """root/{train,test}/<class>/<i>.png with distinct random pixels; returns the arrays by split/class."""
    written: dict[str, list[np.ndarray]] = {}
    seed = 0
    for split in ("train", "test"):
        for name, count in classes.items():
            for i in range(count):
                seed += 1
                array = _pixels(seed, shape)
                _save(root / split / name / f"{i}.png", array)
                written.setdefault(f"{split}/{name}", []).append(array)
    return written


def test_chest_xray_grayscale_exact(tmp_path: Path) -> None:
    written = _write_tree(tmp_path, {"PNEUMONIA": 3, "NORMAL": 2}, (8, 8))
    (tmp_path / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / "train" / "NORMAL" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / ".hidden").mkdir()
    data = load_dataset("chest-xray", tmp_path, image_size=8)
    assert data.train.class_names == ("NORMAL", "PNEUMONIA")
    assert data.train.images.shape == (5, 1, 8, 8) and data.train.images.dtype == torch.uint8
    assert data.train.labels.tolist() == [0, 0, 1, 1, 1]
    assert np.array_equal(data.train.images[0, 0].numpy(), written["train/NORMAL"][0])
    assert np.array_equal(data.test.images[4, 0].numpy(), written["test/PNEUMONIA"][2])


def test_chest_xray_default_size_and_rgb_to_gray(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"NORMAL": 1, "PNEUMONIA": 1}, (10, 12, 3))
    data = load_dataset("chest-xray", tmp_path)
    assert data.train.images.shape == (2, 1, 224, 224)


def test_chest_xray_jpeg_and_kaggle_nesting(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for name, value in (("NORMAL", 40), ("PNEUMONIA", 200)):
            path = tmp_path / "chest_xray" / split / name / "x.jpeg"
            _save(path, np.full((64, 48), value, np.uint8), "JPEG")
    data = load_dataset("chest-xray", tmp_path, image_size=16)
    assert data.test.images.shape == (2, 1, 16, 16)
    means = data.test.images.float().mean(dim=(1, 2, 3))
    assert torch.allclose(means, torch.tensor([40.0, 200.0]), atol=2)
    # Files are named from the folder the user gave, through the archive's own level: root / file opens them.
    assert data.train.files == ("chest_xray/train/NORMAL/x.jpeg", "chest_xray/train/PNEUMONIA/x.jpeg")
    assert all((tmp_path / f).is_file() for f in data.test.files or ())


def test_imagefolder_rgb_exact(tmp_path: Path) -> None:
    written = _write_tree(tmp_path, {"cat": 2, "dog": 1, "ant": 1}, (6, 6, 3))
    data = load_dataset("imagefolder", tmp_path, image_size=6)
    assert data.train.class_names == ("ant", "cat", "dog")
    assert data.train.images.shape == (4, 3, 6, 6)
    assert data.train.labels.tolist() == [0, 1, 1, 2]
    assert np.array_equal(data.train.images[2].permute(1, 2, 0).numpy(), written["train/cat"][1])
    # Each image's file, relative to the data root, in the images' order: image 2 is train/cat/1.png.
    assert data.train.files == ("train/ant/0.png", "train/cat/0.png", "train/cat/1.png", "train/dog/0.png")
    assert data.test.files is not None and data.test.files[0] == "test/ant/0.png"
    picked = data.train.subset(torch.tensor([3, 1]))
    assert picked.files == ("train/dog/0.png", "train/cat/0.png")
    masked = data.train.subset(torch.tensor([False, True, True, False]))
    assert masked.files == ("train/cat/0.png", "train/cat/1.png") and masked.labels.tolist() == [1, 1]


def test_imagefolder_resizes_to_requested_size(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": 1, "b": 1}, (20, 30, 3))
    assert load_dataset("imagefolder", tmp_path, image_size=12).test.images.shape == (2, 3, 12, 12)


def test_mismatched_class_folders(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": 1, "b": 1}, (4, 4, 3))
    _save(tmp_path / "test" / "c" / "0.png", _pixels(9, (4, 4, 3)))
    expected = r"different class folders \(only in train: \[\], only in test: \['c'\]\)"
    with pytest.raises(UserError, match=expected):
        load_dataset("imagefolder", tmp_path, image_size=4)


def test_corrupt_jpeg_names_the_file(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"NORMAL": 1, "PNEUMONIA": 1}, (8, 8))
    (tmp_path / "train" / "NORMAL" / "broken.jpeg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(UserError, match=r"cannot read image .*broken\.jpeg.*corrupt"):
        load_dataset("chest-xray", tmp_path, image_size=8)


def test_truncated_jpeg_names_the_file(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"NORMAL": 1, "PNEUMONIA": 1}, (8, 8))
    buffer = io.BytesIO()
    Image.fromarray(_pixels(3, (64, 64))).save(buffer, format="JPEG")
    whole = buffer.getvalue()
    (tmp_path / "test" / "PNEUMONIA" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match=r"cut\.jpg"):
        load_dataset("chest-xray", tmp_path, image_size=8)


def test_empty_class_folder(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": 1, "b": 1}, (4, 4, 3))
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty holds no images"):
        load_dataset("imagefolder", tmp_path)


def test_missing_root_and_split(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"chest-xray not found: .* is not a folder.*--data-root"):
        load_dataset("chest-xray", tmp_path / "missing")
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match=r"has no class sub-folders"):
        load_dataset("imagefolder", tmp_path)


def test_image_folder_keeps_a_shared_native_size(tmp_path: Path) -> None:
    written = _write_tree(tmp_path, {"cat": 2, "dog": 1}, (32, 32, 3))
    data = load_dataset("imagefolder", tmp_path)
    assert data.train.images.shape == (3, 3, 32, 32)
    assert np.array_equal(data.train.images[0].permute(1, 2, 0).numpy(), written["train/cat"][0])


def test_image_folder_of_mixed_sizes_falls_back_to_224(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"cat": 1, "dog": 1}, (32, 32, 3))
    _save(tmp_path / "test" / "dog" / "big.png", _pixels(99, (40, 40, 3)))
    assert load_dataset("imagefolder", tmp_path).train.images.shape[-2:] == (224, 224)
