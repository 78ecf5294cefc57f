"""`make_noisy_labels`: a `NoiseSpec` applied to a data set's clean labels, within bounds on what grows
with the class count, cached when asked."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from noisylab.errors import UserError
from noisylab.noise.cache import generate_cached
from noisylab.noise.checks import check_labels, check_num_classes
from noisylab.noise.files import load_label_file
from noisylab.noise.generators import idn_labels, pair_labels, symmetric_labels, transition_matrix
from noisylab.noise.spec import NoiseSpec, NoisyLabels

# What grows with the number of classes C, bounded before any of it is computed (`check_noise_size`):
# the transition matrix, C × C float64, held several times while it is counted, by every worker and in
# the record (4,096 classes: 128 MiB, ~3 s to record); and IDN's projection, C × D × C normal numbers
# (D = pixels per image), drawn one class at a time, so its memory stays C × D but its time does not
# (~75 million numbers a second on one core here: the bound is about a minute).
MAX_TRANSITION_ENTRIES = 2**24
MAX_IDN_DRAWS = 2**32
ANNOUNCE_IDN_DRAWS = 2**28  # a few seconds of drawing: say what is computed, and how far it is


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
    check_num_classes(num_classes)
    check_noise_size(spec, num_classes=num_classes, image_shape=tuple(np.shape(images)[1:]))
    clean = check_labels(labels, num_classes=num_classes, what="clean labels")
    if spec.kind == "none":
        noisy = clean.copy()
    elif spec.kind == "file":
        assert spec.path is not None  # guaranteed by NoiseSpec.__post_init__
        noisy = load_label_file(spec.path, key=spec.key, num_samples=len(clean), num_classes=num_classes)
    else:

        def draw() -> np.ndarray:
            return _generate(spec, images=images, clean=clean, num_classes=num_classes, seed=seed, say=say)

        noisy = generate_cached(
            spec,
            images=images,
            clean=clean,
            num_classes=num_classes,
            seed=seed,
            cache_dir=cache_dir,
            generate=draw,
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
