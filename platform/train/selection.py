"""Per-sample selection: score every training sample, keep those under a loss threshold, and turn
the selections of an iteration's stages into consensus pseudo-labels.

Arrays in, arrays out; the scan that produces the scores is `engine.scan`, shared by every method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from noisylab.config.run import MaeScale, SelectionLoss
from noisylab.train import losses

MAE_SCALES: dict[MaeScale, float] = {"report": losses.MAE_REPORT_SCALE, "apl": losses.MAE_APL_SCALE}


def selection_scores(
    logits: Tensor,
    targets: Tensor,
    *,
    kind: SelectionLoss,
    mae_weight: float,
    focal_gamma: float,
    mae_scale: MaeScale = "report",
) -> Tensor:
    """Per-sample selection loss [B] of `logits` [B, K] against the current labels `targets` [B].

    nce_mae: NCE + β·MAE with MAE = 2(1 − p_y) (`mae_scale="report"`, Σ_c|p_c − q_c| as the report writes
    it) or 1 − p_y (`"apl"`, the Active-Passive-Losses code). At threshold 1 the report's scale selects
    only samples with p_y > 1/2 (NCE ≥ 0), whose prediction is their label already, so consensus never
    relabels; the APL scale selects down to p_y > 0 minus NCE, so disagreeing samples can be relabelled.
    swce_focal: SWCE + focal, the report's variant. `logits` may be log-probabilities (an ensemble's).
    """
    if kind == "nce_mae":
        return losses.nce_mae(logits, targets, mae_weight=mae_weight, mae_scale=MAE_SCALES[mae_scale])
    return losses.swce(logits, targets) + losses.focal(logits, targets, gamma=focal_gamma)


@dataclass(frozen=True)
class SetQuality:
    """How clean a selected set is, judged against the clean labels (diagnostics only)."""

    size: int
    precision: float  # fraction of selected samples whose label is right
    recall: float  # fraction of the correctly-labelled samples that were selected

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_size": float(self.size),
            f"{prefix}_precision": self.precision,
            f"{prefix}_recall": self.recall,
        }


def set_quality(selected: Tensor, labels: Tensor, clean: Tensor) -> SetQuality:
    """`selected` bool [N]; `labels` the labels the set carries [N]; `clean` the true labels [N]."""
    right = labels == clean
    n_sel = int(selected.sum())
    hit = int((selected & right).sum())
    n_right = int(right.sum())
    return SetQuality(
        size=n_sel,
        precision=hit / n_sel if n_sel else float("nan"),
        recall=hit / n_right if n_right else float("nan"),
    )


def consensus(stage_masks: list[Tensor]) -> Tensor:
    """Samples selected at every stage of the iteration: bool [N]."""
    if not stage_masks:
        raise ValueError("consensus needs at least one stage selection")
    out = stage_masks[0].clone()
    for m in stage_masks[1:]:
        out &= m
    return out


def relabel(labels: Tensor, predictions: Tensor, agreed: Tensor) -> Tensor:
    """New label vector: the model's prediction where `agreed`, the current label elsewhere."""
    return torch.where(agreed, predictions.to(labels.dtype), labels)
