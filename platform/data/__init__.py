"""Datasets for noisylab: every supported format loaded into one in-memory `Dataset`.

`load_dataset(name, root)` is the single entry point; each format's loader lives in its own module
and turns every problem with the user's files into a one-line `UserError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from noisylab.data.chaoyang import load_chaoyang
from noisylab.data.cifar import load_cifar10, load_cifar100
from noisylab.data.folders import load_chest_xray, load_image_folder
from noisylab.data.idx import load_idx_dataset
from noisylab.data.images import Dataset, ImageSet, check_image_size
from noisylab.data.npz import find_npz, load_npz
from noisylab.errors import UserError

DATASETS: tuple[str, ...] = (
    "fashion-mnist",
    "mnist",
    "cifar10",
    "cifar100",
    "chest-xray",
    "chaoyang",
    "imagefolder",
    "npz",
)

# Debian's dataset-fashion-mnist package installs the IDX files here; the rest default to ./data/<name>.
DEFAULT_ROOTS: dict[str, Path] = {
    name: Path("/usr/share/datasets/fashion-mnist") if name == "fashion-mnist" else Path("data") / name
    for name in DATASETS
}

_Loader = Callable[..., Dataset]


def _idx_loader(name: str) -> _Loader:
    def load(root: Path, *, image_size: int | None = None) -> Dataset:
        return load_idx_dataset(name, root, image_size=image_size)

    return load


_LOADERS: dict[str, _Loader] = {
    "fashion-mnist": _idx_loader("fashion-mnist"),
    "mnist": _idx_loader("mnist"),
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "chest-xray": load_chest_xray,
    "chaoyang": load_chaoyang,
    "imagefolder": load_image_folder,
    "npz": load_npz,
}


def load_dataset(name: str, root: Path | None = None, *, image_size: int | None = None) -> Dataset:
    """Load dataset `name` from `root` (default `DEFAULT_ROOTS[name]`).

    image_size: images are resized to image_size x image_size when given. When None, fixed-size formats
    (IDX, CIFAR, npz) keep their size, and so do class folders whose images all share one square size;
    other folder/JSON datasets are resized to 224.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _LOADERS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    check_image_size(image_size)
    folder = DEFAULT_ROOTS[key] if root is None else Path(root).expanduser()
    return _LOADERS[key](folder, image_size=image_size)


def source_path(name: str, root: Path | None = None) -> Path:
    """The file or folder `load_dataset(name, root)` reads (an `.npz` folder resolves to its one file)."""
    key = name.strip().lower()
    folder = DEFAULT_ROOTS[key] if root is None else Path(root).expanduser()
    return find_npz(folder) if key == "npz" else folder


__all__ = ["DATASETS", "DEFAULT_ROOTS", "Dataset", "ImageSet", "load_dataset", "source_path"]
