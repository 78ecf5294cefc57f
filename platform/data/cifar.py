"""CIFAR-10 and CIFAR-100 from torchvision's on-disk layout (the "python version" pickles).

The batches are pickles, and unpickling runs whatever callables the file names, so a file from a
user path goes through `SafeUnpickler`: it resolves only the handful of globals the genuine files
use (numpy array reconstruction and `_codecs.encode`) and refuses everything else.
"""

from __future__ import annotations

import functools
import importlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from noisylab.data.images import Dataset, ImageSet, labels_tensor, resize_batch
from noisylab.errors import UserError

_CIFAR_PIXELS = 3 * 32 * 32


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    """`name` from the first importable module: numpy 2 moved `numpy.core` to `numpy._core`."""
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy provides none of {modules} . {name}")


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for every global the real CIFAR pickles (and numpy re-pickles) need."""
    import _codecs

    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _numpy_attr(multiarray, "_reconstruct")
    scalar = _numpy_attr(multiarray, "scalar")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for module in multiarray:
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    try:
        frombuffer = _numpy_attr(numeric, "_frombuffer")
    except ImportError:
        frombuffer = None
    if frombuffer is not None:
        for module in numeric:
            allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that can only rebuild numpy arrays, never import or call anything else."""

    def __init__(self, file: BinaryIO, *, source: str) -> None:
        # latin1 is what numpy needs to rebuild arrays pickled by Python 2 (the original files).
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed_globals().get((module, name))
        if found is None:
            raise UserError(
                f"refusing to unpickle {self.source}: it references {module}.{name}, "
                "which no genuine CIFAR file contains; the file is not a CIFAR batch (or was tampered with): "
                "download it again"
            )
        return found


def safe_unpickle(path: Path) -> Any:
    """Unpickle `path` with `SafeUnpickler`; any parse failure becomes a UserError naming the file."""
    try:
        with path.open("rb") as handle:
            return SafeUnpickler(handle, source=str(path)).load()
    except UserError:
        raise
    except FileNotFoundError as exc:
        raise UserError(
            f"{path} does not exist; download the CIFAR python archive and unpack it there"
        ) from exc
    except Exception as exc:  # a corrupt pickle can raise nearly anything; none of it is a bug here
        raise UserError(
            f"cannot read {path} ({type(exc).__name__}: {exc}); the file is corrupt or truncated: "
            "download it again"
        ) from exc


def _field(batch: Any, key: str, path: Path) -> Any:
    """batch[key] whether the pickle stored the key as str (Python 3) or bytes (Python 2 original)."""
    if isinstance(batch, Mapping):
        for candidate in (key, key.encode()):
            if candidate in batch:
                return batch[candidate]
    raise UserError(f"{path} has no '{key}' entry; it is not a CIFAR python batch: download it again")


def _decode_names(values: Any, path: Path) -> tuple[str, ...]:
    if not isinstance(values, list | tuple) or not values:
        raise UserError(f"{path} has no class-name list; it is not a CIFAR meta file: download it again")
    return tuple(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values)


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 3072], int64 [N]) from one batch file, with shape and length checks."""
    batch = safe_unpickle(path)
    data = _field(batch, "data", path)
    labels = _field(batch, label_key, path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _CIFAR_PIXELS
    ):
        raise UserError(
            f"{path}: 'data' must be a uint8 array [N, {_CIFAR_PIXELS}]; the file is not a CIFAR batch: "
            "download it again"
        )
    try:
        label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: '{label_key}' is not a list of integers; download the file again") from exc
    if label_array.shape[0] != data.shape[0]:
        raise UserError(
            f"{path} holds {data.shape[0]} images but {label_array.shape[0]} labels; download the file again"
        )
    return data, label_array


def _to_imageset(
    parts: list[tuple[np.ndarray, np.ndarray]], classes: tuple[str, ...], source: Path, image_size: int | None
) -> ImageSet:
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise UserError(
            f"{source} contains label {bad} outside the {len(classes)} classes; the batches and meta file "
            "come from different datasets: download them again"
        )
    # Rows are already channel-major (1024 red, 1024 green, 1024 blue), i.e. CHW.
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageSet(resize_batch(images, image_size), labels_tensor(labels), classes)


def _require_dir(folder: Path, title: str, root: Path) -> None:
    if not folder.is_dir():
        raise UserError(
            f"{title} not found in {root}: expected the folder {folder.name}/ (torchvision's layout) there; "
            f"unpack the {title} python archive into {root} or pass --data-root"
        )


def load_cifar10(root: Path, *, image_size: int | None = None) -> Dataset:
    """CIFAR-10 from root/cifar-10-batches-py: data_batch_1..5, test_batch, batches.meta."""
    folder = root / "cifar-10-batches-py"
    _require_dir(folder, "CIFAR-10", root)
    classes = _decode_names(_field(safe_unpickle(folder / "batches.meta"), "label_names", folder), folder)
    train_parts = [_read_batch(folder / f"data_batch_{i}", "labels") for i in range(1, 6)]
    test_parts = [_read_batch(folder / "test_batch", "labels")]
    return Dataset(
        name="cifar10",
        train=_to_imageset(train_parts, classes, folder, image_size),
        test=_to_imageset(test_parts, classes, folder, image_size),
    )


def load_cifar100(root: Path, *, image_size: int | None = None) -> Dataset:
    """CIFAR-100 (fine labels) from root/cifar-100-python: train, test, meta."""
    folder = root / "cifar-100-python"
    _require_dir(folder, "CIFAR-100", root)
    classes = _decode_names(_field(safe_unpickle(folder / "meta"), "fine_label_names", folder), folder)
    return Dataset(
        name="cifar100",
        train=_to_imageset([_read_batch(folder / "train", "fine_labels")], classes, folder, image_size),
        test=_to_imageset([_read_batch(folder / "test", "fine_labels")], classes, folder, image_size),
    )
