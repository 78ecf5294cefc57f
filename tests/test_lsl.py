"""LSL: reverse k-NN voting on planted features, chunking, SSR's selection, the weighted loss, a run
that learns, resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import FIRST_BATCH, digits_config, digits_context

from noisylab.config.run import ModelConfig, validate
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train.engine import derived_generator
from noisylab.train.models import Network, build_network
from noisylab.trainables import get_method, method_names, model_options
from noisylab.trainables.lsl import (
    draw_weights,
    knn_selection,
    lsl_batches,
    lsl_loss,
    nearest_neighbours,
    relabel,
    reverse_knn_votes,
    structural_labels,
    without_self,
)

TIMING = {"seconds", "images_per_s"}
LEARNS: dict[str, Any] = {
    "method": "lsl",
    "data.train_subset": 400,
    "baseline.epochs": 7,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
    "lsl.k": 10,
    "lsl.select_k": 20,  # 40 samples a class: SSR's 200 would span several classes
    "lsl.view": "weak",  # 16-px digits: the SimCLR crop and blur leave too little of a digit
}

# Three tight clusters around e1, e2, e3 and one outlier D between e1 and e4. Within a cluster the other
# members are each sample's two nearest neighbours (cosine ≈ 1); D's two nearest are A0 and A1 (cosine
# ≈ 0.71, A0's fourth coordinate being the largest), and no sample has D among its two nearest.
PLANTED = F.normalize(
    torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.02],  # A0
            [1.0, 0.0, 0.0, 0.01],  # A1
            [1.0, 0.0, 0.0, -0.01],  # A2
            [0.0, 1.0, 0.01, 0.0],  # B0
            [0.0, 1.0, 0.0, 0.01],  # B1
            [0.0, 1.0, -0.01, 0.0],  # B2
            [0.0, 0.01, 1.0, 0.0],  # C0
            [0.01, 0.0, 1.0, 0.0],  # C1
            [0.0, -0.01, 1.0, 0.0],  # C2
            [1.0, 0.0, 0.0, 1.0],  # D
        ]
    ),
    dim=1,
)
# A2 and C2 carry a wrong label (clusters A, B, C are classes 0, 1, 2); D's label is 2.
PLANTED_LABELS = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2, 0, 2])
THIRD = 1.0 / 3.0
# By hand: sample j's row counts the labels of the samples that have j among their two nearest.
PLANTED_STRUCTURAL = torch.tensor(
    [
        [THIRD, THIRD, THIRD],  # A0 ← A1 (0), A2 (1), D (2)
        [THIRD, THIRD, THIRD],  # A1 ← A0 (0), A2 (1), D (2)
        [1.0, 0.0, 0.0],  # A2 ← A0 (0), A1 (0): the wrong label 1 is outvoted by its cluster
        [0.0, 1.0, 0.0],  # B0 ← B1, B2
        [0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.5, 0.0, 0.5],  # C0 ← C1 (2), C2 (0)
        [0.5, 0.0, 0.5],  # C1 ← C0 (2), C2 (0)
        [0.0, 0.0, 1.0],  # C2 ← C0 (2), C1 (2): its wrong label 0 is outvoted
        [0.0, 0.0, 1.0],  # D: nobody's neighbour, so its own label's one-hot
    ]
)


def planted_structural(chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    neighbours = without_self(nearest_neighbours(PLANTED, 3, chunk=chunk), 2)  # (10, 2)
    votes = reverse_knn_votes(neighbours, PLANTED_LABELS, 3)
    return votes, structural_labels(votes, PLANTED_LABELS)


def test_reverse_knn_voting_gives_the_hand_computed_structural_labels() -> None:
    votes, soft = planted_structural(chunk=len(PLANTED))
    assert votes.sum().item() == 2 * len(PLANTED)  # every sample casts k = 2 votes
    assert votes[9].tolist() == [0, 0, 0]  # the outlier is nobody's neighbour
    assert votes[0].tolist() == [1, 1, 1] and votes[2].tolist() == [2, 0, 0]
    assert torch.allclose(soft, PLANTED_STRUCTURAL)
    assert torch.allclose(soft.sum(dim=1), torch.ones(len(PLANTED)))


def test_self_is_dropped_from_the_neighbours() -> None:
    neighbours = without_self(nearest_neighbours(PLANTED, 3, chunk=4), 2)
    assert not (neighbours == torch.arange(len(PLANTED)).unsqueeze(1)).any()
    assert sorted(neighbours[2].tolist()) == [0, 1] and neighbours[9].tolist() == [0, 1]
    # a row that does not list itself (a duplicate outranks it) keeps its first k entries
    rows = torch.tensor([[0, 2, 3], [2, 1, 0], [0, 1, 3]])  # row 2 does not list itself
    assert without_self(rows, 2).tolist() == [[2, 3], [2, 0], [0, 1]]


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_chunked_computation_equals_the_unchunked_one(chunk: int) -> None:
    whole_votes, whole = planted_structural(chunk=len(PLANTED))
    votes, soft = planted_structural(chunk=chunk)
    assert torch.equal(votes, whole_votes) and torch.equal(soft, whole)
    gen = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(53, 8, generator=gen), dim=1)
    labels = torch.randint(0, 4, (53,), generator=gen)
    one_block = nearest_neighbours(features, 6, chunk=53)
    blocks = nearest_neighbours(features, 6, chunk=chunk)
    assert torch.equal(blocks, one_block)
    assert torch.equal(
        reverse_knn_votes(without_self(blocks, 5), labels, 4),
        reverse_knn_votes(without_self(one_block, 5), labels, 4),
    )


def test_ssr_relabels_confident_predictions_and_selects_by_balanced_knn_votes() -> None:
    probs = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.05, 0.95]])
    assert relabel(torch.tensor([1, 1, 1]), probs, 0.9).tolist() == [0, 1, 1]
    neighbours = nearest_neighbours(PLANTED, 3, chunk=10)  # itself and its cluster (D: itself, A0, A1)
    chosen = knn_selection(neighbours, PLANTED_LABELS, 3, threshold=1.0)
    # Label shares 3/10, 4/10, 3/10. A2 (label 1): votes 2 for class 0, 1 for class 1 → 6.7 vs 2.5, out.
    # D (label 2): votes 2 for 0, 1 for 2 → out. C2 (label 0): 1 vote for 0, 2 for 2 → out.
    assert chosen.tolist() == [True, True, False, True, True, True, True, True, False, False]
    weights = draw_weights(chosen, PLANTED_LABELS, 3, balanced=True)
    # selected: class 0 = A0, A1; class 1 = B0..B2; class 2 = C0, C1 → each class drawn equally
    assert weights.tolist() == pytest.approx([0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3, 0.5, 0.5, 0, 0])
    assert draw_weights(chosen, PLANTED_LABELS, 3, balanced=False).tolist() == chosen.double().tolist()


def test_the_structural_term_enters_with_weight_lambda() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 3, generator=gen, requires_grad=True)
    other = torch.randn(5, 3, generator=gen, requires_grad=True)
    targets = torch.softmax(torch.randn(5, 3, generator=gen), dim=1)
    structural = torch.softmax(torch.randn(5, 3, generator=gen), dim=1)
    plain = -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    st = -(structural * torch.log_softmax(other, dim=1)).sum(dim=1).mean()
    for weight in (0.0, 0.5, 2.0):
        total, ce_term, st_term = lsl_loss(logits, other, targets, structural, weight=weight)
        assert total.item() == pytest.approx((plain + weight * st).item(), rel=1e-6)
        assert ce_term.item() == pytest.approx(plain.item()) and st_term.item() == pytest.approx(st.item())
    total, _, _ = lsl_loss(logits, other, targets, structural, weight=0.0)
    total.backward()
    assert other.grad is not None and not other.grad.any()  # λ_st = 0: the structural head learns nothing


@pytest.fixture(scope="module")
def context(digits_npz: Path) -> Any:
    return digits_context(digits_config(digits_npz, method="lsl", **{"data.train_subset": 100}))


def test_a_batch_with_lambda_zero_is_the_plain_mixup_batch(context: Any) -> None:
    """Same generator, same images, λ and permutation: with λ_st = 0 the structural labels change nothing."""
    ctx = context
    assert isinstance(ctx.net, Network) and ctx.net.structural_head is not None
    n, k = len(ctx.noisy_labels), ctx.num_classes
    soft = torch.softmax(torch.randn(n, k, generator=torch.Generator().manual_seed(2)), dim=1)
    settings = ctx.cfg.lsl
    idx = torch.arange(16)

    def loss(**kw: Any) -> tuple[float, dict[str, float]]:
        fn = lsl_batches(ctx, labels=ctx.noisy_labels, **kw)
        out = fn(idx, derived_generator(3), FIRST_BATCH)
        return out.loss.item(), {name: v.item() for name, v in out.metrics.items()}

    plain, _ = loss(settings=settings)
    zero, zero_parts = loss(settings=replace(settings, weight=0.0), structural=soft)
    half, half_parts = loss(settings=replace(settings, weight=0.5), structural=soft)
    assert zero == pytest.approx(plain, rel=1e-6) and zero_parts["loss_ce"] == pytest.approx(plain)
    assert half == pytest.approx(half_parts["loss_ce"] + 0.5 * half_parts["loss_st"], rel=1e-6)
    assert half_parts["loss_ce"] == pytest.approx(plain, rel=1e-6) and half > plain


def test_the_structural_head_leaves_every_other_weight_as_it_was() -> None:
    def built(**kw: Any) -> Network:
        torch.manual_seed(0)
        return build_network(ModelConfig(width=8), num_classes=10, in_chans=1, image_size=16, **kw)

    plain, lsl = built(), built(structural_head=True)
    extra = set(lsl.state_dict()) - set(plain.state_dict())
    assert extra == {"structural_head.weight", "structural_head.bias"}
    assert all(torch.equal(v, lsl.state_dict()[name]) for name, v in plain.state_dict().items())
    x = torch.randn(4, 1, 16, 16)
    plain.eval()
    lsl.eval()
    both = lsl(x, structural=True)  # (2, 4, 10)
    assert both.shape == (2, 4, 10) and torch.allclose(both[0], plain(x), atol=1e-6)
    assert lsl(x, features=True).shape == (4, lsl.num_features)
    with pytest.raises(RuntimeError, match="no structural head"):
        plain(x, structural=True)


def test_settings_reach_the_network_and_bad_ones_are_refused(digits_npz: Path) -> None:
    assert model_options(digits_config(digits_npz, method="lsl")) == {"structural_head": True}
    assert model_options(digits_config(digits_npz, method="lsl", **{"lsl.head": "shared"})) == {
        "structural_head": False
    }
    assert model_options(digits_config(digits_npz, method="ce")) == {}
    schedule = get_method("lsl").schedule(
        digits_config(digits_npz, method="lsl", **{"baseline.epochs": 4, "lsl.warmup_epochs": 1})
    )
    assert [(s.phase, s.epoch, s.epochs) for s in schedule] == [
        ("warmup", 1, 1),
        ("train", 1, 3),
        ("train", 2, 3),
        ("train", 3, 3),
    ]
    for field, value, message in (
        ("lsl.k", 0, r"lsl\.k must be ≥ 1"),
        ("lsl.select_threshold", 1.5, r"lsl\.select_threshold must lie in \(0, 1\]"),
        ("lsl.relabel_threshold", 2.0, r"lsl\.relabel_threshold must lie in \[0, 1\]"),
        ("lsl.warmup_epochs", 4, "leaves no epoch with structural labels"),
    ):
        bad = digits_config(digits_npz, method="lsl", **{"baseline.epochs": 4, field: value})
        with pytest.raises(UserError, match=message):
            validate(bad, methods=method_names())


@pytest.fixture(scope="module")
def record(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_lsl_learns_and_its_structural_labels_beat_the_noisy_ones(record: dict[str, Any]) -> None:
    history = json.loads(record["history_json"])
    assert len(history) == LEARNS["baseline.epochs"]
    assert record["test_acc"] > 0.6  # ten classes: chance is 0.1
    last = history[-1]
    noisy = last["noisy_label_acc"]
    assert noisy == pytest.approx(1 - record["realised_noise_rate"])
    assert last["structural_acc"] > noisy  # the neighbours' votes undo part of the noise...
    assert last["structural_acc_mislabelled"] > 0.5  # ...most wrongly labelled samples are voted right
    assert history[0]["structural_acc"] < last["structural_acc"]  # as the features learn the classes
    assert 0 < last["structural_clean_mass"] <= 1 and 0 <= last["unvoted_fraction"] < 0.5
    assert last["selection_precision"] > noisy + 0.15  # SSR's selection keeps cleaner samples than it sees
    assert last["loss_st"] > 0 and last["loss_ce"] > 0


def test_resume_matches_an_uninterrupted_run(digits_npz: Path, tmp_path: Path) -> None:
    short = LEARNS | {"data.train_subset": 200, "baseline.epochs": 3, "lsl.warmup_epochs": 1}
    cfg = digits_config(digits_npz, **short)
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=2)
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert out.resumed

    def comparable(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(r["history_json"])]

    assert comparable(out.record) == comparable(whole)
    assert out.record["final_labels_sha256"] == whole["final_labels_sha256"]
    assert out.record["test_acc"] == whole["test_acc"]


@pytest.mark.slow
def test_two_ray_workers_agree_on_the_structural_labels(
    ray_session: None, digits_npz: Path, tmp_path: Path
) -> None:
    """Data-parallel under Ray Train: every rank scans, votes and selects alike (a rank that disagreed on
    the selection would stop the run), and the run records the same diagnostics as in one process."""
    two = {"data.train_subset": 200, "baseline.epochs": 2, "workers": 2}
    cfg = digits_config(digits_npz, **(LEARNS | two))
    out = execute(cfg, storage=tmp_path, progress=False)
    history = json.loads(out.record["history_json"])
    assert out.record["workers"] == 2 and len(history) == 2
    assert all(h["structural_acc"] > 0 and h["selection_size"] > 0 for h in history)
    assert 0.0 <= out.record["test_acc"] <= 1.0  # two epochs of 100 images a rank: no learning asked
