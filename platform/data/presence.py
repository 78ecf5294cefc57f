"""Whether a dataset's files are where a run would read them, without reading them.

A sweep plans hundreds of trials over several datasets; one whose files are missing would fail only when
its first trial starts, perhaps hours in. `missing_files` looks for the files each format's loader opens
(by name, no decoding: seconds for any set), so `noisylab sweep --dry-run` and the sweep itself can name
every missing one before anything runs. A file that is present but damaged is still the loader's to find.
"""

from __future__ import annotations

from pathlib import Path

from noisylab.data.idx import SUBDIRS
from noisylab.errors import UserError

_IDX_STEMS = tuple(
    f"{split}-{kind}" for split in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
)
_CIFAR10 = ("batches.meta", *(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
_CIFAR100 = ("meta", "train", "test")


def _idx(root: Path) -> list[str]:
    def found(stem: str) -> bool:
        return any((root / d / name).is_file() for d in SUBDIRS for name in (stem, f"{stem}.gz"))

    return [f"{root / stem}[.gz]" for stem in _IDX_STEMS if not found(stem)]


def _files(folder: Path, names: tuple[str, ...]) -> list[str]:
    if not folder.is_dir():
        return [f"{folder}/"]
    return [str(folder / name) for name in names if not (folder / name).is_file()]


def _split_folders(root: Path) -> list[str]:
    if not (root / "train").is_dir() and (root / "chest_xray" / "train").is_dir():
        root = root / "chest_xray"  # the Kaggle archive's extra level, as the loader accepts it
    return [f"{root / split}/" for split in ("train", "test") if not (root / split).is_dir()]


def missing_files(dataset: str, root: Path) -> list[str]:
    """The files or folders (ending in '/') of `dataset` that are not under `root`; [] when all are."""
    key = dataset.strip().lower()
    if key in ("fashion-mnist", "mnist"):
        return _idx(root)
    if key == "cifar10":
        return _files(root / "cifar-10-batches-py", _CIFAR10)
    if key == "cifar100":
        return _files(root / "cifar-100-python", _CIFAR100)
    if key in ("chest-xray", "imagefolder"):
        return _split_folders(root)
    if key == "chaoyang":
        return _files(root, ("train.json", "test.json"))
    if key == "npz":
        from noisylab.data.npz import find_npz

        try:
            find_npz(root)
        except UserError:
            return [str(root) if root.suffix == ".npz" else f"{root}/*.npz (exactly one)"]
        return []
    raise UserError(f"unknown dataset {dataset!r}")
