"""Driver-side data preparation: load the dataset, draw the subset, make the noisy labels.

Everything a user can get wrong about data surfaces here, before any worker starts. The result is a
`DataBundle` of plain numpy arrays: Ray puts it in the object store once and every worker reads it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisylab.config.run import RunConfig
from noisylab.data import ImageSet, load_dataset, source_path
from noisylab.data.folds import HeldOutFold, stratified_folds
from noisylab.data.source import DataSource, describe_source
from noisylab.errors import UserError
from noisylab.noise import NoisyLabels, make_noisy_labels, transition_matrix


@dataclass(frozen=True)
class DataBundle:
    dataset: str  # the name reports use: data.name, else the file's stem / folder's name, else the format
    class_names: tuple[str, ...]
    train_images: np.ndarray  # uint8 [N, C, H, W]
    clean_labels: np.ndarray  # int64 [N]
    noisy_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray  # uint8 [T, C, H, W]
    test_labels: np.ndarray  # int64 [T]
    noise: NoisyLabels  # the noisy labels again, with their realised rate and transition matrix
    source: DataSource | None = None  # where the data was read from, and its fingerprint
    train_index: np.ndarray | None = None  # int64 [N]: each training sample's position in the full set
    train_files: tuple[str, ...] | None = None  # [N] paths relative to the data root (image-file formats)
    holdout: HeldOutFold | None = None  # an out-of-fold run's held-out fold (data.folds): never trained on
    notes: tuple[str, ...] = ()  # what the files held besides what the run uses (`Dataset.notes`)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def cache_dir() -> Path:
    return Path(os.environ.get("NOISYLAB_CACHE", Path.home() / ".cache" / "noisylab"))


def balanced_subset(labels: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Sorted indices of ~n samples with the classes in their original proportions (round-robin
    over per-class shuffles), so a subset never drops a class."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    quota = np.floor(n * np.array([len(p) for p in per_class]) / len(labels)).astype(int)
    for c in np.argsort([-len(p) for p in per_class])[: n - int(quota.sum())]:
        quota[c] += 1  # hand out the remainder to the largest classes
    return np.sort(np.concatenate([p[:q] for p, q in zip(per_class, quota, strict=True)]))


def _subset(s: ImageSet, n: int | None, seed: int) -> np.ndarray:
    labels = s.labels.numpy()
    return np.arange(len(labels)) if n is None else balanced_subset(labels, n, seed=seed)


def check_geometry(size: tuple[int, ...], crop_padding: int) -> None:
    """Reflect padding needs a pad smaller than the image; found here, before any worker starts."""
    if crop_padding >= min(size):
        raise UserError(
            f"the images are {size[0]}×{size[1]} pixels, too small for data.crop_padding={crop_padding} "
            f"(the padding must be smaller than the image): lower it with --set data.crop_padding=N "
            "or enlarge the images with --set data.image_size=N"
        )


def check_batch(batch_size: int, num_train: int) -> None:
    """A batch holds at most the whole training set: more is a mistake (and far more overflows torch's
    index arithmetic), found once the set's size is known, before noise is drawn or a worker starts."""
    if batch_size > num_train:
        raise UserError(
            f"batch_size {batch_size} is larger than the {num_train:,} training images: "
            f"lower it with --set batch_size=N (N ≤ {num_train:,}), or train on more images"
        )


def prepare_data(cfg: RunConfig, *, say: Callable[[str], None] | None = None) -> DataBundle:
    """Noise is drawn on the whole training set (label files such as CIFAR-10N cover all of it), then
    the subset is taken; the realised rate and transition matrix describe the subset actually used.
    `say`: where a long noise draw reports what it computes and how far it is."""
    d = cfg.data
    root = Path(d.root) if d.root else None
    ds = load_dataset(d.dataset, root, image_size=d.image_size)
    source = describe_source(ds.name, source_path(d.dataset, root), d.name)
    all_x, all_y = ds.train.images.numpy(), ds.train.labels.numpy().astype(np.int64)
    check_geometry(all_x.shape[-2:], d.crop_padding)
    train_idx = _subset(ds.train, d.train_subset, d.subset_seed)
    if d.folds is None:  # a fold run's training part is known once the noisy labels are
        check_batch(cfg.batch_size, len(train_idx))
    test_idx = _subset(ds.test, d.test_subset, d.subset_seed + 1)
    noise = make_noisy_labels(
        d.noise_spec,
        images=all_x,
        labels=all_y,
        num_classes=ds.train.num_classes,
        seed=cfg.seed,
        cache_dir=cache_dir() / "noise",
        keep=train_idx,
        say=say,
    )
    files = ds.train.files
    bundle = DataBundle(
        dataset=source.name,
        class_names=ds.train.class_names,
        train_images=np.ascontiguousarray(all_x[train_idx]),
        clean_labels=all_y[train_idx],
        noisy_labels=noise.labels,
        test_images=np.ascontiguousarray(ds.test.images.numpy()[test_idx]),
        test_labels=ds.test.labels.numpy()[test_idx].astype(np.int64),
        noise=noise,
        source=source,
        train_index=train_idx.astype(np.int64),
        train_files=tuple(files[i] for i in train_idx) if files is not None else None,
        notes=ds.notes,
    )
    if d.folds is None or d.holdout_fold is None:
        return bundle
    held_out = hold_out(bundle, folds=d.folds, fold=d.holdout_fold, seed=cfg.seed)
    check_batch(cfg.batch_size, len(held_out.noisy_labels))
    return held_out


def hold_out(bundle: DataBundle, *, folds: int, fold: int, seed: int) -> DataBundle:
    """`bundle` training on all folds but `fold` of `folds.stratified_folds(noisy labels, folds, seed)`,
    the held-out fold beside it (`DataBundle.holdout`). The realised noise rate and transition matrix
    describe the samples the run trains on."""
    assignment = stratified_folds(bundle.noisy_labels, folds, seed=seed)
    train, out = np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)
    index = bundle.train_index if bundle.train_index is not None else np.arange(len(assignment))
    files = bundle.train_files

    def pick(rows: np.ndarray) -> tuple[str, ...] | None:
        return tuple(files[i] for i in rows) if files is not None else None

    clean, noisy = bundle.clean_labels[train], bundle.noisy_labels[train]
    noise = NoisyLabels(
        labels=noisy,
        realised_rate=float(np.mean(noisy != clean)),
        transition=transition_matrix(clean, noisy, bundle.num_classes),
    )
    return dataclasses.replace(
        bundle,
        train_images=np.ascontiguousarray(bundle.train_images[train]),
        clean_labels=clean,
        noisy_labels=noisy,
        noise=noise,
        train_index=index[train],
        train_files=pick(train),
        holdout=HeldOutFold(
            fold=fold,
            images=np.ascontiguousarray(bundle.train_images[out]),
            position=out.astype(np.int64),
            dataset_index=index[out],
            given=bundle.noisy_labels[out],
            clean=bundle.clean_labels[out],
            files=pick(out),
        ),
    )
