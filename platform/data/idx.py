"""MNIST and Fashion-MNIST from their IDX files (gzipped or raw).

The IDX header is checked field by field (magic, dimensions, byte length) because a truncated
download otherwise shows up as a reshape error deep inside numpy.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from noisylab.data.images import Dataset, ImageSet, labels_tensor, numeric_class_names, resize_batch
from noisylab.errors import UserError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES: tuple[str, ...] = numeric_class_names(10)

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}

# Where the files may sit under the root: flat (Debian, the original site), or torchvision's layout.
SUBDIRS = ("", "raw", "MNIST/raw", "FashionMNIST/raw")

_HINTS = {
    "fashion-mnist": "install Debian's dataset-fashion-mnist or pass --data-root",
    "mnist": "download the four MNIST IDX files there or pass --data-root",
}
_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}


def load_idx_dataset(name: str, root: Path, *, image_size: int | None = None) -> Dataset:
    """Load `name` ("mnist" or "fashion-mnist") from IDX files in `root`; 1-channel 28x28 unless resized."""
    classes = FASHION_MNIST_CLASSES if name == "fashion-mnist" else MNIST_CLASSES
    splits = {
        split: _load_split(name, root, prefix, classes, image_size) for split, prefix in _SPLIT_PREFIX.items()
    }
    return Dataset(name=name, train=splits["train"], test=splits["test"])


def _load_split(
    name: str, root: Path, prefix: str, classes: tuple[str, ...], image_size: int | None
) -> ImageSet:
    images_path = find_idx_file(name, root, f"{prefix}-images-idx3-ubyte")
    labels_path = find_idx_file(name, root, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, magic=LABELS_MAGIC)
    if images.shape[0] == 0:
        raise UserError(f"{images_path} holds no images; the file is empty or cut short: download it again")
    if images.shape[0] != labels.shape[0]:
        raise UserError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels; "
            "the two files come from different downloads: fetch both again"
        )
    if labels.size and int(labels.max()) >= len(classes):
        raise UserError(
            f"{labels_path} contains label {int(labels.max())} but {_TITLES[name]} has "
            f"{len(classes)} classes; "
            f"the file is not a {_TITLES[name]} label file: download it again"
        )
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    return ImageSet(resize_batch(tensor, image_size), labels_tensor(labels), classes)


def find_idx_file(name: str, root: Path, stem: str) -> Path:
    """`stem` or `stem.gz` under root (or torchvision's raw/ folders); UserError with the fix if absent."""
    for subdir in SUBDIRS:
        for candidate in (root / subdir / stem, root / subdir / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    where = "does not exist" if not root.exists() else "has no such file"
    raise UserError(
        f"{_TITLES[name]} not found in {root} ({where}): expected {stem}[.gz] there; {_HINTS[name]}"
    )


def read_idx(path: Path, *, magic: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes into an array with the dimensions from its header."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise UserError(f"{path} is truncated ({len(data)} bytes, no IDX header); download it again")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise UserError(
            f"{path} is not an IDX {kind} file (magic number {found}, expected {magic}); "
            "check the file name or download it again"
        )
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise UserError(f"{path} is truncated inside its header; download it again")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise UserError(
            f"{path} is {problem} ({len(data)} bytes, header {list(dims)} needs {expected}); "
            "download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def _read_bytes(path: Path) -> bytes:
    """Whole file contents, transparently gunzipped; a broken gzip stream is a UserError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"cannot read {path} ({exc}); the file is corrupt or truncated: download it again"
        ) from exc
