"""noisylab's confident learning (Northcutt et al. 2021): planted cases computed by hand, and agreement
with cleanlab itself (installed with the dev extra)."""

from __future__ import annotations

import numpy as np
import pytest

from noisylab.results import confident
from noisylab.results.issues import find_issues, score_flags


def planted(n_per_class: int = 10, classes: int = 3, flips: tuple[int, ...] = (1, 12, 25, 27)) -> tuple:
    """Probabilities 0.9 on each sample's clean class; the given labels of `flips` moved one class on."""
    clean = np.repeat(np.arange(classes), n_per_class)
    probs = np.full((len(clean), classes), 0.1 / (classes - 1))
    probs[np.arange(len(clean)), clean] = 0.9
    given = clean.copy()
    given[list(flips)] = (clean[list(flips)] + 1) % classes
    return given, clean, probs


def test_thresholds_are_the_mean_self_confidence_of_each_given_class() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9], [0.5, 0.5]])
    assert np.allclose(confident.confident_thresholds(labels, probs), [0.6, 0.7])
    assert np.allclose(confident.self_confidence(labels, probs), [0.8, 0.4, 0.7, 0.9, 0.5])
    # A class nobody is given has no threshold: nothing is confidently of it.
    assert confident.confident_thresholds(np.array([0, 0]), probs[:2])[1] == np.inf


def test_confident_classes_one_several_or_none_above_threshold() -> None:
    thresholds = np.array([0.5, 0.3, 0.3])
    probs = np.array(
        [
            [0.6, 0.2, 0.2],  # only class 0 clears its threshold
            [0.2, 0.4, 0.4],  # 1 and 2 clear theirs, equally: the first most probable
            [0.1, 0.35, 0.55],  # 1 and 2: the more probable, 2
            [0.45, 0.28, 0.27],  # none clears its threshold
            [0.48, 0.31, 0.21],  # only 1 clears its threshold, though 0 is more probable
        ]
    )
    assert confident.confident_classes(probs, thresholds).tolist() == [0, 1, 2, -1, 1]


def test_confident_joint_counts_given_against_confident_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])
    # t = (0.6, 0.533…): sample 2 (given 0) is confidently 1, sample 5 (given 1) confidently 0.
    assert confident.confident_joint(labels, probs).tolist() == [[2, 1], [1, 2]]


def test_calibration_and_rounding_keep_the_label_counts() -> None:
    joint = np.array([[3, 1, 0], [1, 1, 1], [0, 0, 1]])
    counts = np.array([8, 6, 2])
    calibrated = confident.calibrate(joint, counts)
    assert np.allclose(calibrated, [[6, 2, 0], [2, 2, 2], [0, 0, 2]])
    rounded = confident.round_rows(np.array([[0.4, 0.4, 0.2], [2.5, 1.25, 1.25]]))
    assert rounded.sum(axis=1).tolist() == [1, 5]
    assert rounded.tolist() == [[0, 1, 0], [3, 1, 1]]  # equal fractions: the later class first


def test_a_class_whose_diagonal_rounds_to_zero_keeps_one_sample() -> None:
    # Given 0: one sample looks like 0, nine like 1 → counts row (1, 9) would flag nine of ten at most.
    labels = np.array([0] * 10 + [1] * 10)
    probs = np.tile([0.2, 0.8], (20, 1))
    probs[0] = [0.95, 0.05]
    counts = confident.prune_counts(labels, probs)
    assert counts[0, 0] >= 1 and counts[0].sum() == 10
    flagged = confident.find_label_issues(labels, probs)
    assert not flagged[0] and flagged[1:10].all() and not flagged[10:].any()


def test_a_planted_case_flags_exactly_the_flipped_labels() -> None:
    given, clean, probs = planted()
    flagged = confident.find_label_issues(given, probs)
    assert np.flatnonzero(flagged).tolist() == [1, 12, 25, 27]
    score = score_flags(flagged, given, clean)
    assert (score.precision, score.recall) == (1.0, 1.0)
    ranks = confident.rank_by_quality(flagged, confident.self_confidence(given, probs))
    assert sorted(ranks[flagged].tolist()) == [1, 2, 3, 4] and not ranks[~flagged].any()


def test_the_most_confidently_wrong_label_ranks_first() -> None:
    given, _, probs = planted()
    probs[25] = [0.02, 0.03, 0.95]  # given 0 (clean 2): now the least confident of its given label
    probs[12] = [0.02, 0.88, 0.10]  # given 2 (clean 1): the most confident of its given label of the four
    flagged = confident.find_label_issues(given, probs)
    ranks = confident.rank_by_quality(flagged, confident.self_confidence(given, probs))
    assert ranks[25] == 1 and ranks[12] == 4


def test_a_sample_predicted_as_its_given_label_is_never_flagged() -> None:
    given, _, probs = planted(flips=(1,))
    probs[given == 0] = [0.4, 0.3, 0.3]  # class 0's threshold: 0.4; class 1's stays near 0.86
    probs[1] = [0.5, 0.42, 0.08]  # given 1, confidently of class 0, which is also its first choice
    assert np.flatnonzero(confident.find_label_issues(given, probs)).tolist() == [1]
    probs[1] = [0.42, 0.5, 0.08]  # still confidently of class 0 alone, but its first choice is 1
    assert confident.confident_joint(given, probs)[1, 0] == 1
    assert not confident.find_label_issues(given, probs).any()


def _noisy_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n, k = int(rng.integers(100, 1500)), int(rng.integers(2, 11))
    clean = rng.integers(0, k, n)
    given = clean.copy()
    flip = rng.random(n) < rng.uniform(0.05, 0.5)
    given[flip] = rng.integers(0, k, int(flip.sum()))
    given[:k] = np.arange(k)  # every class given at least once
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), clean] += rng.uniform(0.2, 4)
    probs = np.exp(logits)
    return given, probs / probs.sum(axis=1, keepdims=True)


def test_agrees_with_cleanlab() -> None:
    """The same confident joint as cleanlab's, entry for entry, and the same flagged set up to how
    equal fractions are rounded (cleanlab breaks those ties by an unstable sort)."""
    count = pytest.importorskip("cleanlab.count")
    cl_filter = pytest.importorskip("cleanlab.filter")
    cl_rank = pytest.importorskip("cleanlab.rank")
    rng = np.random.default_rng(0)
    samples = disagree = 0
    for _ in range(25):
        given, probs = _noisy_case(rng)
        theirs = count.compute_confident_joint(given, probs, calibrate=False)
        assert np.array_equal(confident.confident_joint(given, probs), theirs)
        flagged = cl_filter.find_label_issues(given, probs)
        samples += len(given)
        disagree += int((confident.find_label_issues(given, probs) != flagged).sum())
        quality = cl_rank.get_label_quality_scores(given, probs, method="self_confidence")
        assert np.allclose(confident.self_confidence(given, probs), quality)
    assert disagree <= samples // 1000, (disagree, samples)
    given, _, probs = planted()
    assert np.array_equal(
        confident.find_label_issues(given, probs), cl_filter.find_label_issues(given, probs)
    )


def test_find_issues_uses_cleanlab_or_the_builtin_ranking() -> None:
    pytest.importorskip("cleanlab")
    given, _, probs = planted()
    by_cleanlab = find_issues(given, probs, ranking="auto")
    builtin = find_issues(given, probs, ranking="builtin")
    assert by_cleanlab.by.startswith("cleanlab ") and builtin.by.startswith("noisylab's")
    assert np.array_equal(by_cleanlab.flagged, builtin.flagged)


def test_without_cleanlab_auto_falls_back_and_cleanlab_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from noisylab.errors import UserError

    real_import = builtins.__import__

    def no_cleanlab(name: str, *args: object, **kwargs: object) -> object:
        if name == "cleanlab" or name.startswith("cleanlab."):
            raise ImportError("No module named 'cleanlab'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_cleanlab)
    given, _, probs = planted()
    assert find_issues(given, probs, ranking="auto").by.startswith("noisylab's")
    with pytest.raises(UserError, match="cleanlab is not installed"):
        find_issues(given, probs, ranking="cleanlab")
