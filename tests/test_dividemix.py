"""DivideMix: its formulas, the co-divide, one full step against a hand computation, a real run, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import FIRST_BATCH, digits_config

from noisylab.config.run import validate
from noisylab.data.prepare import prepare_data
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train.engine import Step, World
from noisylab.train.runtime import make_optimizer
from noisylab.train.worker import WorkerSpec, build_context
from noisylab.trainables import method_names
from noisylab.trainables.dividemix import (
    co_divide,
    labelled_pass_loss,
    labelled_pass_order,
    mixmatch_loss,
    mixmatch_targets,
    rampup,
    semi_supervised_loss,
    sharpen,
    uniform_prior_penalty,
)

TIMING = {"seconds", "images_per_s"}
LEARNS: dict[str, Any] = {
    "method": "dividemix",
    "data.train_subset": 600,
    "baseline.epochs": 6,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
    "dividemix.warmup_epochs": 3,
}


# ---- formulas ------------------------------------------------------------------------------------


def test_sharpen_is_the_tempered_renormalisation() -> None:
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    expected = p**2 / (p**2).sum(dim=1, keepdim=True)  # T = 0.5
    assert torch.allclose(sharpen(p, 0.5), expected)
    assert torch.allclose(sharpen(p, 1.0), p)
    assert torch.allclose(sharpen(p, 0.5).sum(dim=1), torch.ones(2))
    assert sharpen(p, 0.05)[1].argmax() == 2 and float(sharpen(p, 0.05)[1, 2]) > 0.99


def test_co_divide_trains_each_member_on_the_others_split() -> None:
    clean = torch.tensor([[0.9, 0.2], [0.1, 0.7], [0.6, 0.6], [0.3, 0.4]])  # column m: member m's own GMM
    weights, labelled = co_divide(clean, 0.5)
    assert torch.equal(weights[:, 0], clean[:, 1]) and torch.equal(weights[:, 1], clean[:, 0])
    assert labelled[:, 0].tolist() == [False, True, True, False]  # member 1 trains on member 2's split
    assert labelled[:, 1].tolist() == [True, False, True, False]


def test_targets_refine_labelled_and_co_guess_unlabelled() -> None:
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(2, 2, 3, 4, generator=gen), dim=-1)  # (member, view, B, K)
    onehot = F.one_hot(torch.tensor([0, 2, 3]), 4).float()
    weights = torch.tensor([[0.9, 0.6, 0.2], [0.3, 0.8, 0.7]])
    labelled = torch.tensor([[True, True, False], [False, True, True]])
    out = mixmatch_targets(probs, onehot, weights, labelled, temperature=0.5)
    for m in range(2):
        for b in range(3):
            if labelled[m, b]:
                own = (probs[m, 0, b] + probs[m, 1, b]) / 2
                mixed = weights[m, b] * onehot[b] + (1 - weights[m, b]) * own
            else:
                mixed = probs[:, :, b].reshape(4, 4).mean(dim=0)  # both members, both views
            assert torch.allclose(out[m, b], mixed**2 / (mixed**2).sum(), atol=1e-6)
    flipped = mixmatch_targets(probs, onehot, weights, ~labelled, temperature=0.5)
    assert torch.allclose(out[0, 2], flipped[1, 2])  # co-guessing: both members get the same guess


def test_loss_terms_have_their_closed_forms() -> None:
    uniform = torch.zeros(5, 4)
    assert float(uniform_prior_penalty(uniform)) == pytest.approx(0.0, abs=1e-7)
    collapsed = torch.tensor([[10.0, 0, 0, 0]]).repeat(5, 1)
    assert float(uniform_prior_penalty(collapsed)) > 1.0  # everything predicted as class 0
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    lx, lu = semi_supervised_loss(logits, targets, torch.tensor([True, False, True]))
    p = torch.softmax(logits, dim=1)
    assert float(lx) == pytest.approx(float((-torch.log(p[0, 0]) - torch.log(p[2, 1])) / 2))
    assert float(lu) == pytest.approx(float(((p[1] - targets[1]) ** 2).mean()))  # mean over classes too
    _, empty = semi_supervised_loss(logits, targets, torch.ones(3, dtype=torch.bool))
    assert float(empty) == 0.0
    assert [rampup(t, 16) for t in (0.0, 8.0, 20.0)] == [0.0, 0.5, 1.0] and rampup(0.0, 0) == 1.0


def test_bad_settings_are_refused(digits_npz: Path) -> None:
    def check(**overrides: Any) -> None:
        validate(digits_config(digits_npz, method="dividemix", **overrides), methods=method_names())

    with pytest.raises(UserError, match=r"dividemix\.lambda_u"):
        check(**{"data.noise": "file:labels.npy"})
    with pytest.raises(UserError, match="leaves no divided epoch"):
        check(**{"baseline.epochs": 4, "dividemix.warmup_epochs": 4})
    with pytest.raises(UserError, match="at least 2 epochs"):
        check(**{"baseline.epochs": 1})
    with pytest.raises(UserError, match=r"p_threshold must lie in \(0, 1\)"):
        check(**{"dividemix.p_threshold": 1.0})
    with pytest.raises(UserError, match="temperature must be > 0"):
        check(**{"dividemix.temperature": 0.0})


def test_the_papers_sgd_is_one_setting_away(digits_npz: Path) -> None:
    opt = make_optimizer(torch.nn.Linear(2, 2), Step("train", 1, 1, 0.02, 5e-4), "sgd", momentum=0.9)
    assert isinstance(opt, torch.optim.SGD)
    assert (
        opt.defaults["momentum"] == 0.9
        and opt.defaults["weight_decay"] == 5e-4
        and opt.defaults["lr"] == 0.02
    )
    cfg = digits_config(digits_npz, method="dividemix", optimizer="sgd")
    assert validate(cfg, methods=method_names()).sgd_momentum == 0.9
    with pytest.raises(UserError, match=r"sgd_momentum must lie in \[0, 1\)"):
        validate(digits_config(digits_npz, sgd_momentum=1.0), methods=method_names())


# ---- one step, by hand ---------------------------------------------------------------------------


def test_one_step_equals_the_hand_computed_loss(digits_npz: Path) -> None:
    overrides = {
        "data.train_subset": 60,
        "dividemix.alpha": 0.0,  # λ' = 1: mixing leaves the batch as it is, so the loss can be written out
        "dividemix.lambda_u": 2.0,
        "dividemix.rampup_epochs": 0,
        "dividemix.prior_weight": 0.5,
    }
    cfg = digits_config(digits_npz, method="dividemix", **overrides)
    bundle = prepare_data(cfg)
    ctx = build_context(WorkerSpec(cfg, bundle, "x", progress=False), bundle, World(), in_ray=False)
    net = ctx.net.train()
    clean = torch.rand(60, 2, generator=torch.Generator().manual_seed(1))  # column m: member m's own GMM
    weights, labelled = co_divide(clean, 0.5)
    idx = torch.arange(3, 19)  # 16 samples
    out = mixmatch_loss(ctx, ctx.noisy_labels, weights, labelled, epochs_done=0)(
        idx, torch.Generator().manual_seed(5), FIRST_BATCH
    )
    loss = out.loss
    assert out.images == 2 * 2 * 16

    gen = torch.Generator().manual_seed(5)
    raw = ctx.train_images[idx]
    views = torch.cat([ctx.augmenter.weak(raw, gen), ctx.augmenter.weak(raw, gen)])  # (32, C, H, W)
    logits = [net.members[m](views) for m in range(2)]  # (32, K) each
    p = [torch.softmax(x.detach(), dim=1) for x in logits]
    y = F.one_hot(ctx.noisy_labels[idx], ctx.num_classes).float()
    guess = (p[0][:16] + p[0][16:] + p[1][:16] + p[1][16:]) / 4
    expected = torch.zeros(())
    for m in range(2):
        w = clean[idx, 1 - m].unsqueeze(1)  # the OTHER member's clean probability ...
        lab = clean[idx, 1 - m] > 0.5  # ... and split
        refined = w * y + (1 - w) * (p[m][:16] + p[m][16:]) / 2
        target = torch.where(
            lab.unsqueeze(1),
            refined**2 / (refined**2).sum(1, keepdim=True),
            guess**2 / (guess**2).sum(1, keepdim=True),
        )
        target, lab = torch.cat([target, target]), torch.cat([lab, lab])
        log_p = F.log_softmax(logits[m], dim=1)
        lx = -(target[lab] * log_p[lab]).sum(dim=1).mean()
        lu = (log_p[~lab].exp() - target[~lab]).pow(2).mean()
        mean_p = log_p.exp().mean(dim=0)
        prior = (torch.log((1 / ctx.num_classes) / mean_p) / ctx.num_classes).sum()
        expected = expected + lx + 2.0 * lu + 0.5 * prior
    assert 0 < int(labelled[idx].sum()) < 32  # both parts present
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_labelled_pass_lays_out_the_official_epoch() -> None:
    """Member 0 labels 4 of 10 samples, member 1 labels 6: with 2 labelled + 2 unlabelled per member and
    step, the epoch has ⌈6 / 2⌉ = 3 steps; member 1 passes over its labelled set exactly once, member 0
    cycles its own, every slot holds only its own part, and two ranks split each step without overlap."""
    labelled = torch.zeros(10, 2, dtype=torch.bool)
    labelled[[0, 1, 2, 3], 0] = True
    labelled[[4, 5, 6, 7, 8, 9], 1] = True
    order = labelled_pass_order(labelled, half=2, world=World(), seed=0, step=3)
    steps = order.view(-1, 2, 2, 2)  # (step, member, labelled / unlabelled, h)
    assert steps.shape[0] == 3
    for m in range(2):
        assert bool(labelled[steps[:, m, 0].reshape(-1), m].all())
        assert not bool(labelled[steps[:, m, 1].reshape(-1), m].any())
    assert sorted(steps[:, 1, 0].reshape(-1).tolist()) == [4, 5, 6, 7, 8, 9]  # once each
    assert set(steps[:, 0, 0].reshape(-1).tolist()) == {0, 1, 2, 3}  # cycled: 6 slots, 4 samples
    assert torch.equal(order, labelled_pass_order(labelled, half=2, world=World(), seed=0, step=3))
    assert not torch.equal(order, labelled_pass_order(labelled, half=2, world=World(), seed=0, step=4))
    ranks = [
        labelled_pass_order(labelled, half=1, world=World(rank=r, size=2), seed=0, step=3) for r in (0, 1)
    ]
    assert all(len(o) == 3 * 4 for o in ranks)  # the same 3 steps, half of each per rank
    together = torch.stack([o.view(3, 2, 2, 1) for o in ranks], dim=-1).flatten(-2)  # (step, m, part, 2)
    assert torch.equal(together, steps)  # the ranks' shares are the one-rank epoch, split


def test_labelled_pass_step_equals_the_hand_computed_loss(digits_npz: Path) -> None:
    """One step of the official layout written out: each member refines its own labelled samples with
    its own two views (training mode) and guesses its unlabelled ones from its own views and the other
    member's, the other in eval mode."""
    overrides = {
        "data.train_subset": 60,
        "dividemix.alpha": 0.0,  # λ' = 1: mixing leaves the batch as it is
        "dividemix.lambda_u": 2.0,
        "dividemix.rampup_epochs": 0,
        "dividemix.prior_weight": 0.5,
    }
    cfg = digits_config(digits_npz, method="dividemix", **overrides)
    bundle = prepare_data(cfg)
    ctx = build_context(WorkerSpec(cfg, bundle, "x", progress=False), bundle, World(), in_ray=False)
    net = ctx.net.train()
    clean = torch.rand(60, 2, generator=torch.Generator().manual_seed(1))
    weights, labelled = co_divide(clean, 0.5)
    idx = labelled_pass_order(labelled, half=4, world=World(), seed=0, step=0)[:16]  # the first step
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = labelled_pass_loss(ctx, ctx.noisy_labels, weights, labelled, epochs_done=0)(
        idx, torch.Generator().manual_seed(5), FIRST_BATCH
    )
    assert out.images == 2 * 2 * 8
    net.load_state_dict(before)  # BatchNorm's running statistics as the step found them

    gen = torch.Generator().manual_seed(5)
    rows = idx.view(2, 8)  # member m: its 4 labelled samples, then its 4 unlabelled ones
    raw = ctx.train_images[rows.reshape(-1)]
    v1, v2 = ctx.augmenter.weak(raw, gen), ctx.augmenter.weak(raw, gen)
    x = [torch.cat([v1[8 * m : 8 * m + 8], v2[8 * m : 8 * m + 8]]) for m in range(2)]  # (16, C, H, W)
    logits = [net.members[m](x[m]) for m in range(2)]  # training mode
    p = [torch.softmax(t.detach(), dim=1) for t in logits]
    net.eval()
    with torch.no_grad():  # member 1 − m on member m's unlabelled views
        q = [torch.softmax(net.members[1 - m](torch.cat([x[m][4:8], x[m][12:16]])), dim=1) for m in range(2)]
    net.train()
    expected = torch.zeros(())
    for m in range(2):
        lab_rows = rows[m, :4]
        assert bool(labelled[lab_rows, m].all()) and not bool(labelled[rows[m, 4:], m].any())
        y = F.one_hot(ctx.noisy_labels[lab_rows], ctx.num_classes).float()
        w = clean[lab_rows, 1 - m].unsqueeze(1)  # the other member's clean probability
        refined = w * y + (1 - w) * (p[m][:4] + p[m][8:12]) / 2
        guess = (p[m][4:8] + p[m][12:16] + q[m][:4] + q[m][4:]) / 4
        sharp = torch.cat(
            [refined**2 / (refined**2).sum(1, keepdim=True), guess**2 / (guess**2).sum(1, keepdim=True)]
        )
        target = torch.cat([sharp, sharp])  # (16, K): both views
        lab = torch.tensor([True] * 4 + [False] * 4 + [True] * 4 + [False] * 4)
        log_p = F.log_softmax(logits[m], dim=1)
        lx = -(target[lab] * log_p[lab]).sum(dim=1).mean()
        lu = (log_p[~lab].exp() - target[~lab]).pow(2).mean()
        mean_p = log_p.exp().mean(dim=0)
        prior = (torch.log((1 / ctx.num_classes) / mean_p) / ctx.num_classes).sum()
        expected = expected + lx + 2.0 * lu + 0.5 * prior
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


# ---- real runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def record(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_dividemix_learns_and_divides_cleaner_than_the_labels(record: dict[str, Any]) -> None:
    history = json.loads(record["history_json"])
    assert [h["phase"] for h in history] == ["warmup"] * 3 + ["train"] * 3
    warm = [h["train_loss"] for h in history if h["phase"] == "warmup"]
    assert warm[-1] < 0.9 * warm[0]
    divided = [h for h in history if h["phase"] == "train"]
    assert divided[-1]["loss_x"] < divided[0]["loss_x"]
    assert record["test_acc"] > 0.5 and record["warmup_test_acc"] is not None  # chance is 0.1
    clean_fraction = 1 - record["realised_noise_rate"]
    for h in divided:
        assert h["epoch_layout_labelled"] == 1.0  # the official layout, the default
        for m in (1, 2):
            assert h[f"division_net{m}_precision"] > clean_fraction + 0.1
            assert h[f"division_net{m}_size"] > 100
        assert h["lambda_u"] == 0.0  # CIFAR-10's rule at 30 % symmetric noise
    assert {"test_acc_net1", "test_acc_net2"} <= set(history[-1])


@pytest.mark.parametrize("layout", ["labelled", "all"])
def test_resume_after_warmup_matches_an_uninterrupted_run(
    digits_npz: Path, tmp_path: Path, layout: str
) -> None:
    # Two epochs of losses averaged before each GMM: the loss history travels in the checkpoint.
    short = LEARNS | {"data.train_subset": 300, "baseline.epochs": 5, "dividemix.warmup_epochs": 2}
    short |= {"dividemix.epoch_layout": layout}
    cfg = digits_config(digits_npz, **(short | {"dividemix.loss_window": 2, "dividemix.lambda_u": 25.0}))
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(
            cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=4
        )  # 2nd divided epoch
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert out.resumed

    def comparable(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(r["history_json"])]

    assert comparable(out.record) == comparable(whole)
    assert out.record["final_labels_sha256"] == whole["final_labels_sha256"]
    assert out.record["test_acc"] == whole["test_acc"]
