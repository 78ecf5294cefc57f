"""The sharded scan with a real gloo group of two processes (no Ray): same values as one process."""

from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from noisylab.train.engine import World, same_on_all_ranks, scan


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


def _worker(rank: int, port: int, images: torch.Tensor, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        world = World(rank=rank, size=2)
        values = scan(
            _model(),
            images,
            transform=lambda x: x.float(),
            batch_size=4,
            world=world,
            fn=lambda logits, idx: torch.cat([logits, idx.float().unsqueeze(1)], dim=1),
        )
        out[rank] = (
            values,
            same_on_all_ranks(values, world),
            same_on_all_ranks(torch.tensor([float(rank)]), world),
        )
    finally:
        dist.destroy_process_group()


def test_two_rank_scan_equals_single_process_scan() -> None:
    images = torch.randint(0, 255, (11, 1, 2, 2), dtype=torch.uint8)  # 11: odd, so one shard is padded
    expected = scan(
        _model(),
        images,
        transform=lambda x: x.float(),
        batch_size=4,
        world=World(),
        fn=lambda logits, idx: torch.cat([logits, idx.float().unsqueeze(1)], dim=1),
    )
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(_free_port(), images, out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        values, agree, differ = results[rank]
        assert torch.allclose(values, expected, atol=1e-6)
        assert torch.equal(values[:, -1], torch.arange(11).float())  # every sample once, in order
        assert agree and not differ
