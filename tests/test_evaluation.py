from __future__ import annotations

import math

import torch

from noisylab.results.live import describe
from noisylab.train.evaluation import class_accuracy


def test_class_accuracy_is_per_class_recall() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    acc = class_accuracy(preds, labels, 4)
    assert acc[:3] == [0.5, 2 / 3, 1.0]
    assert math.isnan(acc[3])  # class 3 never occurs


def test_epoch_line_names_what_the_epoch_did() -> None:
    line = describe(
        {
            "train_loss": 0.5,
            "images_per_s": 1234.0,
            "stage": 2,
            "selected_size": 10.0,
            "selected_precision": 0.9,
            "test_acc": 0.81234,
            "test_f1": 0.8,
        }
    )
    assert ("loss 0.5000" in line and "1234 img/s" in line) or "1235 img/s" in line
    assert "stage 2: selected 10 (labels right 90.0 %)" in line
    assert "test acc 81.23 %" in line
