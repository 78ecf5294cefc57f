"""Confident learning: which given labels are likely wrong, from out-of-fold class probabilities.

Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70
(2021), §3. Notation: N samples with given (noisy) labels ỹ ∈ {0..K−1} and out-of-fold probabilities
p̂ [N, K] (`pred_probs`, cleanlab's layout); X_{ỹ=i} the samples given label i, n_i = |X_{ỹ=i}|.

    t_j        = mean of p̂_j(x) over x ∈ X_{ỹ=j}                 per-class threshold (self-confidence)
    L(x)       = {l : p̂_l(x) ≥ t_l}                                 the classes x is confidently of
    ŷ*(x)      = the one class of L(x); argmax_l p̂_l(x) when L(x) holds several   (x counts if L ≠ ∅)
    C[i][j]    = |{x ∈ X_{ỹ=i} : ŷ*(x) = j}|                       the confident joint (Eq. 1)
    C̃[i][j]    = C[i][j] / Σ_l C[i][l] · n_i                       calibrated to the label counts (Eq. 2)
    prune      : for each i and j ≠ i, flag the round(C̃[i][j]) samples of X_{ỹ=i} with the largest
                 margin p̂_j(x) − p̂_i(x)                             "prune by noise rate" (§3.2)

Where the paper is silent this module follows the conventions cleanlab documents for
`cleanlab.filter.find_label_issues(labels, pred_probs)` (filter_by="prune_by_noise_rate"): every
diagonal of C is at least 1, the calibrated counts are rounded so each row still sums to n_i, every
given class keeps at least one sample unflagged, and a sample whose most probable class is its given
label is never flagged. Where L(x) holds several classes the paper takes the most probable of them;
cleanlab, and so this module, the most probable class of all (they differ only when that class is
below its own threshold, which happens with poorly fitted, nearly uniform probabilities). Suspects
are ranked by self-confidence p̂_ỹ(x), lowest first.

Every function is pure numpy; `tests/test_confident.py` checks them on planted cases and against
cleanlab itself.
"""

from __future__ import annotations

import numpy as np


def self_confidence(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """p̂_ỹ(x) [N]: each sample's probability of its given label (cleanlab's "self_confidence" label
    quality score; low = likely mislabelled)."""
    return pred_probs[np.arange(len(labels)), labels].astype(np.float64)


def confident_thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """t [K]: t_j = mean p̂_j(x) over the samples given label j. A class no sample is given gets +∞:
    nothing can be confidently of a class whose threshold is unknown."""
    k = pred_probs.shape[1]
    sums = np.bincount(labels, weights=pred_probs[np.arange(len(labels)), labels], minlength=k)
    counts = np.bincount(labels, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def confident_classes(pred_probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """ŷ* [N]: the one class at or above its threshold, the most probable class where several are,
    −1 where none is."""
    above = pred_probs >= thresholds[None, :]
    count = above.sum(axis=1)
    guess = np.where(count > 1, pred_probs.argmax(axis=1), above.argmax(axis=1))
    return np.where(count > 0, guess, -1)


def confident_joint(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """C int64 [K, K]: C[i][j] counts the samples given label i whose confident class ŷ* is j (Eq. 1);
    each diagonal entry at least 1, so every given class has a row to calibrate."""
    k = pred_probs.shape[1]
    guess = confident_classes(pred_probs, confident_thresholds(labels, pred_probs))
    counted = guess >= 0
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    np.fill_diagonal(joint, np.maximum(np.diag(joint), 1))
    return joint


def calibrate(joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """C̃ float [K, K]: each row of C rescaled to sum to n_i, the count of its given label (Eq. 2)."""
    rows = joint.sum(axis=1, keepdims=True).astype(np.float64)
    return joint / np.maximum(rows, 1e-12) * label_counts[:, None]


def round_rows(matrix: np.ndarray) -> np.ndarray:
    """Integers [K, K] nearest `matrix` with each row summing to its own sum rounded: every entry is
    floored, then each row's shortfall goes one by one to its entries with the largest fractions, the
    later class first among equal fractions (as cleanlab rounds: equal counts in a row tie often)."""
    floor = np.floor(matrix)
    out = floor.astype(np.int64)
    shortfall = np.rint(matrix.sum(axis=1) - floor.sum(axis=1)).astype(np.int64)
    fractions = matrix - floor
    for i, missing in enumerate(shortfall):
        if missing > 0:
            out[i, np.argsort(fractions[i], kind="stable")[-missing:]] += 1
    return out


def prune_counts(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """int64 [K, K]: how many samples given label i to flag as truly j (off the diagonal), the rounded
    calibrated confident joint. A given class whose diagonal rounds to 0 keeps one sample: its largest
    off-diagonal count gives one up."""
    k = pred_probs.shape[1]
    counts = round_rows(calibrate(confident_joint(labels, pred_probs), np.bincount(labels, minlength=k)))
    for i in range(k):
        if counts[i, i] == 0 and counts[i].sum() > 0:
            off = counts[i].copy()
            off[i] = -1
            counts[i, int(off.argmax())] -= 1
            counts[i, i] = 1
    return counts


def prune_by_noise_rate(labels: np.ndarray, pred_probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """bool [N]: for each given class i and other class j, the counts[i][j] samples given i with the
    largest margin p̂_j − p̂_i (those most confidently of class j instead), §3.2."""
    flagged = np.zeros(len(labels), dtype=bool)
    for i in range(counts.shape[0]):
        members = np.flatnonzero(labels == i)
        for j in np.flatnonzero(counts[i]):
            if j == i:
                continue
            margin = pred_probs[members, j] - pred_probs[members, i]
            flagged[members[np.argsort(-margin, kind="stable")[: counts[i, j]]]] = True
    return flagged


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """bool [N]: the samples whose given label confident learning calls wrong (the steps above), less
    those whose most probable class is their given label. labels int [N] in 0..K−1, pred_probs [N, K]
    out-of-fold (in-sample probabilities have memorised the wrong labels and find few of them)."""
    labels = np.asarray(labels, dtype=np.int64)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    flagged = prune_by_noise_rate(labels, pred_probs, prune_counts(labels, pred_probs))
    return flagged & (pred_probs.argmax(axis=1) != labels)


def rank_by_quality(flagged: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """int64 [N]: 1 for the flagged sample of lowest label quality, 2 for the next, …; 0 where unflagged.
    Ties keep the samples' order."""
    ranks = np.zeros(len(flagged), dtype=np.int64)
    order = np.flatnonzero(flagged)[np.argsort(quality[flagged], kind="stable")]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks
