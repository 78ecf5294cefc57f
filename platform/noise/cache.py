"""The noise cache: generated labels stored under a sha256 of everything they depend on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from noisylab.atomic import set_aside, write_with
from noisylab.errors import warn
from noisylab.noise.spec import NoiseSpec


def generate_cached(
    spec: NoiseSpec,
    *,
    images: np.ndarray,
    clean: np.ndarray,
    num_classes: int,
    seed: int,
    cache_dir: Path | None,
    generate: Callable[[], np.ndarray],
) -> np.ndarray:
    """`generate()`'s labels, read from `cache_dir` when an entry for these inputs is there and usable,
    else drawn and stored there; without a `cache_dir`, always drawn."""
    if cache_dir is None:
        return generate()
    path = Path(cache_dir) / f"noisy-labels-{_cache_key(spec, images, clean, num_classes, seed)}.npy"
    cached = _read_cache(path, num_samples=len(clean), num_classes=num_classes)
    if cached is not None:
        return cached
    noisy = generate()
    # Atomically: other runs sharing the cache (a sweep's trials) never read a half-written file.
    write_with(path, lambda handle: np.save(handle, noisy, allow_pickle=False))
    return noisy


def _cache_key(spec: NoiseSpec, images: np.ndarray, clean: np.ndarray, num_classes: int, seed: int) -> str:
    # Only IDN looks at the pixels; hashing them for the other kinds would only cost time.
    image_digest = _array_digest(images) if spec.kind == "idn" else ""
    material = [spec.label(), int(seed), int(num_classes), len(clean), _array_digest(clean), image_digest]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def _array_digest(array: np.ndarray) -> str:
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    digest.update(contiguous.data)  # hashes the buffer in place: no copy of large image arrays
    return digest.hexdigest()


def _read_cache(path: Path, *, num_samples: int, num_classes: int) -> np.ndarray | None:
    """The cached labels, or None when there are none. An entry that is unreadable or not labels for
    this data (`_cache_problem`) is set aside (renamed `.bad`) with one warning line and drawn again, as
    the pre-training cache does: the cache only saves time."""
    if not path.is_file():
        return None
    try:
        cached = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        problem: str | None = "it is not a readable .npy array"
    else:
        problem = _cache_problem(cached, num_samples=num_samples, num_classes=num_classes)
    if problem is None:
        return cast(np.ndarray, cached).astype(np.int64)
    bad = set_aside(path)
    where = f"set aside as {bad.name}" if bad is not None else "another run set it aside"
    warn(f"noise cache entry {path} cannot be used ({problem}): {where}; drawing the labels again")
    return None


def _cache_problem(cached: Any, *, num_samples: int, num_classes: int) -> str | None:
    """Why a cached array is not noisy labels for `num_samples` samples of `num_classes` classes."""
    if not isinstance(cached, np.ndarray):  # np.load of a zip archive gives an NpzFile
        return f"it holds a {type(cached).__name__}, not an array"
    if cached.shape != (num_samples,):
        return f"it holds labels of shape {cached.shape} for {num_samples} samples"
    if not np.issubdtype(cached.dtype, np.integer):
        return f"its labels are {cached.dtype}, not integers"
    if num_samples and (cached.min() < 0 or cached.max() >= num_classes):
        return f"its labels range over [{cached.min()}, {cached.max()}], outside [0, {num_classes})"
    return None
