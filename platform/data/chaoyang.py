"""Chaoyang colon histopathology: root/train.json and root/test.json list image paths and labels.

Each JSON file is a list of {"name": "train/xxx.JPG", "label": k} with paths relative to root.
Chaoyang's labels are noisy by construction (three pathologists disagreed), which is why it is here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noisylab.data.folders import DEFAULT_IMAGE_SIZE
from noisylab.data.images import (
    Dataset,
    ImageSet,
    count_classes,
    labels_tensor,
    numeric_class_names,
    read_images,
    relative_files,
)
from noisylab.errors import UserError

CHAOYANG_CLASSES: tuple[str, ...] = ("normal", "serrated", "adenocarcinoma", "adenoma")

_HINT = "unpack the Chaoyang archive there (train.json, test.json and the image folders) or pass --data-root"


def _read_entries(path: Path) -> list[tuple[Path, int]]:
    """(image path, label) pairs from one split file, every field type-checked."""
    if not path.is_file():
        raise UserError(f"Chaoyang not found in {path.parent}: expected {path.name} there; {_HINT}")
    try:
        entries: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"cannot parse {path} ({exc}); it must be a JSON list of {{name, label}} objects"
        ) from exc
    if not isinstance(entries, list) or not entries:
        raise UserError(f'{path} must be a non-empty JSON list of {{"name": ..., "label": ...}} objects')
    root = path.parent
    pairs: list[tuple[Path, int]] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "label" not in entry:
            raise UserError(
                f'{path} entry {position} is not a {{"name": str, "label": int}} object: {entry!r}'
            )
        label = entry["label"]
        if isinstance(label, bool) or not isinstance(label, int):
            raise UserError(
                f"{path} entry {position} ({entry['name']}) has non-integer label {label!r}; "
                "labels must be class indices 0..K-1"
            )
        if label < 0:
            raise UserError(
                f"{path} entry {position} ({entry['name']}) has label {label}, outside the classes; "
                "labels must be class indices 0..K-1"
            )
        pairs.append((root / entry["name"], label))
    return pairs


def load_chaoyang(root: Path, *, image_size: int | None = None) -> Dataset:
    """Chaoyang as RGB image_size x image_size (default 224); K = largest label + 1 across both splits."""
    if not root.is_dir():
        raise UserError(f"Chaoyang not found: {root} is not a folder; {_HINT}")
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    splits = {split: _read_entries(root / f"{split}.json") for split in ("train", "test")}
    num_classes = max(
        count_classes([label for _, label in pairs], root / f"{split}.json")
        for split, pairs in splits.items()
    )
    classes = CHAOYANG_CLASSES if num_classes == len(CHAOYANG_CLASSES) else numeric_class_names(num_classes)
    sets = {
        split: ImageSet(
            read_images([p for p, _ in pairs], mode="RGB", image_size=size),
            labels_tensor([label for _, label in pairs]),
            classes,
            relative_files([p for p, _ in pairs], root),
        )
        for split, pairs in splits.items()
    }
    return Dataset(name="chaoyang", train=sets["train"], test=sets["test"])
