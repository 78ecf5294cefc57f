"""Noisy labels read from files (CIFAR-10N/100N human labels, .npy, .csv/.txt), never running a
file's code."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np

from noisylab.errors import UserError
from noisylab.noise.checks import check_labels

_TEXT_SUFFIXES = (".csv", ".txt")
_TORCH_SUFFIXES = (".pt", ".pth")


def load_label_file(path: Path, *, key: str | None, num_samples: int, num_classes: int) -> np.ndarray:
    """Read noisy labels (int64 [num_samples], each in [0, num_classes)) from a file.

    ``.pt``/``.pth``: a torch-saved array, tensor or dict of them (CIFAR-10N/100N: numpy arrays under
    ``aggre_label``, ``worse_label``, ``random_label1``..3, ``clean_label``; CIFAR-100N ``noisy_label``),
    loaded with ``weights_only=True`` and only numpy's array-rebuilding globals allowed, so a file
    holding any other object is refused without running its code. ``.npy``: ``np.load`` without
    pickle. ``.csv``/``.txt``: one integer per line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"noise label file {path} does not exist: check the path after 'file:'")
    suffix = path.suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        raw = _select_key(_load_torch(path), key=key, path=path)
    elif key is not None:
        raise UserError(f"a key ('#{key}') only applies to .pt files, not {path.name}: drop '#{key}'")
    elif suffix == ".npy":
        raw = _load_npy(path)
    elif suffix in _TEXT_SUFFIXES:
        raw = _load_text(path)
    else:
        raise UserError(f"noise label file {path.name} has an unknown type: use .pt, .npy, .csv or .txt")
    return _check_file_labels(raw, path=path, num_samples=num_samples, num_classes=num_classes)


def _numpy_safe_globals() -> list[Any]:
    """The globals numpy arrays pickle into: nothing that can run arbitrary code."""
    reconstruct = np.zeros(0).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy version keeps it
    int_dtypes = [
        np.dtype(t).__class__
        for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    ]
    # Files written under numpy 1.x (the CIFAR-N releases) name it numpy.core.multiarray; numpy 2 says
    # numpy._core.multiarray. Torch accepts (object, "dotted.name") pairs to allow both spellings.
    return [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *int_dtypes,
    ]


def _load_torch(path: Path) -> Any:
    import torch

    try:
        # Torch warns on stderr about a pickle protocol it did not expect before it refuses the file;
        # the refusal below is the one line that says what is wrong.
        with torch.serialization.safe_globals(_numpy_safe_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    # Damaged bytes make the unpickler fail in many ways (IndexError, KeyError, struct.error...); with
    # weights_only nothing from the file ran, so every failure is the file's fault and reported as such.
    except Exception as exc:
        reason = _short_reason(exc)
        if _REFUSED_OBJECT.search(reason):
            raise UserError(
                f"{path} holds objects other than integer arrays/tensors ({reason}): "
                "re-save it as a dict of numpy int arrays, or as .npy"
            ) from None
        raise UserError(
            f"cannot read {path} as a torch file ({reason}): check that it was written by torch.save"
        ) from None


# How torch's weights-only unpickler names an object it refused to build.
# Torch 2.14 words it "Trying to load unsupported GLOBAL posix.system whose module posix is blocked".
_REFUSED_OBJECT = re.compile(r"[Uu]nsupported (?:global: )?GLOBAL [\w.]+|but got <[^>]+>")


def _short_reason(exc: BaseException) -> str:
    """One line out of torch's multi-line error messages: the part naming the offending object."""
    text = str(exc)
    match = _REFUSED_OBJECT.search(text)
    if match:
        return match.group(0)
    # Torch wraps the unpickler's own complaint in paragraphs of advice; keep only the complaint.
    _, marker, detail = text.partition("WeightsUnpickler error:")
    # Never repeat torch's advice to retry with weights_only=False: that would run the file's code.
    lines = [
        line.strip()
        for line in (detail if marker else text).splitlines()
        if line.strip() and "weights_only" not in line and "Weights only load failed" not in line
    ]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _select_key(obj: Any, *, key: str | None, path: Path) -> Any:
    if isinstance(obj, dict):
        keys = ", ".join(sorted(str(k) for k in obj))
        if key is None and len(obj) == 1:
            return next(iter(obj.values()))  # one label set: nothing to choose
        if key is None:
            raise UserError(f"{path.name} holds several label sets ({keys}): pick one with file:{path}#KEY")
        if key not in obj:
            raise UserError(f"{path.name} has no key {key!r}; keys present: {keys}")
        return obj[key]
    if key is not None:
        raise UserError(f"{path.name} holds a single array, not a dict with key {key!r}: drop '#{key}'")
    return obj


def _load_npy(path: Path) -> np.ndarray:
    try:
        return cast(np.ndarray, np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(
            f"cannot read {path} as a .npy integer array ({_short_reason(exc)}): "
            "save it with np.save(path, labels.astype('int64'))"
        ) from None


def _load_text(path: Path) -> np.ndarray:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read {path} as text ({_short_reason(exc)}): write one integer label per line"
        ) from None
    values: list[int] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip().rstrip(",")
        if not text:
            continue  # blank lines (e.g. a trailing newline) carry no label
        try:
            values.append(int(text))
        except ValueError:
            raise UserError(
                f"{path.name} line {number} is {text!r}, not an integer: write one integer label per line"
            ) from None
    return np.asarray(values, dtype=np.int64)


def _check_file_labels(raw: Any, *, path: Path, num_samples: int, num_classes: int) -> np.ndarray:
    if hasattr(raw, "detach") and hasattr(raw, "numpy"):  # a torch tensor
        raw = raw.detach().cpu().numpy()
    if not isinstance(raw, np.ndarray | list | tuple):
        raise UserError(f"{path.name} holds a {type(raw).__name__}, not a label array: save int64 labels [N]")
    array = np.asarray(raw)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise UserError(
            f"labels in {path.name} are {array.dtype} of shape {array.shape}, not 1-D integers: "
            "save int64 labels [N]"
        )
    if len(array) != num_samples:
        raise UserError(
            f"{path.name} has {len(array)} labels but the data set has {num_samples} samples: "
            "use the label file made for this data set and split"
        )
    return check_labels(array, num_classes=num_classes, what=f"labels in {path.name}")
