"""Seeded label-noise generators: arrays in, arrays out.

A `NoiseSpec` (parsed from text such as ``idn:0.3``) says which noise to apply;
`make_noisy_labels` applies it to a data set's clean labels and reports the realised flip rate
and the empirical transition matrix. Every generator draws all of its randomness from
``np.random.default_rng(seed)``, so the same spec, seed and data give the same noisy labels.

Kinds:

* ``none``      -- labels unchanged.
* ``idn``       -- instance-dependent noise of Xia et al. 2020 (`idn_labels`).
* ``symmetric`` -- flip to a uniformly drawn *other* class (`symmetric_labels`).
* ``pair``      -- flip y to (y + 1) mod C (`pair_labels`).
* ``file``      -- labels read from a file, e.g. CIFAR-10N/100N human labels (`load_label_file`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

import numpy as np

from noisylab.atomic import set_aside, write_with
from noisylab.errors import UserError, warn

NoiseKind = Literal["none", "idn", "symmetric", "pair", "file"]

_KINDS: tuple[str, ...] = get_args(NoiseKind)
# Text aliases accepted by `NoiseSpec.parse`; the first spelling of each kind is the canonical one.
_ALIASES: dict[str, NoiseKind] = {
    "none": "none",
    "idn": "idn",
    "sym": "symmetric",
    "symmetric": "symmetric",
    "pair": "pair",
    "file": "file",
}
_CANONICAL: dict[NoiseKind, str] = {"none": "none", "idn": "idn", "symmetric": "sym", "pair": "pair"}
_EXAMPLES = "use e.g. idn:0.3, sym:0.2, pair:0.4, none or file:labels.npy"

# The pixel matrix of one IDN chunk is kept under this many bytes so 224x224 images stay bounded.
_IDN_CHUNK_BYTES = 64 * 2**20

# What grows with the number of classes C, bounded before any of it is computed (`check_noise_size`):
# the transition matrix, C × C float64, held several times while it is counted, by every worker and in
# the record (4,096 classes: 128 MiB, ~3 s to record); and IDN's projection, C × D × C normal numbers
# (D = pixels per image), drawn one class at a time, so its memory stays C × D but its time does not
# (~75 million numbers a second on one core here: the bound is about a minute).
MAX_TRANSITION_ENTRIES = 2**24
MAX_IDN_DRAWS = 2**32
ANNOUNCE_IDN_DRAWS = 2**28  # a few seconds of drawing: say what is computed, and how far it is


@dataclass(frozen=True)
class NoiseSpec:
    """What label noise to apply: a kind, a target flip rate, and for ``file`` where to read labels."""

    kind: NoiseKind
    rate: float = 0.0  # target flip rate in [0, 1); ignored for none/file
    path: Path | None = None  # kind == "file"
    key: str | None = None  # kind == "file": key inside a .pt file (e.g. CIFAR-10N "worse_label")

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise UserError(f"unknown noise kind {self.kind!r}: {_EXAMPLES}")
        _check_rate(float(self.rate))
        # Normalise types (frozen, hence object.__setattr__) so equal specs compare and hash equal.
        object.__setattr__(self, "rate", float(self.rate))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        if self.kind == "file" and self.path is None:
            raise UserError("noise kind 'file' needs a path: use e.g. file:CIFAR-10_human.pt#worse_label")
        if self.kind != "file" and (self.path is not None or self.key is not None):
            raise UserError(f"noise kind {self.kind!r} takes no file path or key: use file:PATH[#KEY]")
        if self.key is not None and not self.key:
            raise UserError("the key after '#' is empty: use e.g. file:CIFAR-10_human.pt#worse_label")

    @classmethod
    def parse(cls, text: str) -> NoiseSpec:
        """Parse ``idn:0.3``, ``sym:0.2``/``symmetric:0.2``, ``pair:0.4``, ``none``,
        ``file:/p/CIFAR-10_human.pt#worse_label`` or ``file:labels.npy``."""
        text = text.strip()
        name, sep, rest = text.partition(":")
        kind = _ALIASES.get(name.strip().lower())
        if kind is None:
            raise UserError(f"unknown noise kind {name!r} in {text!r}: {_EXAMPLES}")
        if kind == "none":
            if sep:
                raise UserError(f"noise 'none' takes no argument, got {text!r}: write just none")
            return cls("none")
        if kind == "file":
            return cls._parse_file(text, rest)
        if not rest.strip():
            raise UserError(f"noise {text!r} has no rate: write e.g. {name}:0.3")
        try:
            rate = float(rest)
        except ValueError:
            raise UserError(f"noise rate {rest!r} in {text!r} is not a number: {_EXAMPLES}") from None
        return cls(kind, rate=rate)

    @classmethod
    def _parse_file(cls, text: str, rest: str) -> NoiseSpec:
        # The last '#' separates the key, so a directory name containing '#' still works when a key is given.
        path_text, sep, key = rest.rpartition("#") if "#" in rest else (rest, "", "")
        if not path_text.strip():
            raise UserError(f"noise {text!r} has no file path: use e.g. file:CIFAR-10_human.pt#worse_label")
        return cls("file", path=Path(path_text.strip()), key=key.strip() if sep else None)

    def label(self) -> str:
        """Canonical short text, e.g. ``idn:0.3``; `NoiseSpec.parse` turns it back into an equal spec."""
        if self.kind == "none":
            return "none"
        if self.kind == "file":
            suffix = f"#{self.key}" if self.key is not None else ""
            return f"file:{self.path}{suffix}"
        # repr() is the shortest text that reads back as the same float, so the label round-trips exactly.
        return f"{_CANONICAL[self.kind]}:{float(self.rate)!r}"


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy labels and how far they are from the clean ones."""

    labels: np.ndarray  # int64 [N], the noisy labels
    realised_rate: float  # fraction of labels != clean labels
    transition: np.ndarray  # float64 [C, C], row i = empirical P(noisy = j | clean = i); absent classes: 0


# ----------------------------------------------------------------------------------------- entry point


def idn_draws(num_classes: int, image_shape: tuple[int, ...]) -> int:
    """How many normal numbers IDN draws for its projection W: C × D × C, D the pixels of one image."""
    return num_classes * math.prod(image_shape) * num_classes


def check_noise_size(spec: NoiseSpec, *, num_classes: int, image_shape: tuple[int, ...]) -> None:
    """Refuse, in one line saying the sizes, a class count whose transition matrix (any noise) or IDN
    projection would pass the bounds above; checked before anything is drawn or allocated."""
    problems, fixes = [], []
    entries = num_classes * num_classes
    if entries > MAX_TRANSITION_ENTRIES:
        problems.append(
            f"the noise transition matrix would hold {num_classes:,} × {num_classes:,} = {entries:,} entries "
            f"({entries * 8 / 2**30:,.1f} GiB of float64, kept by every worker and in the record; at most "
            f"{MAX_TRANSITION_ENTRIES:,}, i.e. {math.isqrt(MAX_TRANSITION_ENTRIES):,} classes)"
        )
        fixes.append("merge classes or keep fewer of them")
    draws = idn_draws(num_classes, image_shape)
    if spec.kind == "idn" and draws > MAX_IDN_DRAWS:
        pixels = math.prod(image_shape)
        problems.append(
            f"idn noise would draw a {num_classes:,} × {pixels:,} × {num_classes:,} projection for "
            f"{'×'.join(map(str, image_shape))} images ({draws:,} random numbers, "
            f"{draws * 8 / 2**30:,.0f} GiB of float64; at most {MAX_IDN_DRAWS:,})"
        )
        fixes.append("use sym:, pair: or file: noise, smaller images (--image-size) or fewer classes")
    if problems:
        raise UserError(
            f"{num_classes:,} classes are too many for this run: {'; and '.join(problems)}: "
            f"{'; or '.join(fixes)}"
        )


def make_noisy_labels(
    spec: NoiseSpec,
    *,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    seed: int,
    cache_dir: Path | None = None,
    keep: np.ndarray | None = None,
    say: Callable[[str], None] | None = None,
) -> NoisyLabels:
    """Apply `spec` to the clean `labels` (int [N]) of `images` (uint8 [N, C, H, W]).

    With `cache_dir`, generated labels (idn, symmetric, pair) are stored as ``.npy`` named by a sha256 of
    everything they depend on, and a later call with the same inputs reads them back instead of
    recomputing. ``none`` and ``file`` are cheap and are never cached (a cached copy of a file could
    go stale when the file changes).

    `keep` (int [M], indices into the N samples): the subset a run trains on. Noise is still drawn on all
    N samples, so a sample's noisy label does not depend on which others are kept (and label files, which
    cover the whole set, line up); the labels returned and the statistics describe the kept ones only.

    `say`: where a long IDN draw announces itself and its progress (one line each quarter).
    """
    _check_num_classes(num_classes)
    check_noise_size(spec, num_classes=num_classes, image_shape=tuple(np.shape(images)[1:]))
    clean = _check_labels(labels, num_classes=num_classes, what="clean labels")
    if spec.kind == "none":
        noisy = clean.copy()
    elif spec.kind == "file":
        assert spec.path is not None  # guaranteed by NoiseSpec.__post_init__
        noisy = load_label_file(spec.path, key=spec.key, num_samples=len(clean), num_classes=num_classes)
    else:
        noisy = _generate_cached(
            spec, images=images, clean=clean, num_classes=num_classes, seed=seed, cache_dir=cache_dir, say=say
        )
    if keep is not None:
        clean, noisy = clean[keep], noisy[keep]
    realised = float(np.mean(noisy != clean)) if len(clean) else 0.0
    return NoisyLabels(
        labels=noisy, realised_rate=realised, transition=transition_matrix(clean, noisy, num_classes)
    )


def _generate(
    spec: NoiseSpec,
    *,
    images: np.ndarray,
    clean: np.ndarray,
    num_classes: int,
    seed: int,
    say: Callable[[str], None] | None = None,
) -> np.ndarray:
    if spec.kind == "idn":
        draws = idn_draws(num_classes, tuple(images.shape[1:]))
        progress = (
            _idn_progress(spec, num_classes, draws, say) if say and draws >= ANNOUNCE_IDN_DRAWS else None
        )
        return idn_labels(
            images, clean, num_classes=num_classes, rate=spec.rate, seed=seed, progress=progress
        )
    if spec.kind == "symmetric":
        return symmetric_labels(clean, num_classes=num_classes, rate=spec.rate, seed=seed)
    if spec.kind == "pair":
        return pair_labels(clean, num_classes=num_classes, rate=spec.rate, seed=seed)
    raise AssertionError(f"not a generated noise kind: {spec.kind}")


def _idn_progress(
    spec: NoiseSpec, num_classes: int, draws: int, say: Callable[[str], None]
) -> Callable[[int], None]:
    """Announce a long IDN draw, then report each quarter of its classes done (called once per class)."""
    say(
        f"noise {spec.label()}: drawing the IDN projection ({draws:,} random numbers, one class of "
        f"{num_classes:,} at a time); cached for later runs with this data and seed"
    )
    start = time.perf_counter()
    marks = {math.ceil(num_classes * q / 4): q * 25 for q in range(1, 5)}

    def done(classes: int) -> None:
        if classes in marks:
            seconds = time.perf_counter() - start
            say(f"noise {spec.label()}: {marks[classes]} % of the projection drawn ({seconds:.0f} s)")

    return done


# --------------------------------------------------------------------------------------------- caching


def _generate_cached(
    spec: NoiseSpec,
    *,
    images: np.ndarray,
    clean: np.ndarray,
    num_classes: int,
    seed: int,
    cache_dir: Path | None,
    say: Callable[[str], None] | None = None,
) -> np.ndarray:
    if cache_dir is None:
        return _generate(spec, images=images, clean=clean, num_classes=num_classes, seed=seed, say=say)
    path = Path(cache_dir) / f"noisy-labels-{_cache_key(spec, images, clean, num_classes, seed)}.npy"
    cached = _read_cache(path, num_samples=len(clean), num_classes=num_classes)
    if cached is not None:
        return cached
    noisy = _generate(spec, images=images, clean=clean, num_classes=num_classes, seed=seed, say=say)
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


# ------------------------------------------------------------------------------------------ generators


def truncated_normal(
    rng: np.random.Generator, *, mean: float, std: float, size: int, low: float = 0.0, high: float = 1.0
) -> np.ndarray:
    """Draw `size` samples of N(mean, std) truncated to [low, high] by rejection sampling.

    Draws batches of normals from `rng` in order and keeps those inside the interval, so the result is
    a deterministic function of the generator's state. float64 [size].
    """
    if std <= 0:
        return np.full(size, min(max(mean, low), high), dtype=np.float64)
    out = np.empty(size, dtype=np.float64)
    filled = 0
    while filled < size:
        draws = rng.normal(mean, std, size=max(size - filled, 16) * 2)
        kept = draws[(draws >= low) & (draws <= high)][: size - filled]
        out[filled : filled + len(kept)] = kept
        filled += len(kept)
    return out


def idn_labels(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    rate: float,
    seed: int,
    norm_std: float = 0.1,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Instance-dependent label noise of Xia et al. 2020.

    Paper: X. Xia et al., "Part-dependent Label Noise: Towards Instance-dependent Label Noise",
    NeurIPS 2020 (the generator ``get_instance_noisy_label`` of its code).

    Shapes: ``images`` uint8 [N, C_img, H, W], ``labels`` int [N] -> int64 [N]; D = C_img·H·W,
    C = ``num_classes``.

    For every sample i with clean label y and raw pixels x_i (0-255 as float, flattened in CHW
    order -- unnormalised, as the reference does, so the softmax below is almost one-hot):

        q_i ~ N(rate, norm_std) truncated to [0, 1]        (the sample's flip rate)
        W   ~ N(0, 1), shape [C, D, C]                     (one projection per clean class)
        a   = x_i · W[y]  (shape [C]),  a[y] = -inf
        p   = q_i · softmax(a),  p[y] = 1 - q_i
        noisy_i ~ Categorical(p)

    so the expected flip rate is E[q] ≈ rate. Randomness, all from ``default_rng(seed)``, in this
    order: q (`truncated_normal`), one uniform u_i per sample, then W[0], ..., W[C-1] (identical to one
    ``standard_normal((C, D, C))`` draw). The label is the inverse CDF of p at u_i. Samples are
    grouped by class (one matmul X_c @ W[c]) and processed in chunks, so memory stays bounded.
    A rate of 0 returns the labels unchanged (the truncated normal at 0 would still flip ~8%).
    `progress(k)` is called after the k-th class's W is drawn and used.
    """
    _check_num_classes(num_classes)
    _check_rate(rate)
    clean = _check_labels(labels, num_classes=num_classes, what="clean labels")
    pixels = _check_images(images, num_samples=len(clean))
    if rate == 0.0:
        return clean.copy()
    rng = np.random.default_rng(seed)
    flip_rates = truncated_normal(rng, mean=rate, std=norm_std, size=len(clean))
    uniforms = rng.random(len(clean))
    noisy = np.empty_like(clean)
    dim = int(np.prod(pixels.shape[1:]))
    for cls in range(num_classes):
        # Drawn for every class, even absent ones, so W is the same whatever classes the data holds.
        weights = rng.standard_normal((dim, num_classes))
        for idx, probs in _idn_rows_for_class(pixels, clean, flip_rates, weights, cls):
            noisy[idx] = _inverse_cdf(probs, uniforms[idx])
        if progress is not None:
            progress(cls + 1)
    return noisy


def idn_probabilities(
    images: np.ndarray, labels: np.ndarray, *, flip_rates: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The IDN label distributions p (float64 [N, C]) for given q (flip_rates [N]) and W ([C, D, C]).

    The same computation `idn_labels` samples from, exposed to inspect and test it on small data
    (it materialises all of W and all rows, so it is not meant for full data sets).
    """
    num_classes = weights.shape[0]
    clean = _check_labels(labels, num_classes=num_classes, what="clean labels")
    pixels = _check_images(images, num_samples=len(clean))
    rows = np.zeros((len(clean), num_classes), dtype=np.float64)
    for cls in range(num_classes):
        for idx, probs in _idn_rows_for_class(
            pixels, clean, np.asarray(flip_rates, np.float64), weights[cls], cls
        ):
            rows[idx] = probs
    return rows


def _idn_rows_for_class(
    pixels: np.ndarray, clean: np.ndarray, flip_rates: np.ndarray, weights: np.ndarray, cls: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (sample indices, p rows [n, C]) for the samples of class `cls`, a bounded chunk at a time."""
    members = np.flatnonzero(clean == cls)
    dim = weights.shape[0]
    chunk = max(1, _IDN_CHUNK_BYTES // (dim * 8))
    for start in range(0, len(members), chunk):
        idx = members[start : start + chunk]
        x = pixels[idx].reshape(len(idx), dim).astype(np.float64)
        scores = x @ weights  # [n, C]
        scores[:, cls] = -np.inf
        probs = _softmax(scores) * flip_rates[idx, None]
        probs[:, cls] = 1.0 - flip_rates[idx]
        yield idx, probs


def _softmax(scores: np.ndarray) -> np.ndarray:
    # Subtracting the row max keeps exp() finite for the huge scores raw pixels produce.
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return cast(np.ndarray, shifted / shifted.sum(axis=1, keepdims=True))


def _inverse_cdf(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Sample one class per row of `probs` [n, C] from uniforms [n] in [0, 1)."""
    cdf = np.cumsum(probs, axis=1)
    # Normalising by the last entry makes it exactly 1, so rounding can never push u past the end and
    # a class of probability 0 (a flat step of the CDF) can never be chosen.
    cdf /= cdf[:, -1:]
    return cast(np.ndarray, (cdf <= uniforms[:, None]).sum(axis=1).astype(np.int64))


def symmetric_labels(labels: np.ndarray, *, num_classes: int, rate: float, seed: int) -> np.ndarray:
    """Symmetric noise: with probability `rate` a label becomes a class drawn uniformly from the OTHER
    C - 1 classes (never itself), so the realised flip rate ≈ `rate`. int [N] -> int64 [N].

    Randomness from ``default_rng(seed)``: one uniform per sample (flip or not), then an offset in
    [1, C) per flipped sample; noisy = (y + offset) mod C.
    """
    _check_num_classes(num_classes)
    _check_rate(rate)
    clean = _check_labels(labels, num_classes=num_classes, what="clean labels")
    rng = np.random.default_rng(seed)
    flip = rng.random(len(clean)) < rate
    noisy = clean.copy()
    offsets = rng.integers(1, num_classes, size=int(flip.sum()))
    noisy[flip] = (clean[flip] + offsets) % num_classes
    return noisy


def pair_labels(labels: np.ndarray, *, num_classes: int, rate: float, seed: int) -> np.ndarray:
    """Pair-flip noise: with probability `rate` a label y becomes (y + 1) mod C. int [N] -> int64 [N].

    Randomness from ``default_rng(seed)``: one uniform per sample.
    """
    _check_num_classes(num_classes)
    _check_rate(rate)
    clean = _check_labels(labels, num_classes=num_classes, what="clean labels")
    flip = np.random.default_rng(seed).random(len(clean)) < rate
    return np.where(flip, (clean + 1) % num_classes, clean).astype(np.int64)


def transition_matrix(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """Empirical transition matrix T (float64 [C, C]): T[i, j] = fraction of clean-i samples labelled j.

    Rows of classes absent from `clean` are all 0; every other row sums to 1.
    """
    clean = np.asarray(clean, dtype=np.int64)
    noisy = np.asarray(noisy, dtype=np.int64)
    counts = np.bincount(clean * num_classes + noisy, minlength=num_classes * num_classes)
    counts = counts.reshape(num_classes, num_classes).astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return cast(np.ndarray, np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0))


# ------------------------------------------------------------------------------------------ label files

_TEXT_SUFFIXES = (".csv", ".txt")
_TORCH_SUFFIXES = (".pt", ".pth")


def load_label_file(path: Path, *, key: str | None, num_samples: int, num_classes: int) -> np.ndarray:
    """Read noisy labels (int64 [num_samples], each in [0, num_classes)) from a file.

    ``.pt``/``.pth``: a torch-saved array, tensor or dict of them (CIFAR-10N/100N: numpy arrays under
    ``aggre_label``, ``worse_label``, ``random_label1``..3, ``clean_label``; CIFAR-100N ``noisy_label``),
    loaded with ``weights_only=True`` and only numpy's array-rebuilding globals allowed, so a file
    holding any other object is refused without running its code. ``.npy``: ``np.load`` without
    pickle. ``.csv``/``.txt``: one integer per line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"noise label file {path} does not exist: check the path after 'file:'")
    suffix = path.suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        raw = _select_key(_load_torch(path), key=key, path=path)
    elif key is not None:
        raise UserError(f"a key ('#{key}') only applies to .pt files, not {path.name}: drop '#{key}'")
    elif suffix == ".npy":
        raw = _load_npy(path)
    elif suffix in _TEXT_SUFFIXES:
        raw = _load_text(path)
    else:
        raise UserError(f"noise label file {path.name} has an unknown type: use .pt, .npy, .csv or .txt")
    return _check_file_labels(raw, path=path, num_samples=num_samples, num_classes=num_classes)


def _numpy_safe_globals() -> list[Any]:
    """The globals numpy arrays pickle into: nothing that can run arbitrary code."""
    reconstruct = np.zeros(0).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy version keeps it
    int_dtypes = [
        np.dtype(t).__class__
        for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    ]
    # Files written under numpy 1.x (the CIFAR-N releases) name it numpy.core.multiarray; numpy 2 says
    # numpy._core.multiarray. Torch accepts (object, "dotted.name") pairs to allow both spellings.
    return [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *int_dtypes,
    ]


def _load_torch(path: Path) -> Any:
    import torch

    try:
        # Torch warns on stderr about a pickle protocol it did not expect before it refuses the file;
        # the refusal below is the one line that says what is wrong.
        with torch.serialization.safe_globals(_numpy_safe_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    # Damaged bytes make the unpickler fail in many ways (IndexError, KeyError, struct.error...); with
    # weights_only nothing from the file ran, so every failure is the file's fault and reported as such.
    except Exception as exc:
        reason = _short_reason(exc)
        if _REFUSED_OBJECT.search(reason):
            raise UserError(
                f"{path} holds objects other than integer arrays/tensors ({reason}): "
                "re-save it as a dict of numpy int arrays, or as .npy"
            ) from None
        raise UserError(
            f"cannot read {path} as a torch file ({reason}): check that it was written by torch.save"
        ) from None


# How torch's weights-only unpickler names an object it refused to build.
# Torch 2.14 words it "Trying to load unsupported GLOBAL posix.system whose module posix is blocked".
_REFUSED_OBJECT = re.compile(r"[Uu]nsupported (?:global: )?GLOBAL [\w.]+|but got <[^>]+>")


def _short_reason(exc: BaseException) -> str:
    """One line out of torch's multi-line error messages: the part naming the offending object."""
    text = str(exc)
    match = _REFUSED_OBJECT.search(text)
    if match:
        return match.group(0)
    # Torch wraps the unpickler's own complaint in paragraphs of advice; keep only the complaint.
    _, marker, detail = text.partition("WeightsUnpickler error:")
    # Never repeat torch's advice to retry with weights_only=False: that would run the file's code.
    lines = [
        line.strip()
        for line in (detail if marker else text).splitlines()
        if line.strip() and "weights_only" not in line and "Weights only load failed" not in line
    ]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _select_key(obj: Any, *, key: str | None, path: Path) -> Any:
    if isinstance(obj, dict):
        keys = ", ".join(sorted(str(k) for k in obj))
        if key is None and len(obj) == 1:
            return next(iter(obj.values()))  # one label set: nothing to choose
        if key is None:
            raise UserError(f"{path.name} holds several label sets ({keys}): pick one with file:{path}#KEY")
        if key not in obj:
            raise UserError(f"{path.name} has no key {key!r}; keys present: {keys}")
        return obj[key]
    if key is not None:
        raise UserError(f"{path.name} holds a single array, not a dict with key {key!r}: drop '#{key}'")
    return obj


def _load_npy(path: Path) -> np.ndarray:
    try:
        return cast(np.ndarray, np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(
            f"cannot read {path} as a .npy integer array ({_short_reason(exc)}): "
            "save it with np.save(path, labels.astype('int64'))"
        ) from None


def _load_text(path: Path) -> np.ndarray:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read {path} as text ({_short_reason(exc)}): write one integer label per line"
        ) from None
    values: list[int] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip().rstrip(",")
        if not text:
            continue  # blank lines (e.g. a trailing newline) carry no label
        try:
            values.append(int(text))
        except ValueError:
            raise UserError(
                f"{path.name} line {number} is {text!r}, not an integer: write one integer label per line"
            ) from None
    return np.asarray(values, dtype=np.int64)


def _check_file_labels(raw: Any, *, path: Path, num_samples: int, num_classes: int) -> np.ndarray:
    if hasattr(raw, "detach") and hasattr(raw, "numpy"):  # a torch tensor
        raw = raw.detach().cpu().numpy()
    if not isinstance(raw, np.ndarray | list | tuple):
        raise UserError(f"{path.name} holds a {type(raw).__name__}, not a label array: save int64 labels [N]")
    array = np.asarray(raw)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise UserError(
            f"labels in {path.name} are {array.dtype} of shape {array.shape}, not 1-D integers: "
            "save int64 labels [N]"
        )
    if len(array) != num_samples:
        raise UserError(
            f"{path.name} has {len(array)} labels but the data set has {num_samples} samples: "
            "use the label file made for this data set and split"
        )
    return _check_labels(array, num_classes=num_classes, what=f"labels in {path.name}")


# ----------------------------------------------------------------------------------------- validation


def _check_num_classes(num_classes: int) -> None:
    if int(num_classes) < 2:
        raise UserError(f"num_classes is {num_classes}: label noise needs at least 2 classes")


def _check_rate(rate: float) -> None:
    if not (math.isfinite(rate) and 0.0 <= rate < 1.0):
        raise UserError(f"noise rate {rate} is outside [0, 1): {_EXAMPLES}")


def _check_labels(labels: np.ndarray, *, num_classes: int, what: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise UserError(
            f"{what} must be a 1-D integer array, got {array.dtype} of shape {array.shape}: "
            "pass class indices [N]"
        )
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise UserError(
            f"{what} range over [{array.min()}, {array.max()}], outside [0, {num_classes}): "
            "check num_classes and the label file"
        )
    return array.astype(np.int64)


def _check_images(images: np.ndarray, *, num_samples: int) -> np.ndarray:
    pixels = np.asarray(images)
    if pixels.ndim != 4 or len(pixels) != num_samples:
        raise UserError(
            f"IDN needs images [N={num_samples}, C, H, W], got shape {pixels.shape}: "
            "pass the training images that the labels belong to"
        )
    return pixels
