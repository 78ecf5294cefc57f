"""Stratified folds of a training set, and the fold an out-of-fold run holds out.

Out-of-fold probabilities (cleanlab's `cross_val_predict` workflow): the training set of N samples is
split into K folds, each run trains on K − 1 of them and predicts the one it never saw, so every sample
gets class probabilities from a network that did not fit its (possibly wrong) label. The folds are a
function of the given labels and the run's seed alone, so the K fold runs of one config, wherever and
whenever they run, split the set the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noisylab.errors import UserError


def stratified_folds(labels: np.ndarray, folds: int, *, seed: int) -> np.ndarray:
    """The fold (1..K) of each sample: int64 [N] for labels int [N] and K = `folds`.

    Stratified by label: the samples of each class, shuffled by a generator seeded with `seed`, are dealt
    to the folds in turn, each class starting where the previous one stopped. Every fold then holds
    ⌊n_c/K⌋ or ⌈n_c/K⌉ samples of each class c (the stratification of scikit-learn's StratifiedKFold), and
    the fold sizes differ by at most one overall. Deterministic in (labels, K, seed)."""
    check_fold_count(labels, folds)
    n = len(labels)
    rng = np.random.default_rng(seed)
    assignment = np.zeros(n, dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        assignment[members] = (start + np.arange(len(members))) % folds + 1
        start = (start + len(members)) % folds
    return assignment


def check_fold_count(labels: np.ndarray, folds: int, *, class_names: tuple[str, ...] | None = None) -> None:
    """K = `folds` stratified folds of `labels` must each hold every given class: K ≥ 2, K ≤ N, and K no
    larger than the smallest class. A class of fewer than K samples would be missing from some folds, and
    the fold runs, which stratification keeps alike, would differ in what they learn of it (scikit-learn's
    StratifiedKFold only warns here; a user asking for K folds gets K comparable ones or one line)."""
    if folds < 2:
        raise UserError(f"out-of-fold probabilities need at least 2 folds, got {folds}")
    n = len(labels)
    if folds > n:
        raise UserError(f"{folds} folds of {n} training samples would leave a fold empty: use ≤ {n} folds")
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    given = np.flatnonzero(counts)
    smallest = int(given[np.argmin(counts[given])])
    size = int(counts[smallest])
    if size < folds:
        name = f"'{class_names[smallest]}'" if class_names and smallest < len(class_names) else str(smallest)
        raise UserError(
            f"{folds} folds: class {name} has only {size} training sample(s) by its given label, so "
            f"{folds - size} of the stratified folds would hold none of it: use --folds ≤ {size}"
        )


@dataclass(frozen=True)
class HeldOutFold:
    """The samples a fold run never trains on, with what its held-out table needs beside the images."""

    fold: int  # 1..K
    images: np.ndarray  # uint8 [M, C, H, W]
    position: np.ndarray  # int64 [M]: each sample's index in the whole training set (samples.parquet's)
    dataset_index: np.ndarray  # int64 [M]: its index in the dataset's full training split
    given: np.ndarray  # int64 [M]: the (noisy) labels the folds were stratified by
    clean: np.ndarray  # int64 [M]
    files: tuple[str, ...] | None  # paths relative to the data root, for sets read from image files
