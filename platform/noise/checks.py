"""Checks every noise function runs on what it is given: class counts, rates, labels, images."""

from __future__ import annotations

import math

import numpy as np

from noisylab.errors import UserError

EXAMPLES = "use e.g. idn:0.3, sym:0.2, pair:0.4, none or file:labels.npy"


def check_num_classes(num_classes: int) -> None:
    if int(num_classes) < 2:
        raise UserError(f"num_classes is {num_classes}: label noise needs at least 2 classes")


def check_rate(rate: float) -> None:
    if not (math.isfinite(rate) and 0.0 <= rate < 1.0):
        raise UserError(f"noise rate {rate} is outside [0, 1): {EXAMPLES}")


def check_labels(labels: np.ndarray, *, num_classes: int, what: str) -> np.ndarray:
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


def check_images(images: np.ndarray, *, num_samples: int) -> np.ndarray:
    pixels = np.asarray(images)
    if pixels.ndim != 4 or len(pixels) != num_samples:
        raise UserError(
            f"IDN needs images [N={num_samples}, C, H, W], got shape {pixels.shape}: "
            "pass the training images that the labels belong to"
        )
    return pixels
