"""Label issues from class probabilities: cleanlab's `find_label_issues` when it is installed (the
`cleanlab` extra), noisylab's own confident learning (`confident.py`) when it is not, and how well a
flagged set matches the clean labels when they are known.

The columns it adds to a table of `given_label` and `pred_probs` (cleanlab's layout):

    predicted_label   argmax of pred_probs
    label_quality     self-confidence p̂_ỹ(x), cleanlab's default label quality score (low = suspect)
    is_label_issue    flagged by confident learning (prune by noise rate)
    issue_rank        1 for the most suspect flagged sample (lowest label_quality), null if not flagged
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from noisylab.errors import UserError
from noisylab.results import confident

Ranking = Literal["auto", "cleanlab", "builtin"]
RANKINGS: tuple[str, ...] = ("auto", "cleanlab", "builtin")
ISSUE_COLUMNS = ("predicted_label", "label_quality", "is_label_issue", "issue_rank")


@dataclass(frozen=True)
class Issues:
    flagged: np.ndarray  # bool [N]
    quality: np.ndarray  # float64 [N], self-confidence
    by: str  # who flagged them, in words


def cleanlab_version() -> str | None:
    """The installed cleanlab's version, None when it cannot be imported."""
    try:
        import cleanlab
    except ImportError:
        return None
    return str(getattr(cleanlab, "__version__", "?"))


def check_ranking(ranking: str) -> Ranking:
    """`ranking` checked before any fold trains: cleanlab must be importable when it is asked for."""
    if ranking not in RANKINGS:
        raise UserError(f"--ranking {ranking}: choose one of {', '.join(RANKINGS)}")
    if ranking == "cleanlab" and cleanlab_version() is None:
        raise UserError(
            "--ranking cleanlab: cleanlab is not installed; install it (pip install -e '.[cleanlab]') "
            "or pass --ranking builtin"
        )
    return ranking  # type: ignore[return-value]


def find_issues(labels: np.ndarray, pred_probs: np.ndarray, *, ranking: Ranking = "auto") -> Issues:
    """Which given labels (int [N]) look wrong under `pred_probs` [N, K]. `auto`: cleanlab's
    `filter.find_label_issues` (prune_by_noise_rate) and `rank.get_label_quality_scores`
    (self_confidence) when cleanlab imports, else `confident.find_label_issues`."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(pred_probs, dtype=np.float64)
    if ranking == "cleanlab":
        check_ranking(ranking)  # installed, or one line saying how to install it
    version = cleanlab_version() if ranking != "builtin" else None
    if version is not None:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        flagged = np.asarray(find_label_issues(labels, probs, filter_by="prune_by_noise_rate"), dtype=bool)
        quality = np.asarray(get_label_quality_scores(labels, probs, method="self_confidence"))
        return Issues(flagged, quality.astype(np.float64), f"cleanlab {version} (prune_by_noise_rate)")
    return Issues(
        confident.find_label_issues(labels, probs),
        confident.self_confidence(labels, probs),
        "noisylab's confident learning (prune by noise rate; Northcutt et al. 2021)",
    )


def with_issues(table: pl.DataFrame, issues: Issues) -> pl.DataFrame:
    """`table` (given_label, pred_probs) with the columns of `ISSUE_COLUMNS`."""
    probs = np.asarray(table["pred_probs"].to_numpy())
    ranks = confident.rank_by_quality(issues.flagged, issues.quality)
    return table.with_columns(
        pl.Series("predicted_label", probs.argmax(axis=1).astype(np.int64)),
        pl.Series("label_quality", issues.quality),
        pl.Series("is_label_issue", issues.flagged),
        pl.Series("issue_rank", ranks).replace(0, None),
    )


@dataclass(frozen=True)
class FlagScore:
    """A flagged set against the clean labels: a flagged sample is right when its given label is wrong."""

    flagged: int
    wrong: int  # given labels that differ from the clean ones
    caught: int  # flagged and wrong

    @property
    def precision(self) -> float:
        return self.caught / self.flagged if self.flagged else float("nan")

    @property
    def recall(self) -> float:
        return self.caught / self.wrong if self.wrong else float("nan")


def score_flags(flagged: np.ndarray, given: np.ndarray, clean: np.ndarray) -> FlagScore:
    """precision = |flagged ∩ wrong| / |flagged|, recall = |flagged ∩ wrong| / |wrong|, wrong = the
    samples whose given label is not their clean label (known for synthetic noise)."""
    wrong = np.asarray(given) != np.asarray(clean)
    return FlagScore(int(flagged.sum()), int(wrong.sum()), int((flagged & wrong).sum()))
