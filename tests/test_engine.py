from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from noisylab.train.engine import (
    BatchOut,
    BatchPlace,
    Step,
    World,
    derived_generator,
    epoch_order,
    macro_f1,
    scan,
    shard_indices,
    split_batches,
    train_epoch,
)


@pytest.mark.parametrize(("n", "size"), [(10, 1), (10, 3), (7, 4), (1, 2)])
def test_shards_cover_every_sample_with_equal_counts(n: int, size: int) -> None:
    shards = [shard_indices(n, World(rank=r, size=size)) for r in range(size)]
    assert len({len(s) for s in shards}) == 1  # equal counts keep DDP's collectives in step
    assert set(torch.cat(shards).tolist()) == set(range(n))
    assert sum(len(s) for s in shards) - n < size  # padding is less than one per rank


def test_epoch_order_is_one_permutation_split_across_ranks() -> None:
    orders = [epoch_order(100, World(rank=r, size=2), seed=3, step=5) for r in range(2)]
    assert not set(orders[0].tolist()) & set(orders[1].tolist())
    assert sorted(torch.cat(orders).tolist()) == list(range(100))
    assert torch.equal(orders[0], epoch_order(100, World(rank=0, size=2), seed=3, step=5))
    assert not torch.equal(orders[0], epoch_order(100, World(rank=0, size=2), seed=3, step=6))


def test_derived_generators_are_reproducible_and_distinct() -> None:
    a = torch.rand(4, generator=derived_generator(1, 2, 3))
    assert torch.equal(a, torch.rand(4, generator=derived_generator(1, 2, 3)))
    assert not torch.equal(a, torch.rand(4, generator=derived_generator(1, 2, 4)))
    assert not torch.equal(a, torch.rand(4, generator=derived_generator(1, 3, 2)))


def test_split_batches_never_leaves_a_single_sample_batch() -> None:
    assert [len(b) for b in split_batches(torch.arange(10), 3)] == [3, 3, 3]
    assert [len(b) for b in split_batches(torch.arange(11), 3)] == [3, 3, 3, 2]
    assert [len(b) for b in split_batches(torch.arange(1), 3)] == [1]


def test_macro_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 6, 500))
    p[p == 5] = 4  # class 5 is never predicted: its F1 is 0 and still counts
    ours = macro_f1(torch.from_numpy(p), torch.from_numpy(y), 6)
    assert ours == pytest.approx(f1_score(y, p, average="macro"), abs=1e-12)


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.float().flatten(1))


def test_scan_returns_values_in_sample_order() -> None:
    torch.manual_seed(0)
    model = _Linear()
    images = torch.randint(0, 255, (37, 1, 2, 2), dtype=torch.uint8)
    out = scan(
        model,
        images,
        transform=lambda x: x.float(),
        fn=lambda logits, idx: idx.float().unsqueeze(1),
        batch_size=8,
        world=World(),
    )
    assert torch.equal(out[:, 0], torch.arange(37).float())
    full = scan(
        model,
        images,
        transform=lambda x: x.float(),
        fn=lambda logits, idx: logits,
        batch_size=5,
        world=World(),
    )
    assert torch.allclose(full, model(images.float()), atol=1e-6)


def test_train_epoch_learns_a_separable_problem() -> None:
    torch.manual_seed(0)
    x = torch.randn(300, 4)
    y = x[:, :3].argmax(1)
    model = _Linear()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)

    def batch_fn(idx: torch.Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        return BatchOut(nn.functional.cross_entropy(model(x[idx]), y[idx]), len(idx))

    losses = []
    for step in range(8):
        stats = train_epoch(
            model,
            opt,
            epoch_order(300, World(), seed=0, step=step),
            step=Step("train", step + 1, 8, 0.05, 0.0),
            batch_size=32,
            batch_fn=batch_fn,
            generator=derived_generator(0, step),
        )
        losses.append(stats.loss)
        assert stats.samples == 300
    assert losses[-1] < 0.5 * losses[0]
    assert (model(x).argmax(1) == y).float().mean() > 0.9
