"""Batched augmentation: shapes, determinism per generator, exact geometric properties, torchvision parity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch.overrides import TorchFunctionMode

from noisylab.data.augment import (
    Augmenter,
    _shift_hue,
    channel_stats,
    color_jitter,
    gaussian_blur,
    normalize,
    random_crop,
    random_flip,
    random_grayscale,
    random_resized_crop,
)

Aug = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

RANDOM_FUNCTIONS: dict[str, Aug] = {
    "crop": lambda x, g: random_crop(x, padding=4, generator=g),
    "resized_crop": lambda x, g: random_resized_crop(x, generator=g),
    "flip": lambda x, g: random_flip(x, generator=g),
    "jitter": lambda x, g: color_jitter(x, generator=g),
    "grayscale": lambda x, g: random_grayscale(x, p=0.5, generator=g),
    "blur": lambda x, g: gaussian_blur(x, generator=g),
}


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _images(batch: int = 16, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, channels, size, size), generator=_gen(seed), dtype=torch.uint8)


def _floats(batch: int = 16, channels: int = 3, size: int = 32) -> torch.Tensor:
    return _images(batch, channels, size).float() / 255


@pytest.mark.parametrize("name", sorted(RANDOM_FUNCTIONS))
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_and_determinism(name: str, channels: int) -> None:
    fn, x = RANDOM_FUNCTIONS[name], _floats(channels=channels)
    first, again, other = fn(x, _gen(1)), fn(x, _gen(1)), fn(x, _gen(2))
    assert first.shape == x.shape and first.dtype == torch.float32
    assert torch.equal(first, again)
    if not (name == "grayscale" and channels == 1):
        assert not torch.equal(first, other)
    assert float(first.min()) >= -1e-6 and float(first.max()) <= 1 + 1e-6


def test_flip_is_exact_mirror() -> None:
    x = _images()
    assert torch.equal(random_flip(x, p=1.0, generator=_gen(0)), x.flip(-1))
    assert torch.equal(random_flip(x, p=0.0, generator=_gen(0)), x)
    mixed = random_flip(x, p=0.5, generator=_gen(0))
    flipped = [bool(torch.equal(mixed[i], x[i].flip(-1))) for i in range(len(x))]
    kept = [bool(torch.equal(mixed[i], x[i])) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


def test_crop_padding_zero_is_identity() -> None:
    x = _images()
    assert torch.equal(random_crop(x, padding=0, generator=_gen(0)), x)


def test_crop_is_a_window_of_the_reflect_padded_image() -> None:
    x, pad = _floats(batch=8, size=12), 3
    out = random_crop(x, padding=pad, generator=_gen(5))
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    offsets = set()
    for i in range(len(x)):  # the check loops; the function under test does not
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 12, dx : dx + 12])
        ]
        assert matches, f"sample {i} is not a crop of its padded image"
        offsets.update(matches)
    assert len(offsets) > 1  # per-sample offsets, not one shared shift


def test_crop_works_on_uint8() -> None:
    x = _images()
    out = random_crop(x, padding=4, generator=_gen(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape


def test_resized_crop_full_box_is_identity() -> None:
    x = _floats()
    out = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=_gen(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_resized_crop_non_square_fallback_keeps_shape() -> None:
    x = torch.rand(4, 3, 16, 24, generator=_gen(0))
    out = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=_gen(0))
    assert out.shape == x.shape


def test_grayscale_equal_channels() -> None:
    x = _floats()
    out = random_grayscale(x, p=1.0, generator=_gen(0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert torch.allclose(out[:, :1], TF.rgb_to_grayscale(x), atol=1e-3)  # PIL weights 0.299 vs 0.2989
    assert torch.equal(random_grayscale(x, p=0.0, generator=_gen(0)), x)


def test_jitter_probability_zero_is_identity_and_one_changes_all() -> None:
    x = _floats()
    assert torch.equal(color_jitter(x, p=0.0, generator=_gen(0)), x)
    out = color_jitter(x, p=1.0, generator=_gen(0))
    assert all(not torch.equal(out[i], x[i]) for i in range(len(x)))


def test_hue_shift_matches_torchvision() -> None:
    x = _floats(batch=4, size=8)
    shifts = torch.tensor([-0.1, 0.0, 0.05, 0.3])
    ours = _shift_hue(x, shifts)
    for i in range(len(x)):
        assert torch.allclose(ours[i], TF.adjust_hue(x[i], float(shifts[i])), atol=1e-4)


def test_blur_matches_torchvision_for_fixed_sigma() -> None:
    x = _floats(batch=3, size=40)
    ours = gaussian_blur(x, p=1.0, sigma=(1.3, 1.3), kernel_frac=0.2, generator=_gen(0))
    reference = TF.gaussian_blur(x, kernel_size=[9, 9], sigma=[1.3, 1.3])
    assert torch.allclose(ours, reference, atol=1e-5)
    assert torch.equal(gaussian_blur(x, p=0.0, generator=_gen(0)), x)


def test_channel_stats_and_normalize() -> None:
    x = _images(batch=64, channels=3, size=16)
    x[:, 1] //= 4  # make the channels differ
    mean, std = channel_stats(x)
    reference = x.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), reference.mean(dim=(0, 2, 3)), atol=1e-9)
    assert torch.allclose(
        torch.tensor(std, dtype=torch.float64), reference.std(dim=(0, 2, 3), correction=0), atol=1e-9
    )
    z = normalize(x, mean, std)
    assert z.dtype == torch.float32 and z.shape == x.shape
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-4)


def test_augmenter_pipelines() -> None:
    x = _images(channels=3)
    aug = Augmenter.for_images(x)
    assert len(aug.mean) == 3 and aug.crop_padding == 4 and aug.flip
    assert torch.equal(aug.plain(x), normalize(x, aug.mean, aug.std))
    for view in (aug.weak, aug.simclr):
        out = view(x, _gen(3))
        assert out.shape == x.shape and out.dtype == torch.float32
        assert torch.equal(out, view(x, _gen(3)))
        assert not torch.equal(out, view(x, _gen(4)))
    still = Augmenter(mean=aug.mean, std=aug.std, crop_padding=0, flip=False)
    assert torch.equal(still.weak(x, _gen(0)), still.plain(x))
    gray = _images(channels=1)
    assert Augmenter.for_images(gray, flip=False).simclr(gray, _gen(0)).shape == gray.shape


def test_augmenter_rejects_bad_stats() -> None:
    with pytest.raises(ValueError, match=r"positive"):
        Augmenter(mean=(0.5,), std=(0.0,))
    with pytest.raises(ValueError, match=r"one entry per channel"):
        Augmenter(mean=(0.5, 0.5), std=(0.2,))


class _CallCounter(TorchFunctionMode):
    """Counts torch API calls; a per-sample Python loop would make the count grow with the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.calls += 1
        return func(*args, **(kwargs or {}))


def _count_calls(fn: Callable[[], Any]) -> int:
    with _CallCounter() as counter:
        fn()
    return counter.calls


def test_no_python_loop_over_samples() -> None:
    aug = Augmenter.for_images(_images())
    small, large = _images(batch=2), _images(batch=64)
    views: tuple[Aug, ...] = (aug.weak, aug.simclr)
    for view in views:
        calls_small = _count_calls(lambda: view(small, _gen(0)))  # noqa: B023 - called immediately
        calls_large = _count_calls(lambda: view(large, _gen(0)))  # noqa: B023
        assert calls_small == calls_large


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("generator_device", ["cpu", "cuda"])
def test_cuda_matches_shapes_and_is_deterministic(generator_device: str) -> None:
    x = _images().cuda()
    aug = Augmenter.for_images(x)
    for view in (aug.weak, aug.simclr):
        out = view(x, _gen(7, generator_device))
        assert out.is_cuda and out.shape == x.shape
        assert torch.equal(out, view(x, _gen(7, generator_device)))
    if generator_device == "cpu":  # same draws on either device: CPU and CUDA results agree
        cpu = aug.weak(x.cpu(), _gen(7))
        assert torch.allclose(aug.weak(x, _gen(7)).cpu(), cpu, atol=1e-6)
