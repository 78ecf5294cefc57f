"""Throughput of one training epoch through noisylab's engine against a bare PyTorch loop.

Both sides train the same network (ResNet-18, CIFAR stem, width 8 — the `cpu` profile) on the same
uint8 Fashion-MNIST tensors with the same weak augmentation, batch size and optimiser; they alternate,
so machine noise hits both alike. Prints the median images/s of each and their ratio.

    .venv/bin/python benchmarks/epoch_overhead.py [--samples 4000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from noisylab.config.profiles import make_config
from noisylab.config.run import ModelConfig
from noisylab.data import load_dataset
from noisylab.data.augment import Augmenter
from noisylab.data.prepare import balanced_subset
from noisylab.train import batches, losses
from noisylab.train.engine import Step, World, derived_generator, epoch_order, train_epoch
from noisylab.train.models import build_network
from noisylab.train.runtime import Context


def bare_epoch(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    aug: Augmenter,
    batch: int,
    seed: int,
) -> float:
    """The loop a researcher would write by hand: permute, slice, augment, forward, backward, step."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=gen)
    net.train()
    start = time.perf_counter()
    for i in range(0, len(perm), batch):
        idx = perm[i : i + batch]
        x = aug.weak(images[idx], gen)
        loss = nn.functional.cross_entropy(net(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(perm) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()

    ds = load_dataset("fashion-mnist")
    idx = torch.from_numpy(balanced_subset(ds.train.labels.numpy(), args.samples, seed=0))
    images, labels = ds.train.images[idx].contiguous(), ds.train.labels[idx].contiguous()
    aug = Augmenter.for_images(images)
    cfg = make_config("cpu", {"batch_size": args.batch})

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = build_network(ModelConfig(width=8), num_classes=10, in_chans=1, image_size=28)
        return net, torch.optim.AdamW(net.parameters(), lr=1e-3)

    net_a, opt_a = fresh()
    net_b, opt_b = fresh()
    ctx = Context(
        cfg=cfg,
        world=World(),
        net=net_b,
        model=net_b,
        train_images=images,
        noisy_labels=labels,
        clean_labels=labels,
        noise_transition=torch.eye(10, dtype=torch.float64),  # no noise: the labels are the clean ones
        test_images=images[:2],
        test_labels=labels[:2],
        num_classes=10,
        augmenter=aug,
    )
    batch_fn = batches.supervised(ctx, labels=labels, loss=losses.cross_entropy)
    step = Step("train", 1, 1, 1e-3, 0.0)

    bare_epoch(net_a, opt_a, images, labels, aug, args.batch, seed=99)  # warm both up once
    train_epoch(
        net_b,
        opt_b,
        epoch_order(len(labels), World(), seed=0, step=99),
        step=step,
        batch_size=args.batch,
        batch_fn=batch_fn,
        generator=derived_generator(0, 99),
    )
    bare, ours = [], []
    for r in range(args.repeats):
        bare.append(bare_epoch(net_a, opt_a, images, labels, aug, args.batch, seed=r))
        stats = train_epoch(
            net_b,
            opt_b,
            epoch_order(len(labels), World(), seed=0, step=r),
            step=step,
            batch_size=args.batch,
            batch_fn=batch_fn,
            generator=derived_generator(0, r),
        )
        ours.append(stats.images_per_second)
    mb, mo = statistics.median(bare), statistics.median(ours)
    print(
        f"one epoch of {args.samples} Fashion-MNIST images, batch {args.batch}, ResNet-18 width 8, "
        f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats"
    )
    print("| loop | median images/s | runs |")
    print("|---|---|---|")
    print(f"| bare PyTorch | {mb:.0f} | {', '.join(f'{x:.0f}' for x in bare)} |")
    print(f"| noisylab engine | {mo:.0f} | {', '.join(f'{x:.0f}' for x in ours)} |")
    print(f"| ratio noisylab / bare | {mo / mb:.3f} | |")


if __name__ == "__main__":
    main()
