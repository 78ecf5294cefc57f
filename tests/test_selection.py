from __future__ import annotations

import math

import torch

from noisylab.train import losses
from noisylab.train.selection import consensus, relabel, selection_scores, set_quality


def test_consensus_is_selected_at_every_stage() -> None:
    masks = [
        torch.tensor([1, 1, 0, 1], dtype=torch.bool),
        torch.tensor([1, 0, 0, 1], dtype=torch.bool),
        torch.tensor([1, 1, 1, 1], dtype=torch.bool),
    ]
    assert consensus(masks).tolist() == [True, False, False, True]
    assert masks[0].tolist() == [True, True, False, True]  # inputs untouched


def test_relabel_takes_predictions_only_where_agreed() -> None:
    labels = torch.tensor([0, 1, 2, 3])
    preds = torch.tensor([3, 3, 3, 3])
    agreed = torch.tensor([True, False, True, False])
    assert relabel(labels, preds, agreed).tolist() == [3, 1, 3, 3]


def test_set_quality_counts_precision_and_recall() -> None:
    clean = torch.tensor([0, 1, 2, 3, 4, 5])
    labels = torch.tensor([0, 1, 2, 0, 0, 5])  # samples 3, 4 mislabelled
    selected = torch.tensor([True, True, False, True, False, False])
    q = set_quality(selected, labels, clean)
    assert q.size == 3
    assert q.precision == 2 / 3  # 0 and 1 right, 3 wrong
    assert q.recall == 2 / 4  # of the 4 right labels (0, 1, 2, 5), 2 selected
    empty = set_quality(torch.zeros(6, dtype=torch.bool), labels, clean)
    assert empty.size == 0 and math.isnan(empty.precision) and empty.recall == 0


def test_selection_scores_use_the_report_scale() -> None:
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    y = torch.tensor([0, 0])
    s = selection_scores(logits, y, kind="nce_mae", mae_weight=1.0, focal_gamma=2.0)
    assert torch.allclose(s, losses.nce(logits, y) + losses.mae(logits, y))
    assert s[0] < 1.0 < s[1]  # a confident right label passes the CIFAR threshold, a wrong one does not
    p = logits.softmax(1)[:, 0]
    assert torch.allclose(losses.mae(logits, y), 2 * (1 - p))
    alt = selection_scores(logits, y, kind="swce_focal", mae_weight=1.0, focal_gamma=2.0)
    assert torch.allclose(alt, losses.swce(logits, y) + losses.focal(logits, y, gamma=2.0))
