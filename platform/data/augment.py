"""Batched, tensor-only data augmentation (in the style of airbench's `batch_flip_lr` / `batch_crop`).

Why not torchvision transforms: they work per PIL image in DataLoader workers, which is slow for
in-memory datasets and makes the random stream depend on worker scheduling.  Here every function
takes a whole batch [B, C, H, W] on any device and draws *all* its randomness from an explicit
`torch.Generator`, a fixed number of draws per call, so a resumed run that restores the generator
state replays exactly the same augmentations.

Draws are made on the generator's device and moved to the images' device, so a CPU generator
works with CUDA images (and vice versa) at the cost of moving a few numbers per batch.

Geometric functions accept any dtype except `random_resized_crop`; the photometric ones
(`color_jitter`, `random_grayscale`, `gaussian_blur`) and `random_resized_crop` expect float
images in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R 601-2 luma, the weights PIL's convert("L") and torchvision's rgb_to_grayscale use.
_LUMA = (0.299, 0.587, 0.114)
_STATS_CHUNK = 256
_RRC_ATTEMPTS = 10  # as torchvision: boxes that do not fit get this many retries before a fallback


# ----------------------------------------------------------------------------- random draws


def _uniform(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    """U[0, 1) of `shape`, drawn on the generator's device, returned on like's device/float dtype."""
    draws = torch.rand(shape, generator=generator, device=generator.device)
    dtype = like.dtype if like.is_floating_point() else torch.float32
    return draws.to(device=like.device, dtype=dtype)


def _chosen(batch: int, p: float, generator: torch.Generator, like: Tensor) -> Tensor:
    """bool [B, 1, 1, 1]: which samples an augmentation applied with probability p touches."""
    return (_uniform((batch,), generator, like) < p).view(batch, 1, 1, 1)


def _require_float(x: Tensor, what: str) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{what} needs float images in [0, 1], got {x.dtype}; convert with to_float() first")


# ----------------------------------------------------------------------------- conversion / statistics


def to_float(images: Tensor) -> Tensor:
    """uint8 [B, C, H, W] -> float32 [B, C, H, W] in [0, 1]; float input is passed through as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def normalize(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 [B, C, H, W] (or float in [0, 1]) -> float32 [B, C, H, W], (x/255 - mean) / std per channel.

    mean/std are in [0, 1] units, as `channel_stats` returns them.
    """
    x = to_float(images)
    channels = x.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean/std have {len(mean)}/{len(std)} entries but the images have {channels} channels"
        )
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, channels, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, channels, 1, 1)
    return (x - mean_t) / std_t


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) in [0, 1] units of a uint8 set [N, C, H, W].

    Accumulated in float64 over chunks, so a large set never needs a full float copy.  A constant
    channel would give std 0 and a division by zero in `normalize`; its std is floored at 1e-6.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            f"channel_stats needs a non-empty [N, C, H, W] tensor, got shape {tuple(images.shape)}"
        )
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64, device=images.device)
    squares = torch.zeros(channels, dtype=torch.float64, device=images.device)
    for chunk in images.split(_STATS_CHUNK):
        values = chunk.to(torch.float64) / 255.0 if chunk.dtype == torch.uint8 else chunk.to(torch.float64)
        total += values.sum(dim=(0, 2, 3))
        squares += values.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0.0).sqrt().clamp_min(1e-6)
    return tuple(float(m) for m in mean.cpu()), tuple(float(s) for s in std.cpu())


# ----------------------------------------------------------------------------- geometry


def _reflect(index: Tensor, size: int) -> Tensor:
    """Map indices in [-(size-1), 2(size-1)] into [0, size) by mirror reflection (edge not repeated)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def random_crop(x: Tensor, *, padding: int, generator: torch.Generator) -> Tensor:
    """[B, C, H, W] -> [B, C, H, W]: reflect-pad by `padding`, crop back to H x W at a per-sample offset.

    Implemented as two gathers with reflected indices, so no padded copy is materialised and any
    dtype works.  padding=0 is the identity.
    """
    batch, channels, height, width = x.shape
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x.clone()
    if padding >= min(height, width):
        raise ValueError(
            f"reflect padding {padding} needs images larger than {padding} pixels, got {height}x{width}"
        )
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator, device=generator.device)
    offsets = offsets.to(x.device)
    rows = _reflect(offsets[0, :, None] + torch.arange(height, device=x.device) - padding, height)  # [B, H]
    cols = _reflect(offsets[1, :, None] + torch.arange(width, device=x.device) - padding, width)  # [B, W]
    out = x.gather(2, rows[:, None, :, None].expand(batch, channels, height, width))
    return out.gather(3, cols[:, None, None, :].expand(batch, channels, height, width))


def random_flip(x: Tensor, *, p: float = 0.5, generator: torch.Generator) -> Tensor:
    """[B, C, H, W] -> [B, C, H, W]: each sample mirrored left-right with probability p."""
    return torch.where(_chosen(x.shape[0], p, generator, x), x.flip(-1), x)


def _box_sizes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    like: Tensor,
) -> tuple[Tensor, Tensor]:
    """Per-sample crop (w, h) in pixels, torchvision's RandomResizedCrop rule, vectorised over retries."""
    draws = _uniform((2, batch, _RRC_ATTEMPTS), generator, like)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * draws[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[1])
    w, h = (area * aspect).sqrt(), (area / aspect).sqrt()
    fits = (w <= width) & (h <= height)
    first = fits.float().argmax(dim=1, keepdim=True)  # first fitting attempt (argmax returns the first max)
    w_pick, h_pick = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # Fallback when no attempt fits: the largest central box whose aspect lies inside `ratio`.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = float(width), width / ratio[0]
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = height * ratio[1], float(height)
    else:
        fallback_w, fallback_h = float(width), float(height)
    any_fit = fits.any(dim=1)
    return (
        torch.where(any_fit, w_pick, torch.full_like(w_pick, fallback_w)),
        torch.where(any_fit, h_pick, torch.full_like(h_pick, fallback_h)),
    )


def random_resized_crop(
    x: Tensor,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator,
) -> Tensor:
    """float [B, C, H, W] -> float [B, C, H, W]: a random box per sample, resized back to H x W.

    Box area is a `scale` fraction of the image and its aspect (w/h) log-uniform in `ratio`, as in
    torchvision; the box is placed uniformly and sampled bilinearly with one batched
    affine_grid + grid_sample (sub-pixel box positions, no per-sample loop).
    """
    _require_float(x, "random_resized_crop")
    batch, channels, height, width = x.shape
    w, h = _box_sizes(batch, height, width, scale, ratio, generator, x)
    position = _uniform((2, batch), generator, x)
    x0, y0 = position[0] * (width - w), position[1] * (height - h)
    theta = torch.zeros(batch, 2, 3, dtype=x.dtype, device=x.device)
    # Normalised coordinates with align_corners=False: -1/+1 are the outer pixel edges.
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    grid = F.affine_grid(theta, [batch, channels, height, width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ----------------------------------------------------------------------------- colour


def _gray(x: Tensor) -> Tensor:
    """[B, 3, H, W] -> [B, 1, H, W] luma; a 1-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """factor * x + (1 - factor) * other, clamped to [0, 1]; factor is [B] (per sample)."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0.0, 1.0)


def _rgb_to_hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """[B, 3, H, W] in [0, 1] -> hue in [0, 1), saturation, value, each [B, H, W]."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    delta = maxc - minc
    saturation = delta / maxc.clamp_min(1e-8)
    safe = delta.clamp_min(1e-8)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, torch.remainder(hue / 6.0, 1.0), torch.zeros_like(hue))
    return hue, saturation, maxc


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """Inverse of `_rgb_to_hsv`: channel n is v - v*s*clamp(min(k, 4-k), 0, 1), k = (n + 6h) mod 6."""
    channels = []
    for n in (5.0, 3.0, 1.0):  # R, G, B: a loop over the three channels, not over samples
        k = torch.remainder(n + 6.0 * hue, 6.0)
        channels.append(value - value * saturation * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(channels, dim=1)


def _shift_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of [B, 3, H, W] by shift [B] (in turns, e.g. 0.1 = 36 degrees)."""
    hue, saturation, value = _rgb_to_hsv(x)
    hue = torch.remainder(hue + shift.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(hue, saturation, value)


def color_jitter(
    x: Tensor,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    generator: torch.Generator,
) -> Tensor:
    """float [B, C, H, W] in [0, 1] -> same shape: per-sample brightness, contrast, saturation, hue.

    With probability p a sample gets factors drawn from U[1-a, 1+a] (hue shift from U[-hue, hue])
    applied in the fixed order brightness, contrast, saturation, hue (torchvision shuffles the order
    per image; a fixed order keeps this one batched pass).  1-channel images only get brightness
    and contrast, since saturation and hue do not exist for them.
    """
    _require_float(x, "color_jitter")
    batch = x.shape[0]
    draws = _uniform((5, batch), generator, x)  # always 5 draws, whatever the channel count
    apply = draws[0].view(batch, 1, 1, 1) < p

    def factor(row: Tensor, amount: float) -> Tensor:
        return (1.0 + amount * (2.0 * row - 1.0)).clamp_min(0.0)

    out = _blend(x, torch.zeros_like(x), factor(draws[1], brightness))
    out = _blend(out, _gray(out).mean(dim=(1, 2, 3), keepdim=True), factor(draws[2], contrast))
    if x.shape[1] == 3:
        out = _blend(out, _gray(out), factor(draws[3], saturation))
        if hue > 0:
            out = _shift_hue(out, hue * (2.0 * draws[4] - 1.0))
    return torch.where(apply, out, x)


def random_grayscale(x: Tensor, *, p: float = 0.2, generator: torch.Generator) -> Tensor:
    """[B, 3, H, W] -> [B, 3, H, W]: with probability p a sample becomes its luma on all channels.

    1-channel images are returned unchanged (the draw is still made, to keep the stream aligned).
    """
    apply = _chosen(x.shape[0], p, generator, x)
    if x.shape[1] == 1:
        return x.clone()
    gray = _gray(x.float()).to(x.dtype).expand_as(x)
    return torch.where(apply, gray, x)


def _kernel_radius(height: int, width: int, kernel_frac: float) -> int:
    """Half-width of the blur kernel: SimCLR uses a kernel ~10% of the image side, forced odd."""
    size = max(3, int(kernel_frac * min(height, width)))
    radius = (size | 1) // 2
    return min(radius, min(height, width) - 1)  # reflect padding needs radius < side


def gaussian_blur(
    x: Tensor,
    *,
    p: float = 0.5,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_frac: float = 0.1,
    generator: torch.Generator,
) -> Tensor:
    """float [B, C, H, W] -> same shape: with probability p, a Gaussian blur with per-sample sigma.

    Separable: one horizontal and one vertical depthwise convolution over all B*C planes at once
    (groups=B*C), each plane with its own sample's kernel; edges are reflect-padded.
    """
    _require_float(x, "gaussian_blur")
    batch, channels, height, width = x.shape
    draws = _uniform((2, batch), generator, x)
    apply = draws[0].view(batch, 1, 1, 1) < p
    radius = _kernel_radius(height, width, kernel_frac)
    if radius == 0:
        return x.clone()
    sigmas = sigma[0] + (sigma[1] - sigma[0]) * draws[1]  # [B]
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-offsets.square()[None, :] / (2.0 * sigmas.square()[:, None]))  # [B, K]
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)  # [B*C, K]
    planes = x.reshape(1, batch * channels, height, width)
    planes = F.conv2d(
        F.pad(planes, (radius, radius, 0, 0), mode="reflect"),
        kernel[:, None, None, :],
        groups=batch * channels,
    )
    planes = F.conv2d(
        F.pad(planes, (0, 0, radius, radius), mode="reflect"),
        kernel[:, None, :, None],
        groups=batch * channels,
    )
    return torch.where(apply, planes.view(batch, channels, height, width), x)


# ----------------------------------------------------------------------------- pipelines


@dataclass(frozen=True)
class Augmenter:
    """The augmentation pipelines of one dataset, built once from its channel statistics.

    mean/std: per-channel, [0, 1] units.  crop_padding: pixels of reflect padding for `weak`.
    flip: whether horizontal mirroring is label-preserving for this data.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 4
    flip: bool = True
    channels_last: bool = False  # hand every batch out in NHWC memory order (`model.channels_last`)

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean and std need one entry per channel, got {self.mean} and {self.std}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def for_images(
        cls, images_uint8: Tensor, *, flip: bool = True, crop_padding: int = 4, channels_last: bool = False
    ) -> Augmenter:
        """An Augmenter normalising by the statistics of `images_uint8` [N, C, H, W] (the training set)."""
        mean, std = channel_stats(images_uint8)
        return cls(mean=mean, std=std, crop_padding=crop_padding, flip=flip, channels_last=channels_last)

    def _out(self, x: Tensor) -> Tensor:
        """The batch in the network's memory layout (same shape and values either way)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def plain(self, images_uint8: Tensor) -> Tensor:
        """uint8 [B, C, H, W] -> normalised float32 [B, C, H, W], no randomness (evaluation, scans)."""
        return self._out(normalize(images_uint8, self.mean, self.std))

    def weak(self, images_uint8: Tensor, generator: torch.Generator) -> Tensor:
        """uint8 [B, C, H, W] -> float32 [B, C, H, W]: padded random crop, flip, normalise."""
        x = to_float(images_uint8)
        if self.crop_padding:
            x = random_crop(x, padding=self.crop_padding, generator=generator)
        if self.flip:
            x = random_flip(x, generator=generator)
        return self._out(normalize(x, self.mean, self.std))

    def simclr(self, images_uint8: Tensor, generator: torch.Generator) -> Tensor:
        """uint8 [B, C, H, W] -> float32 [B, C, H, W]: one SimCLR view of each image.

        RandomResizedCrop, flip, colour jitter (p 0.8), grayscale (p 0.2), Gaussian blur (p 0.5).
        """
        x = random_resized_crop(to_float(images_uint8), generator=generator)
        if self.flip:
            x = random_flip(x, generator=generator)
        x = color_jitter(x, p=0.8, generator=generator)
        x = random_grayscale(x, p=0.2, generator=generator)
        x = gaussian_blur(x, p=0.5, generator=generator)
        return self._out(normalize(x, self.mean, self.std))
