"""In-memory image sets: the one shape every loader produces and every trainer consumes.

Datasets here are small enough (MNIST, CIFAR, Chaoyang, chest X-rays) to hold as one uint8 tensor,
so loaders decode everything once and trainers index batches straight out of memory; uint8 keeps
that four times smaller than float and lets the augmentation code decide when to convert.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from noisylab.errors import UserError

# Files the folder loaders accept as images; anything else (READMEs, thumbs.db, ...) is skipped.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)

# Resizing a whole fixed-size set goes through float; chunking bounds that temporary memory.
_RESIZE_CHUNK = 1024


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images and their (possibly noisy) labels, held in memory.

    images: uint8 [N, C, H, W], contiguous.  labels: int64 [N] in [0, len(class_names)).
    files: for sets read from image files, each image's path relative to the data root (POSIX
    separators), so a sample flagged later can be opened; None for array formats (IDX, CIFAR, npz).
    `eq=False` because tensors have no single truth value; compare fields explicitly.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    files: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """Check the invariants once here so no trainer has to re-check them per batch."""
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            raise ValueError(f"ImageSet.images must be a uint8 tensor, got {_describe(self.images)}")
        if self.images.dim() != 4:
            raise ValueError(f"ImageSet.images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64:
            raise ValueError(f"ImageSet.labels must be an int64 tensor, got {_describe(self.labels)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ImageSet.labels must be [N] with N={self.images.shape[0]}, got {tuple(self.labels.shape)}"
            )
        if not self.class_names:
            raise ValueError("ImageSet needs at least one class name")
        if self.files is not None and len(self.files) != self.images.shape[0]:
            raise ValueError(f"ImageSet.files must name {self.images.shape[0]} images, got {len(self.files)}")
        object.__setattr__(self, "class_names", tuple(str(name) for name in self.class_names))
        if not self.images.is_contiguous():
            object.__setattr__(self, "images", self.images.contiguous())
        _check_label_range(self.labels, len(self.class_names))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The samples at `indices` (int64 positions or a bool mask [N]), same class names."""
        index = indices.to(self.images.device)
        files = None
        if self.files is not None:
            positions = torch.arange(len(self))[indices.cpu()] if indices.dtype == torch.bool else indices
            files = tuple(self.files[int(i)] for i in positions.cpu())
        return ImageSet(
            self.images[index].contiguous(),
            self.labels[index.to(self.labels.device)],
            self.class_names,
            files,
        )


@dataclass(frozen=True, eq=False)
class Dataset:
    """A named train/test pair; both sides share class names and image geometry."""

    name: str
    train: ImageSet
    test: ImageSet
    # What the run's data line says about the files besides the splits it trains and tests on (an .npz's
    # val_* arrays that are not used, say), so nothing in a user's files is dropped without a word.
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """A test set with other classes or channels would make every accuracy number meaningless."""
        if self.train.class_names != self.test.class_names:
            raise UserError(
                f"{self.name}: train and test sets have different classes "
                f"({list(self.train.class_names)} vs {list(self.test.class_names)}); "
                "give both splits the same class list"
            )
        if self.train.channels != self.test.channels:
            raise UserError(
                f"{self.name}: train images have {self.train.channels} channels but test images have "
                f"{self.test.channels}; convert both splits to the same colour mode"
            )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of dtype {value.dtype}"
    return type(value).__name__


def _check_label_range(labels: torch.Tensor, num_classes: int) -> None:
    """A label outside the class list is a data error the user must fix, not something to clip."""
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise UserError(
            f"label {bad} is outside the {num_classes} classes (valid labels are 0..{num_classes - 1}); "
            "fix the label file or the class list"
        )


def labels_tensor(values: Sequence[int] | np.ndarray) -> torch.Tensor:
    """int64 labels [N] from a list or integer array."""
    return torch.as_tensor(np.asarray(values, dtype=np.int64).reshape(-1))


# Formats that store only integer labels take K = largest label + 1. One absurd label (2**31 - 1) would
# then size a class list, a transition matrix and a classifier head: refuse it first. ImageNet-21k has
# about 21,800 classes; nothing noisylab trains comes near this cap.
MAX_CLASSES = 100_000


def count_classes(labels: Sequence[int] | np.ndarray, source: object) -> int:
    """K = largest label + 1, after checking every label lies in 0..MAX_CLASSES-1 (no allocation is
    sized by the labels' range before this check)."""
    array = np.asarray(labels)
    if array.size == 0:
        raise UserError(f"{source} holds no labels; every split needs labelled images")
    low, high = int(array.min()), int(array.max())
    if low < 0:
        raise UserError(f"{source} contains label {low}, outside the classes 0..K-1; fix the labels")
    if high >= MAX_CLASSES:
        raise UserError(
            f"{source} contains label {high}, which would make {high + 1:,} classes "
            f"(at most {MAX_CLASSES:,}); labels must be class indices 0..K-1: fix the labels"
        )
    return high + 1


def numeric_class_names(num_classes: int) -> tuple[str, ...]:
    """ "0".."K-1": for formats that store only integer labels."""
    if not 0 < num_classes <= MAX_CLASSES:
        raise UserError(f"{num_classes} classes is outside 1..{MAX_CLASSES:,}: fix the labels")
    return tuple(str(k) for k in range(num_classes))


def check_image_size(image_size: int | None) -> None:
    """Reject a non-positive size before any decoding work starts."""
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0
    ):
        raise UserError(
            f"image size must be a positive integer, got {image_size!r}; pass e.g. --image-size 224"
        )


def resize_batch(images: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, S, S] by bilinear interpolation (no-op when S is None or equal).

    Used for fixed-size formats (IDX, CIFAR, npz), where resizing the decoded tensor is far cheaper
    than round-tripping every image through PIL.  Chunked so a 60k-image set never needs a full
    float copy at the target size.
    """
    if image_size is None or images.shape[-2:] == (image_size, image_size):
        return images
    n, c = images.shape[:2]
    out = torch.empty((n, c, image_size, image_size), dtype=torch.uint8, device=images.device)
    for start in range(0, n, _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK].float()
        resized = F.interpolate(
            chunk, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + _RESIZE_CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def read_image(path: Path, *, mode: str, image_size: int) -> np.ndarray:
    """Decode one image file as uint8 [H, W] or [H, W, C] of size image_size x image_size.

    Any decoding problem becomes a UserError naming the file, so one bad JPEG among thousands is
    easy to find.  For JPEGs much larger than the target, `draft` lets libjpeg decode at a reduced
    scale (still at least the target size) before the bilinear resize, which makes loading
    multi-megapixel X-rays several times faster.
    """
    try:
        with Image.open(path) as img:
            img.draft(mode, (image_size, image_size))
            img.load()
            converted = img.convert(mode)
            if converted.size != (image_size, image_size):
                converted = converted.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.array(converted, dtype=np.uint8)  # a writable copy: torch refuses read-only arrays
    except FileNotFoundError as exc:
        raise UserError(f"image file {path} does not exist; fix the path or the label file") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(
            f"cannot read image {path} ({exc}); the file is corrupt or not an image: replace or delete it"
        ) from exc


def relative_files(paths: Sequence[Path], root: Path) -> tuple[str, ...]:
    """Each path relative to `root` (the data root the user gave), POSIX separators: what
    `samples.parquet` records in `file`, so `root / file` opens the image on any machine. A path outside
    `root` (a label file may point elsewhere) stays as it was written."""
    out = []
    for path in paths:
        try:
            out.append(path.relative_to(root).as_posix())
        except ValueError:
            out.append(path.as_posix())
    return tuple(out)


def read_images(paths: Sequence[Path], *, mode: str, image_size: int) -> torch.Tensor:
    """Decode `paths` into one uint8 [N, C, S, S] tensor, in order.

    PIL releases the GIL while decoding, so a small thread pool uses all cores without the
    start-up cost of processes.
    """
    channels = Image.getmodebands(mode)
    out = torch.empty((len(paths), channels, image_size, image_size), dtype=torch.uint8)

    def load(item: tuple[int, Path]) -> None:
        index, path = item
        array = read_image(path, mode=mode, image_size=image_size)
        out[index] = torch.from_numpy(array.reshape(image_size, image_size, channels)).permute(2, 0, 1)

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # list() re-raises the first worker exception (a UserError naming the file) here.
        list(pool.map(load, enumerate(paths)))
    return out
