"""Forward loss correction: the anchor-point estimator, the corrected loss, re-initialisation, a run that
learns, and a resume across the phase boundary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import digits_config, digits_context

from noisylab.config.run import validate
from noisylab.config.sections.forward import forward_epochs
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train import losses
from noisylab.trainables import method_names
from noisylab.trainables.forward import ForwardMethod, estimate_transition, reinitialise, transition_error

TIMING = {"seconds", "images_per_s"}


# ------------------------------------------------------------------------------------------ estimator


def planted(
    num_classes: int = 4, n: int = 2000, anchors_per_class: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """A transition matrix T (diagonal above every other entry of its column) and noisy posteriors
    p(ỹ|x) = p(y|x) @ T, where p(y|x) is a Dirichlet draw except for one-hot anchors of each class."""
    gen = torch.Generator().manual_seed(0)
    off = torch.rand(num_classes, num_classes, generator=gen, dtype=torch.float64) * (
        1 - torch.eye(num_classes)
    )
    t = 0.4 * off / off.sum(dim=1, keepdim=True) + 0.6 * torch.eye(num_classes, dtype=torch.float64)
    clean = torch.distributions.Dirichlet(torch.ones(num_classes, dtype=torch.float64)).sample((n,))
    for c in range(num_classes):
        clean[c * anchors_per_class : (c + 1) * anchors_per_class] = torch.eye(num_classes)[c]
    clean = clean[torch.randperm(n, generator=gen)]
    return t, clean @ t


@pytest.mark.parametrize("percentile", [97.0, 100.0])
def test_the_estimator_recovers_a_planted_transition(percentile: float) -> None:
    t, noisy = planted()
    estimate = estimate_transition(noisy, percentile=percentile)
    assert torch.allclose(estimate, t, atol=1e-12)
    assert transition_error(estimate, t) == pytest.approx(0.0, abs=1e-12)


def test_the_percentile_ignores_an_overconfident_outlier_that_the_arg_max_picks() -> None:
    t, noisy = planted()
    outlier = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # no clean posterior gives this
    noisy = torch.cat([noisy, outlier])
    assert torch.allclose(estimate_transition(noisy, percentile=97.0), t, atol=1e-12)
    by_arg_max = estimate_transition(noisy, percentile=100.0)
    assert torch.equal(by_arg_max[0], outlier[0]) and not torch.allclose(by_arg_max[0], t[0])


def test_transition_error_scale() -> None:
    rate, c = 0.3, 10
    symmetric = torch.full((c, c), rate / (c - 1)) + (1 - rate - rate / (c - 1)) * torch.eye(c)
    assert transition_error(torch.eye(c), symmetric) == pytest.approx(2 * rate)


def test_the_estimator_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        estimate_transition(torch.rand(5))
    with pytest.raises(ValueError, match="percentile"):
        estimate_transition(torch.rand(5, 2), percentile=0.0)


# ------------------------------------------------------------------------------------------ loss


def _reference(row: list[float], y: int, t: list[list[float]]) -> float:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    p = [e / sum(exps) for e in exps]
    return -math.log(sum(p[k] * t[k][y] for k in range(len(p))))


def test_forward_corrected_loss_matches_a_slow_reference() -> None:
    t, _ = planted(num_classes=5)
    logits = 3 * torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 4, 2, 0])
    got = losses.forward_corrected(logits, y, t)
    want = [_reference(row, int(label), t.tolist()) for row, label in zip(logits.tolist(), y, strict=True)]
    assert got.tolist() == pytest.approx(want, rel=1e-10)


def test_identity_transition_is_cross_entropy_and_zeros_are_safe() -> None:
    logits = torch.tensor([[1e4, 0.0, -1e4], [0.5, 0.2, -0.1]], requires_grad=True)
    y = torch.tensor([2, 1])
    identity = torch.eye(3)
    assert torch.allclose(losses.forward_corrected(logits, y, identity), losses.cross_entropy(logits, y))
    losses.forward_corrected(logits, y, identity).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# ------------------------------------------------------------------------------------------ method


def test_schedule_splits_the_baseline_budget(digits_npz: Path) -> None:
    cfg = digits_config(digits_npz, method="forward", **{"baseline.epochs": 7})
    steps = ForwardMethod().schedule(cfg)
    assert [s.phase for s in steps] == ["estimate"] * 3 + ["train"] * 4  # total = ce's budget
    assert all(s.lr == cfg.baseline.lr for s in steps)
    custom = digits_config(
        digits_npz, method="forward", **{"forward.estimate_epochs": 2, "forward.train_epochs": 9}
    )
    assert forward_epochs(custom) == (2, 9)
    rest = digits_config(digits_npz, method="forward", **{"forward.train_epochs": 5, "baseline.epochs": 7})
    assert forward_epochs(rest) == (2, 5)  # a given phase keeps its length, the other gets the rest
    for bad in ({"baseline.epochs": 1}, {"forward.train_epochs": 7, "baseline.epochs": 7}):
        with pytest.raises(UserError, match="at least 1 epoch in each phase"):
            validate(digits_config(digits_npz, method="forward", **bad), methods=method_names())
    with pytest.raises(UserError, match=r"forward\.percentile"):
        validate(
            digits_config(digits_npz, method="forward", **{"forward.percentile": 0}), methods=method_names()
        )


def test_reinitialise_restores_the_initial_weights(digits_npz: Path) -> None:
    ctx = digits_context(digits_config(digits_npz, method="forward"))
    initial = {k: v.clone() for k, v in ctx.net.state_dict().items()}
    with torch.no_grad():
        for p in ctx.net.parameters():
            p.add_(1.0)
    rng = torch.get_rng_state()
    reinitialise(ctx)
    assert all(torch.equal(v, initial[k]) for k, v in ctx.net.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)  # the run's random stream is not disturbed


LEARNS: dict[str, Any] = {
    "data.train_subset": 1000,
    "baseline.epochs": 16,
    "baseline.lr": 3e-3,
    "batch_size": 64,
}


def test_forward_learns_and_records_its_estimate(digits_npz: Path, tmp_path: Path) -> None:
    r = execute(
        digits_config(digits_npz, method="forward", **LEARNS), storage=tmp_path, use_ray=False, progress=False
    ).record
    history = json.loads(r["history_json"])
    assert [h["phase"] for h in history] == ["estimate"] * 8 + ["train"] * 8
    train = [h["train_loss"] for h in history if h["phase"] == "train"]
    assert train[-1] < train[0]
    assert r["test_acc"] > 0.6  # ten classes: chance is 0.1
    estimated = next(h for h in history if "transition_error" in h)
    assert estimated["phase"] == "estimate" and estimated["epoch"] == 8
    estimate = torch.tensor(estimated["transition_estimate"], dtype=torch.float64)
    truth = torch.tensor(r["transition"], dtype=torch.float64)
    assert estimated["transition_error"] == pytest.approx(transition_error(estimate, truth))
    assert torch.allclose(estimate.sum(dim=1), torch.ones(10, dtype=torch.float64), atol=1e-5)
    # better than assuming clean labels (T = I), whose error is twice the realised noise rate
    assert estimated["transition_error"] < transition_error(torch.eye(10, dtype=torch.float64), truth)


# ------------------------------------------------------------------------------------------ resume

SHORT: dict[str, Any] = {"data.train_subset": 300, "baseline.epochs": 4, "eval_every": "epoch"}


def comparable(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(record["history_json"])]


@pytest.fixture(scope="module")
def uninterrupted(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, method="forward", **SHORT)
    return execute(cfg, storage=tmp_path_factory.mktemp("a"), use_ray=False, progress=False).record


@pytest.mark.parametrize("crash_before", [2, 3])  # the first step of phase 2 (the boundary), mid phase 2
def test_resume_across_the_phase_boundary(
    uninterrupted: dict[str, Any], digits_npz: Path, tmp_path: Path, crash_before: int
) -> None:
    cfg = digits_config(digits_npz, method="forward", **SHORT)
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path, use_ray=False, progress=False, fail_at_step=crash_before)
    out = execute(cfg, storage=tmp_path, use_ray=False, progress=False)
    assert out.resumed
    assert comparable(out.record) == comparable(uninterrupted)
    assert out.record["test_acc"] == uninterrupted["test_acc"]
    assert any("transition_estimate" in h for h in comparable(out.record))
