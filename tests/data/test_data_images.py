"""ImageSet / Dataset invariants, batch resizing and the load_dataset dispatcher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from noisylab.data import DATASETS, DEFAULT_ROOTS, Dataset, ImageSet, load_dataset
from noisylab.data.images import resize_batch
from noisylab.errors import UserError


def _set(n: int = 6, classes: tuple[str, ...] = ("a", "b", "c")) -> ImageSet:
    images = torch.arange(n * 2 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 2, 4, 4)
    return ImageSet(images, torch.arange(n) % len(classes), classes)


def test_imageset_properties() -> None:
    s = _set()
    assert (len(s), s.num_classes, s.channels, s.image_size) == (6, 3, 2, (4, 4))
    assert s.images.is_contiguous()


def test_imageset_makes_non_contiguous_images_contiguous() -> None:
    images = torch.zeros(3, 4, 4, 2, dtype=torch.uint8).permute(0, 3, 1, 2)
    assert not images.is_contiguous()
    assert ImageSet(images, torch.zeros(3, dtype=torch.int64), ("x",)).images.is_contiguous()


def test_subset_by_positions_and_mask() -> None:
    s = _set()
    picked = s.subset(torch.tensor([4, 1]))
    assert torch.equal(picked.images, s.images[[4, 1]])
    assert picked.labels.tolist() == [1, 1]
    assert picked.class_names == s.class_names
    masked = s.subset(s.labels == 2)
    assert masked.labels.tolist() == [2, 2]


@pytest.mark.parametrize("bad", [-1, 3])
def test_label_outside_classes_is_a_user_error(bad: int) -> None:
    with pytest.raises(UserError, match=f"label {bad} is outside the 3 classes"):
        ImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, bad]), ("a", "b", "c"))


def test_wrong_dtypes_and_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"uint8"):
        ImageSet(torch.zeros(2, 1, 2, 2), torch.tensor([0, 0]), ("a",))
    with pytest.raises(ValueError, match=r"int64"):
        ImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 0], dtype=torch.int32), ("a",))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ImageSet(torch.zeros(2, 2, 2, dtype=torch.uint8), torch.tensor([0, 0]), ("a",))
    with pytest.raises(ValueError, match=r"N=2"):
        ImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0]), ("a",))


def test_dataset_requires_same_classes() -> None:
    with pytest.raises(UserError, match=r"different classes"):
        Dataset("x", _set(classes=("a", "b")), _set(classes=("a", "c")))


def test_resize_batch_keeps_constant_images_exact() -> None:
    images = torch.full((3, 1, 28, 28), 77, dtype=torch.uint8)
    resized = resize_batch(images, 32)
    assert resized.shape == (3, 1, 32, 32) and resized.dtype == torch.uint8
    assert bool((resized == 77).all())
    assert resize_batch(images, None) is images


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(UserError, match=r"unknown dataset 'svhn'.*fashion-mnist, mnist, cifar10"):
        load_dataset("svhn")


def test_bad_image_size_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"positive integer"):
        load_dataset("mnist", tmp_path, image_size=0)


def test_default_roots_cover_every_dataset() -> None:
    assert set(DEFAULT_ROOTS) == set(DATASETS)
    assert DEFAULT_ROOTS["fashion-mnist"] == Path("/usr/share/datasets/fashion-mnist")
    assert DEFAULT_ROOTS["cifar10"] == Path("data/cifar10")
