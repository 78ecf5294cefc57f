"""The two-network module: members, forwards, one optimiser, and what the worker builds for a method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import digits_config

from noisylab.config.run import ModelConfig
from noisylab.data.prepare import prepare_data
from noisylab.train.engine import World
from noisylab.train.evaluation import evaluate
from noisylab.train.models import Network, TwinNetwork, build_model, build_network, build_twin
from noisylab.train.twins import both, evaluate_twin, member_losses
from noisylab.train.worker import WorkerSpec, build_context
from noisylab.trainables import method_networks

CFG = ModelConfig(width=4)


def twin(seed: int = 0) -> TwinNetwork:
    return build_twin(CFG, seed=seed, num_classes=5, in_chans=1, image_size=16)


def test_members_differ_at_init_and_member_1_is_the_one_network_run_of_the_seed() -> None:
    net = twin(seed=3)
    first, second = (dict(m.state_dict()) for m in net.members)
    assert any(not torch.equal(first[k], second[k]) for k in first if first[k].is_floating_point())
    torch.manual_seed(3)
    single = build_network(CFG, num_classes=5, in_chans=1, image_size=16)
    assert all(torch.equal(v, single.state_dict()[k]) for k, v in first.items())
    again = twin(seed=3)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in net.state_dict().items())  # seeded


def test_building_a_twin_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    twin()
    assert torch.equal(torch.rand(3), expected)


def test_plain_forward_is_the_mean_and_stacked_forward_runs_each_member_on_its_slice() -> None:
    net = twin().eval()
    x = torch.randn(4, 1, 16, 16)
    y = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        member = [m(x) for m in net.members]  # (4, 5) each
        assert torch.allclose(net(x), (member[0] + member[1]) / 2, atol=1e-6)
        stacked = net(torch.stack([x, y]))  # (2, 4, 5)
        assert stacked.shape == (2, 4, 5)
        assert torch.allclose(stacked[0], member[0], atol=1e-6)
        assert torch.allclose(stacked[1], net.members[1](y), atol=1e-6)
        assert torch.allclose(net(both(x)), torch.stack(member), atol=1e-6)
        assert net(x, project=True).shape == (4, CFG.proj_dim)  # keyword options reach the members
    with pytest.raises(ValueError, match="one slice per member"):
        net(torch.randn(3, 4, 1, 16, 16))


def test_one_adamw_over_the_twin_equals_one_adamw_per_member() -> None:
    joint, apart = twin(), twin()
    opt = torch.optim.AdamW(joint.parameters(), lr=1e-2, weight_decay=0.1)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1) for m in apart.members]
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(2, 6, 1, 16, 16, generator=gen)
        target = torch.randint(0, 5, (6,), generator=gen)
        logits = joint(x)  # (2, 6, 5): one stacked forward
        loss = torch.nn.functional.cross_entropy(logits[0], target)
        loss = loss + torch.nn.functional.cross_entropy(logits[1], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for m, (member, member_opt) in enumerate(zip(apart.members, opts, strict=True)):
            member_opt.zero_grad()
            torch.nn.functional.cross_entropy(member(x[m]), target).backward()
            member_opt.step()
    for (name, a), b in zip(joint.state_dict().items(), apart.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_build_model_picks_one_network_or_a_twin() -> None:
    kwargs = {"seed": 0, "num_classes": 3, "in_chans": 1, "image_size": 16}
    assert isinstance(build_model(CFG, networks=1, **kwargs), Network)
    assert isinstance(build_model(CFG, networks=2, **kwargs), TwinNetwork)
    with pytest.raises(ValueError, match="1 or 2 networks"):
        build_model(CFG, networks=3, **kwargs)
    assert method_networks("coteaching") == method_networks("dividemix") == 2
    assert method_networks("ce") == method_networks("paper") == 1


def test_the_worker_builds_a_twin_whose_evaluation_is_the_ensemble(digits_npz: Path) -> None:
    cfg = digits_config(digits_npz, method="dividemix", **{"data.train_subset": 100, "data.test_subset": 60})
    bundle = prepare_data(cfg)
    ctx = build_context(
        WorkerSpec(cfg=cfg, data=bundle, fingerprint="x", progress=False), bundle, World(), in_ray=False
    )
    assert isinstance(ctx.net, TwinNetwork)
    assert set(ctx.net.state_dict()) == {
        f"members.{m}.{k}" for m in (0, 1) for k in Network.state_dict(ctx.net.members[0])
    }
    metrics = evaluate_twin(ctx)
    plain = evaluate(ctx)  # the unchanged evaluation through the twin's plain forward
    assert metrics["test_acc"] == plain["test_acc"] and metrics["test_f1"] == plain["test_f1"]
    assert metrics["test_class_acc"] == plain["test_class_acc"]
    for m, key in enumerate(("test_acc_net1", "test_acc_net2")):
        with torch.no_grad():
            preds = ctx.net.members[m].eval()(ctx.augmenter.plain(ctx.test_images)).argmax(dim=1)
        assert metrics[key] == pytest.approx(float((preds == ctx.test_labels).double().mean()))
    scanned = member_losses(ctx, ctx.noisy_labels)  # (N, 2)
    with torch.no_grad():
        logits = ctx.net.members[1].eval()(ctx.augmenter.plain(ctx.train_images))
    expected = torch.nn.functional.cross_entropy(logits, ctx.noisy_labels, reduction="none")
    assert scanned.shape == (100, 2) and torch.allclose(scanned[:, 1], expected, atol=1e-5)
