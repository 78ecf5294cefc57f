"""BYOL pre-training: the loss, the EMA target and its schedule, the predictor, the `paper_byol` run
and its resume."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import PIPELINE_LEARNS, digits_config, digits_context

from noisylab.config.run import ModelConfig
from noisylab.runner import execute
from noisylab.train import byol, losses
from noisylab.train.engine import BatchPlace, Step
from noisylab.train.models import Network, build_network
from noisylab.train.runtime import TrainState

TIMING = {"seconds", "images_per_s"}


# ------------------------------------------------------------------------------------------ loss


def _reference(
    q1: list[list[float]], q2: list[list[float]], z1: list[list[float]], z2: list[list[float]]
) -> list[float]:
    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    return [(2 - 2 * cos(a, d)) + (2 - 2 * cos(b, c)) for a, b, c, d in zip(q1, q2, z1, z2, strict=True)]


def test_byol_loss_matches_a_slow_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    q1, q2, z1, z2 = (torch.randn(5, 7, dtype=torch.float64, generator=gen) for _ in range(4))
    got = losses.byol(q1, q2, z1, z2)
    assert got.tolist() == pytest.approx(
        _reference(q1.tolist(), q2.tolist(), z1.tolist(), z2.tolist()), rel=1e-10
    )


def test_byol_loss_closed_forms_and_invariances() -> None:
    v = F.normalize(torch.randn(4, 6, generator=torch.Generator().manual_seed(1)), dim=1)
    assert torch.allclose(losses.byol(v, v, v, v), torch.zeros(4), atol=1e-6)  # identical directions
    assert torch.allclose(losses.byol(v, v, -v, -v), torch.full((4,), 8.0), atol=1e-5)  # opposite
    e = torch.eye(2)
    assert torch.allclose(losses.byol(e[:1], e[:1], e[1:], e[1:]), torch.tensor([4.0]))  # orthogonal
    a, b = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(
        losses.byol(a, b, b, a), losses.byol(3 * a, 0.5 * b, 7 * b, 2 * a), atol=1e-5
    )  # scale-free
    with pytest.raises(ValueError, match="one shape"):
        losses.byol(a, b, b[:2], a)


def test_no_gradient_reaches_the_targets() -> None:
    q = torch.randn(3, 4, requires_grad=True)
    z = torch.randn(3, 4, requires_grad=True)
    losses.byol(q, q, z, z).sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert z.grad is None


# ------------------------------------------------------------------------------------------ EMA


def test_ema_rate_rises_along_a_cosine_from_base_to_final() -> None:
    rates = [byol.ema_rate(k, 100, base=0.996, final=1.0) for k in range(101)]
    assert rates[0] == pytest.approx(0.996) and rates[-1] == pytest.approx(1.0)
    assert rates[50] == pytest.approx(0.998)  # the cosine's midpoint
    assert all(a <= b for a, b in itertools.pairwise(rates))
    assert byol.ema_rate(37, 100, base=0.9, final=0.9) == pytest.approx(0.9)


def _net(predictor: bool = False) -> Network:
    return build_network(
        ModelConfig(width=4, proj_dim=8), num_classes=3, in_chans=1, image_size=16, predictor=predictor
    )


def test_ema_update_moves_the_target_towards_the_online_weights() -> None:
    torch.manual_seed(0)
    online = _net(predictor=True)
    target = byol.Target(online)
    before = [p.clone() for p in target.parameters()]
    buffers = [b.clone() for b in target.buffers()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
        for b in online.buffers():
            b.add_(1)
    byol.ema_update(target, online, 0.9)
    online_params = [*online.backbone.parameters(), *online.projector.parameters()]
    for t, old, o in zip(target.parameters(), before, online_params, strict=True):
        assert torch.allclose(t, 0.9 * old + 0.1 * o, atol=1e-6)
    # BatchNorm statistics are never read by the target (batch statistics only): left as they were
    assert all(torch.equal(t, b) for t, b in zip(target.buffers(), buffers, strict=True))
    assert not any(p.requires_grad for p in target.parameters())


def test_the_predictor_exists_only_when_asked() -> None:
    plain, with_predictor = _net(), _net(predictor=True)
    keys = set(plain.state_dict())
    assert not any(k.startswith("predictor") for k in keys)
    extra = set(with_predictor.state_dict()) - keys
    assert extra and all(k.startswith("predictor.") for k in extra)
    x = torch.randn(4, 1, 16, 16)
    assert with_predictor(x, predict=True).shape == (4, 8)
    with pytest.raises(RuntimeError, match="no predictor"):
        plain(x, predict=True)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_an_epoch_trains_online_and_predictor_and_keeps_the_ema_target(digits_npz: Path) -> None:
    # 64 images in one batch: one optimiser step per epoch, so the EMA can be checked by hand.
    cfg = digits_config(
        digits_npz,
        method="paper_byol",
        **{
            "data.train_subset": 64,
            "batch_size": 64,
            "pretrain.byol_tau": 0.5,
            "pretrain.byol_tau_final": 0.5,
        },
    )
    ctx = digits_context(cfg)
    net = ctx.net
    assert isinstance(net, Network) and net.predictor is not None
    assert len(ctx.noisy_labels) == ctx.per_rank_batch == 64  # one batch, one step per epoch
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    state = TrainState()

    def online() -> list[torch.Tensor]:
        return _params(net.backbone) + _params(net.projector)

    assert net.predictor is not None
    start, predictor_start = online(), _params(net.predictor)
    metrics = byol.run_epoch(ctx, Step("pretrain", 1, 2, 1e-2, 0.0), 0, state, optimizer)
    after_one = online()
    assert metrics["byol_tau"] == pytest.approx(0.5) and math.isfinite(metrics["train_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(_params(net.predictor), predictor_start, strict=True))
    saved = byol.load_target(ctx, state)  # from state.extra, as a resumed run would load it
    target_one = _params(saved)
    for t, s, o in zip(target_one, start, after_one, strict=True):
        assert torch.allclose(t, 0.5 * s + 0.5 * o, atol=1e-6)  # ξ₁ = τ·θ₀ + (1 − τ)·θ₁, with ξ₀ = θ₀
    assert any(not torch.equal(t, o) for t, o in zip(target_one, after_one, strict=True))

    last = Step("pretrain", 2, 2, 1e-2, 0.0)
    out = byol.byol_batches(ctx, saved)(
        torch.arange(64), torch.Generator().manual_seed(0), BatchPlace(last, 0, 1)
    )
    out.loss.backward()
    optimizer.step()
    assert out.after_step is not None
    out.after_step()  # step k = 1 of K = 2: τ = 0.5
    for t, old, o in zip(_params(saved), target_one, online(), strict=True):
        assert torch.allclose(t, 0.5 * old + 0.5 * o, atol=1e-6)  # the target continues from state.extra
    byol.run_epoch(ctx, last, 1, state, optimizer)
    assert byol.TARGET_KEY not in state.extra  # pre-training is over


# ------------------------------------------------------------------------------------------ runs

LEARNS = PIPELINE_LEARNS


def test_paper_byol_pretrains_with_byol_and_learns(digits_npz: Path, tmp_path: Path) -> None:
    # The post-activation ResNet-18: on the PreAct default the SWCE warm-up after BYOL starts with p_y ≈ 0
    # for most samples and never learns most classes (39 % here; BENCHMARKS.md, "Which network"), which
    # would hide whether BYOL itself trains.
    r = execute(
        digits_config(digits_npz, method="paper_byol", **(LEARNS | {"model.name": "resnet18"})),
        storage=tmp_path,
        use_ray=False,
        progress=False,
    ).record
    assert r["method"] == "paper_byol" and json.loads(r["config_json"])["pretrain"]["method"] == "byol"
    history = json.loads(r["history_json"])
    pretrain = [h for h in history if h["phase"] == "pretrain"]
    assert len(pretrain) == 2 and all("byol_tau" in h for h in pretrain)
    assert pretrain[-1]["train_loss"] < pretrain[0]["train_loss"] <= 8.0
    assert r["test_acc"] > 0.5  # ten classes: chance is 0.1


SHORT: dict[str, Any] = {"data.train_subset": 300, "pretrain.epochs": 3, "refine.threshold": 2.0}


def comparable(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(record["history_json"])]


@pytest.mark.parametrize("crash_before", [1, 2])  # mid pre-training: the target lives in the checkpoint
def test_resume_mid_pretraining_matches_an_uninterrupted_run(
    digits_npz: Path, tmp_path: Path, crash_before: int
) -> None:
    cfg = digits_config(digits_npz, method="paper_byol", **SHORT)
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=crash_before)
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert out.resumed
    assert comparable(out.record) == comparable(whole)
    assert out.record["final_labels_sha256"] == whole["final_labels_sha256"]
