"""The seeded generators: instance-dependent (Xia et al. 2020), symmetric and pair noise, and the
empirical transition matrix. Arrays in, arrays out; all randomness from ``np.random.default_rng(seed)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

import numpy as np

from noisylab.noise.checks import check_images, check_labels, check_num_classes, check_rate

# The pixel matrix of one IDN chunk is kept under this many bytes so 224x224 images stay bounded.
_IDN_CHUNK_BYTES = 64 * 2**20


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
    check_num_classes(num_classes)
    check_rate(rate)
    clean = check_labels(labels, num_classes=num_classes, what="clean labels")
    pixels = check_images(images, num_samples=len(clean))
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
    clean = check_labels(labels, num_classes=num_classes, what="clean labels")
    pixels = check_images(images, num_samples=len(clean))
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
    check_num_classes(num_classes)
    check_rate(rate)
    clean = check_labels(labels, num_classes=num_classes, what="clean labels")
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
    check_num_classes(num_classes)
    check_rate(rate)
    clean = check_labels(labels, num_classes=num_classes, what="clean labels")
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
