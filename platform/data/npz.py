"""MedMNIST-style .npz archives: train_images / train_labels / test_images / test_labels.

Loaded with allow_pickle=False: an .npz holding object arrays could run code when unpickled.
The val_* arrays MedMNIST ships are not used (every method selects from the training split, and the
test split is what a record reports); the run's data line says so, with their size.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from noisylab.data.images import (
    Dataset,
    ImageSet,
    count_classes,
    labels_tensor,
    numeric_class_names,
    resize_batch,
)
from noisylab.errors import UserError

_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def find_npz(root: Path) -> Path:
    """`root` itself when it is a file, else the single .npz inside the folder `root`."""
    if root.is_file():
        return root
    if not root.is_dir():
        raise UserError(f"npz dataset not found: {root} does not exist; pass --data-root path/to/file.npz")
    found = sorted(
        p for p in root.iterdir() if p.suffix == ".npz" and p.is_file() and not p.name.startswith(".")
    )
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise UserError(
            f"{root} must hold exactly one .npz file (found {names}); pass --data-root path/to/file.npz"
        )
    return found[0]


_UNUSED = ("val_images", "val_labels")  # MedMNIST's validation split: named on the run's data line


def _read_arrays(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The four arrays a run uses, and a note on the validation split when the archive has one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in _KEYS if key not in archive.files]
            if missing:
                raise UserError(
                    f"{path} lacks {', '.join(missing)} (has {', '.join(archive.files) or 'nothing'}); "
                    "it must use MedMNIST's keys train_images, train_labels, test_images, test_labels"
                )
            unused = [key for key in _UNUSED if key in archive.files]
            notes: tuple[str, ...] = ()
            if unused:
                size = len(archive[unused[0]])  # reads one array's header and data: the size to name
                notes = (
                    f"its {' and '.join(unused)} ({size:,} images) are not used: methods select from the "
                    "training split, records report the test split",
                )
            return {key: archive[key] for key in _KEYS}, notes
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise UserError(
            f"cannot read {path} ({exc}); it must be an uncorrupted .npz of plain (non-object) arrays"
        ) from exc


def _images(array: np.ndarray, key: str, path: Path) -> torch.Tensor:
    """uint8 [N, C, H, W] from (N, H, W) or channels-last (N, H, W, C)."""
    if array.dtype != np.uint8 or array.ndim not in (3, 4):
        raise UserError(
            f"{path}: {key} must be uint8 (N, H, W) or (N, H, W, C), got {array.dtype} {array.shape}; "
            "convert the images to 8-bit"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor.unsqueeze(1) if array.ndim == 3 else tensor.permute(0, 3, 1, 2)
    return tensor.contiguous()


def _labels(array: np.ndarray, key: str, path: Path, count: int) -> np.ndarray:
    """int64 [N] from (N,) or (N, 1); multi-label (N, K>1) is not a single-label task."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise UserError(
            f"{path}: {key} must be integer class indices shaped (N,) or (N, 1), "
            f"got {array.dtype} {array.shape}; "
            "multi-label MedMNIST sets are not supported"
        )
    if array.shape[0] != count:
        raise UserError(
            f"{path}: {key} has {array.shape[0]} labels for {count} images; the arrays must match"
        )
    if array.size == 0:
        raise UserError(f"{path}: {key} is empty; both splits need images and labels")
    count_classes(array, f"{path}: {key}")
    return array.astype(np.int64)


def load_npz(root: Path, *, image_size: int | None = None) -> Dataset:
    """A MedMNIST .npz (or folder with one); K = largest label + 1, class names "0".."K-1"."""
    path = find_npz(root)
    arrays, notes = _read_arrays(path)
    images = {
        split: _images(arrays[f"{split}_images"], f"{split}_images", path) for split in ("train", "test")
    }
    labels = {
        split: _labels(arrays[f"{split}_labels"], f"{split}_labels", path, images[split].shape[0])
        for split in ("train", "test")
    }
    if images["train"].shape[0] == 0:
        raise UserError(f"{path}: train_images is empty; the archive needs training images")
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise UserError(
            f"{path}: train images are {tuple(images['train'].shape[1:])} but test images are "
            f"{tuple(images['test'].shape[1:])} (C, H, W); both splits must have the same geometry"
        )
    num_classes = max(count_classes(labels[s], path) for s in labels)
    classes = numeric_class_names(num_classes)
    sets = {
        split: ImageSet(resize_batch(images[split], image_size), labels_tensor(labels[split]), classes)
        for split in ("train", "test")
    }
    return Dataset(name="npz", train=sets["train"], test=sets["test"], notes=notes)
