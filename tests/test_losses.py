"""Losses against slow float references, closed forms, invariances and the SWCE gradient sign."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from noisylab.train import losses

LossFn = Callable[[Tensor, Tensor], Tensor]


# ------------------------------------------------------------------------------ slow float references


def _probs(row: list[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


def ref_ce(row: list[float], y: int) -> float:
    return -math.log(_probs(row)[y])


def ref_nce(row: list[float], y: int) -> float:
    p = _probs(row)
    return -math.log(p[y]) / sum(-math.log(pc) for pc in p)


def ref_mae(row: list[float], y: int) -> float:
    p = _probs(row)
    return sum(abs(pc - (1.0 if c == y else 0.0)) for c, pc in enumerate(p))


def ref_focal(row: list[float], y: int, gamma: float = 2.0) -> float:
    py = _probs(row)[y]
    return -((1 - py) ** gamma) * math.log(py)


def ref_swce(row: list[float], y: int) -> float:
    py = _probs(row)[y]
    return -py * math.log(py)


def ref_soft_ce(row: list[float], q: list[float]) -> float:
    return -sum(qc * math.log(pc) for qc, pc in zip(q, _probs(row), strict=True))


def ref_nt_xent(z1: list[list[float]], z2: list[list[float]], temperature: float) -> list[float]:
    z = [[v / math.sqrt(sum(u * u for u in vec)) for v in vec] for vec in z1 + z2]
    n, batch = len(z), len(z1)
    out = []
    for i in range(n):
        positive = i + batch if i < batch else i - batch
        sims = {
            j: sum(a * b for a, b in zip(z[i], z[j], strict=True)) / temperature for j in range(n) if j != i
        }
        out.append(-sims[positive] + math.log(sum(math.exp(s) for s in sims.values())))
    return out


@pytest.fixture
def batch() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=gen, dtype=torch.float64) * 3
    targets = torch.tensor([0, 1, 2, 3, 4, 2])
    return logits, targets


CASES: list[tuple[str, LossFn, Callable[[list[float], int], float]]] = [
    ("cross_entropy", losses.cross_entropy, ref_ce),
    ("nce", losses.nce, ref_nce),
    ("mae", losses.mae, ref_mae),
    ("focal", losses.focal, ref_focal),
    ("swce", losses.swce, ref_swce),
    ("nce_mae", losses.nce_mae, lambda row, y: ref_nce(row, y) + ref_mae(row, y)),
]


@pytest.mark.parametrize(("name", "fn", "ref"), CASES, ids=[c[0] for c in CASES])
def test_matches_slow_reference(
    name: str, fn: LossFn, ref: Callable[[list[float], int], float], batch: tuple[Tensor, Tensor]
) -> None:
    logits, targets = batch
    got = fn(logits, targets)
    assert got.shape == (6,)
    want = [ref(row, int(y)) for row, y in zip(logits.tolist(), targets.tolist(), strict=True)]
    assert got.tolist() == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_weighted_variants_match_reference(batch: tuple[Tensor, Tensor]) -> None:
    logits, targets = batch
    rows, ys = logits.tolist(), targets.tolist()
    got = losses.nce_mae(logits, targets, nce_weight=0.3, mae_weight=2.5)
    want = [0.3 * ref_nce(r, y) + 2.5 * ref_mae(r, y) for r, y in zip(rows, ys, strict=True)]
    assert got.tolist() == pytest.approx(want)
    got = losses.focal(logits, targets, gamma=0.7)
    assert got.tolist() == pytest.approx([ref_focal(r, y, 0.7) for r, y in zip(rows, ys, strict=True)])
    # gamma = 0 is plain cross entropy
    assert torch.allclose(losses.focal(logits, targets, gamma=0.0), losses.cross_entropy(logits, targets))


def test_soft_cross_entropy_matches_reference_and_one_hot(batch: tuple[Tensor, Tensor]) -> None:
    logits, targets = batch
    q = torch.softmax(torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), 1)
    want = [ref_soft_ce(row, qrow) for row, qrow in zip(logits.tolist(), q.tolist(), strict=True)]
    assert losses.soft_cross_entropy(logits, q).tolist() == pytest.approx(want, rel=1e-9)
    one_hot = torch.nn.functional.one_hot(targets, 5).double()
    assert torch.allclose(losses.soft_cross_entropy(logits, one_hot), losses.cross_entropy(logits, targets))


@pytest.mark.parametrize("num_classes", [2, 10, 100])
def test_closed_forms_for_uniform_logits(num_classes: int) -> None:
    logits = torch.zeros(3, num_classes, dtype=torch.float64)
    targets = torch.tensor([0, 1, num_classes - 1])
    c, gamma = num_classes, 2.0
    expect = {
        "cross_entropy": math.log(c),
        "nce": 1 / c,
        "mae": 2 * (1 - 1 / c),
        "focal": (1 - 1 / c) ** gamma * math.log(c),
        "swce": math.log(c) / c,
        "nce_mae": 1 / c + 2 * (1 - 1 / c),
    }
    for name, fn, _ in CASES:
        assert fn(logits, targets).tolist() == pytest.approx([expect[name]] * 3, rel=1e-12), name


@pytest.mark.parametrize(("name", "fn", "ref"), CASES, ids=[c[0] for c in CASES])
def test_logit_shift_invariance(name: str, fn: LossFn, ref: object, batch: tuple[Tensor, Tensor]) -> None:
    logits, targets = batch
    assert torch.allclose(fn(logits + 37.5, targets), fn(logits, targets), atol=1e-10)


@pytest.mark.parametrize(("name", "fn", "ref"), CASES, ids=[c[0] for c in CASES])
def test_stable_at_huge_logits(name: str, fn: LossFn, ref: object) -> None:
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [1e4, 1e4, -1e4]], requires_grad=True)
    targets = torch.tensor([0, 0, 2])  # confident right, confident wrong, impossible
    loss = fn(logits, targets)
    assert torch.isfinite(loss).all(), loss
    loss.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert loss[0].item() == pytest.approx(0.0, abs=1e-6)  # a certain correct prediction costs nothing
    if name != "swce":  # SWCE weights a certain mistake by p_y = 0: it is ignored by design
        assert loss[1].item() > loss[0].item()


def _p_y_after_one_step(logits: Tensor, target: int, *, detach_weight: bool, lr: float = 0.5) -> float:
    z = logits.clone().requires_grad_(True)
    losses.swce(z, torch.tensor([target]), detach_weight=detach_weight).sum().backward()
    assert z.grad is not None
    with torch.no_grad():
        return float(torch.softmax(z - lr * z.grad, dim=1)[0, target])


def _logits_with_p_y(p_y: float) -> Tensor:
    # two classes: p_0 = 1 / (1 + e^b) = p_y for logits [0, b]
    return torch.tensor([[0.0, math.log((1 - p_y) / p_y)]], dtype=torch.float64)


def test_swce_literal_form_pushes_low_confidence_down() -> None:
    logits = _logits_with_p_y(0.1)  # below 1/e
    assert torch.softmax(logits, 1)[0, 0].item() == pytest.approx(0.1)
    assert _p_y_after_one_step(logits, 0, detach_weight=False) < 0.1
    assert _p_y_after_one_step(logits, 0, detach_weight=True) > 0.1


def test_swce_both_forms_push_high_confidence_up() -> None:
    logits = _logits_with_p_y(0.6)  # above 1/e
    assert _p_y_after_one_step(logits, 0, detach_weight=False) > 0.6
    assert _p_y_after_one_step(logits, 0, detach_weight=True) > 0.6


def test_swce_forms_have_equal_values_and_default_detaches() -> None:
    logits = _logits_with_p_y(0.1)
    targets = torch.tensor([0])
    assert torch.equal(losses.swce(logits, targets, detach_weight=False), losses.swce(logits, targets))
    assert _p_y_after_one_step(logits, 0, detach_weight=True) > 0.1
    z = logits.clone().requires_grad_(True)
    losses.swce(z, targets).sum().backward()  # the default form
    assert z.grad is not None and z.grad[0, 0].item() < 0  # descent raises the target logit


def test_nt_xent_hand_built_case() -> None:
    # Two images whose two views coincide, orthogonal to each other: every anchor sees its positive at
    # cosine 1 and two negatives at cosine 0, so L = −log(e^{1/T} / (e^{1/T} + 2)) = log(1 + 2 e^{−1/T}).
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    got = losses.nt_xent(z, z.clone(), temperature=0.5)
    assert got.shape == (4,)
    assert got.tolist() == pytest.approx([math.log(1 + 2 * math.exp(-2.0))] * 4, rel=1e-12)


def test_nt_xent_matches_reference_and_is_scale_invariant() -> None:
    gen = torch.Generator().manual_seed(3)
    z1 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    z2 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    got = losses.nt_xent(z1, z2, temperature=0.2)
    assert got.tolist() == pytest.approx(ref_nt_xent(z1.tolist(), z2.tolist(), 0.2), rel=1e-9)
    assert torch.allclose(losses.nt_xent(7.0 * z1, 0.01 * z2, temperature=0.2), got)
    # swapping the views swaps the two halves of the per-anchor losses
    swapped = losses.nt_xent(z2, z1, temperature=0.2)
    assert torch.allclose(swapped, torch.cat([got[4:], got[:4]]))


def test_nt_xent_rejects_mismatched_views() -> None:
    with pytest.raises(ValueError, match="same shape"):
        losses.nt_xent(torch.zeros(4, 3), torch.zeros(5, 3))
