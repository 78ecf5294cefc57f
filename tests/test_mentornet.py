"""MentorNet: the PD curriculum and the moving threshold on planted losses, the DD mentor on a planted noisy
subset, a run that learns, and a crash-and-resume of a DD run across its mentor fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import FIRST_BATCH, digits_config, digits_context

from noisylab.config.run import validate
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train import losses
from noisylab.train.engine import derived_generator
from noisylab.train.runtime import TrainState
from noisylab.trainables import method_names
from noisylab.trainables.mentornet import (
    EMA_KEY,
    MENTOR_KEY,
    SUBSET_KEY,
    MentorFit,
    MentorNetMethod,
    batch_percentile,
    clean_subset,
    dropout_rate,
    example_dropout,
    fit_mentor,
    mentor_features,
    mentor_logits,
    pd_weights,
    update_threshold,
)

TIMING = {"seconds", "images_per_s"}
LEARNS: dict[str, Any] = {
    "method": "mentornet",
    "data.train_subset": 600,
    "baseline.epochs": 8,
    "baseline.lr": 3e-3,
    "batch_size": 64,
    "eval_every": "phase",
}


def test_pd_weight_is_one_exactly_for_losses_under_the_threshold() -> None:
    loss = torch.tensor([0.1, 0.5, 0.7, 0.7001, 2.0, 9.0])
    threshold = torch.tensor(0.7)
    curriculum = {"burn_in": 0.2, "linear_from": 0.9, "gamma": 1.0}
    assert pd_weights(loss, threshold, progress=0.5, **curriculum).tolist() == [1, 1, 1, 0, 0, 0]
    assert pd_weights(loss, threshold, progress=0.1, **curriculum).tolist() == [1] * 6  # burn-in
    tail = pd_weights(loss, threshold, progress=0.95, **curriculum)  # clip(1 − (ℓ − λ)/γ, 0, 1)
    assert tail.tolist() == pytest.approx([1, 1, 1, 1 - 0.0001, 0, 0], abs=1e-6)
    half = pd_weights(torch.tensor([1.2]), threshold, progress=0.95, burn_in=0.2, linear_from=0.9, gamma=2.0)
    assert half.item() == pytest.approx(1 - 0.5 / 2)


def test_the_threshold_follows_the_moving_average_of_the_batch_percentile() -> None:
    values = torch.tensor([5.0, 1.0, 9.0, 3.0, 7.0, 0.0, 8.0, 2.0, 6.0, 4.0])  # 0..9 shuffled
    assert batch_percentile(values, 0.75).item() == 7.0  # rank round(0.75 · 9) = 7 of the sorted batch
    assert batch_percentile(values, 0.5).item() == 4.0  # round(4.5) = 4: round half to even
    assert batch_percentile(values, 1.0).item() == 9.0
    ema = torch.zeros(())
    update_threshold(ema, torch.tensor(2.0), decay=0.5)
    assert ema.item() == 1.0  # 0.5·0 + 0.5·2
    update_threshold(ema, torch.tensor(4.0), decay=0.5)
    assert ema.item() == 2.5  # 0.5·1 + 0.5·4
    update_threshold(ema, torch.tensor(10.0), decay=0.9)
    assert ema.item() == pytest.approx(0.9 * 2.5 + 0.1 * 10.0)


def test_the_batch_function_updates_the_threshold_before_it_weighs(digits_npz: Path) -> None:
    """One batch on real digits: λ moves by the formula from the batch's own percentile, and the loss is
    Σ 1[ℓ ≤ λ]·ℓ / B with the λ after the update (no drop-out, no burn-in)."""
    overrides = {
        "mentornet.burn_in": 0.0,
        "mentornet.dropout_rates": (0.0,),
        "mentornet.dropout_until": (1.0,),
    }
    cfg = digits_config(digits_npz, method="mentornet", **overrides)
    ctx = digits_context(cfg)
    state = TrainState()
    MentorNetMethod().init_state(ctx, state)
    ema = torch.full((), 0.4)
    idx = torch.arange(32)
    out = MentorNetMethod.loss_fn(ctx, state, ema)(idx, derived_generator(7), FIRST_BATCH)
    with torch.no_grad():  # the same batch again: same augmentation stream, train-mode BatchNorm
        x = ctx.augmenter.weak(ctx.train_images[idx], derived_generator(7))
        loss = losses.cross_entropy(ctx.model(x), ctx.noisy_labels[idx])
    expected = 0.5 * 0.4 + 0.5 * batch_percentile(loss, 0.75)
    assert ema.item() == pytest.approx(expected.item(), rel=1e-5)
    kept = loss <= ema
    assert out.loss.item() == pytest.approx((loss * kept).sum().item() / 32, rel=1e-4)
    assert out.metrics["weight"].item() == kept.sum().item()


def test_example_dropout_keeps_the_floor_share_and_replays() -> None:
    v = torch.full((10,), 0.5)
    kept = example_dropout(v, 0.25, derived_generator(1))
    assert (kept > 0).sum().item() == 7 and set(kept.tolist()) == {0.0, 0.5}  # ⌊10 · 0.75⌋
    assert torch.equal(kept, example_dropout(v, 0.25, derived_generator(1)))
    assert [dropout_rate(t, (0.5, 0.05), (0.17, 1.0)) for t in (0.0, 0.169, 0.17, 0.99)] == [
        0.5,
        0.5,
        0.05,
        0.05,
    ]


def test_the_dd_mentor_learns_to_down_weight_a_planted_noisy_subset() -> None:
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(300, generator=gen) * 1.0  # small losses: right labels
    noisy = 2.0 + torch.rand(100, generator=gen) * 3.0  # large losses: wrong labels
    loss = torch.cat([clean, noisy])
    target = torch.cat([torch.ones(300), torch.zeros(100)])
    threshold = batch_percentile(loss, 0.75)
    params = fit_mentor(
        mentor_features(loss, threshold),
        target,
        hidden=20,
        fit=MentorFit(steps=200, lr=0.1, grad_clip=5.0),
        generator=derived_generator(3),
    )
    v = torch.sigmoid(mentor_logits(params, mentor_features(loss, threshold)))
    assert v[:300].min() > 0.9 and v[300:].max() < 0.1
    fresh = torch.tensor([0.3, 4.0])  # unseen losses on either side
    assert torch.sigmoid(mentor_logits(params, mentor_features(fresh, threshold))).tolist() == pytest.approx(
        [1, 0], abs=0.1
    )


def test_the_clean_subset_is_seeded_and_balanced_over_the_noisy_classes() -> None:
    noisy = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    subset = clean_subset(noisy, 0.1, derived_generator(5))
    assert torch.bincount(noisy[subset]).tolist() == [5, 3, 2]
    assert torch.equal(subset, clean_subset(noisy, 0.1, derived_generator(5)))
    assert len(set(subset.tolist())) == 10


def test_bad_settings_are_refused(digits_npz: Path) -> None:
    def refused(match: str, **overrides: Any) -> None:
        with pytest.raises(UserError, match=match):
            validate(digits_config(digits_npz, method="mentornet", **overrides), methods=method_names())

    refused(r"mentornet\.percentile must lie in \(0, 1\]", **{"mentornet.percentile": 0.0})
    refused(r"mentornet\.ema_decay must lie in \[0, 1\)", **{"mentornet.ema_decay": 1.0})
    refused(r"mentornet\.clean_fraction must lie in \[0, 1\)", **{"mentornet.clean_fraction": 1.0})
    refused("need one entry each", **{"mentornet.dropout_rates": (0.5,)})
    refused("end at 1.0", **{"mentornet.dropout_until": (0.5, 0.9)})


@pytest.fixture(scope="module")
def record(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_mentornet_pd_learns_and_weighs_wrong_labels_less(record: dict[str, Any]) -> None:
    history = json.loads(record["history_json"])
    assert record["test_acc"] > 0.5  # ten classes: chance is 0.1
    assert [h["dropout_rate"] for h in history[:2]] == [0.5, 0.5] and history[-1]["dropout_rate"] == 0.05
    last = history[-1]
    assert last["weight_wrong"] < last["weight_right"] - 0.1
    assert last["loss_threshold"] > 0 and "clean_subset_size" not in last  # PD reads no clean label


def test_dd_resumed_across_its_mentor_fit_matches_an_uninterrupted_run(
    digits_npz: Path, tmp_path: Path
) -> None:
    short = LEARNS | {"data.train_subset": 300, "baseline.epochs": 3, "mentornet.clean_fraction": 0.2}
    short |= {"mentornet.burn_in": 0.4}  # the mentor is fitted at the start of epoch 2 (2/3 > 0.4 ≥ 1/3)
    cfg = digits_config(digits_npz, **short)
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False).record
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, fail_at_step=2)
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False)
    assert out.resumed

    def comparable(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(r["history_json"])]

    assert comparable(out.record) == comparable(whole)
    history = comparable(whole)
    sizes = {h["clean_subset_size"] for h in history}  # revealed, and recorded every epoch
    assert len(sizes) == 1 and 55 <= sizes.pop() <= 65  # 20 % of 300, rounded within each noisy class
    fitted = [h for h in history if "mentor_fit_accuracy" in h]
    assert [h["epoch"] for h in fitted] == [2]
    assert fitted[0]["mentor_weight_wrong"] < fitted[0]["mentor_weight_right"]
    assert json.loads(whole["config_json"])["mentornet"]["clean_fraction"] == 0.2


def test_state_keys_survive_a_checkpoint_round_trip(digits_npz: Path, tmp_path: Path) -> None:
    """Everything MentorNet keeps loads under `weights_only=True`."""
    from noisylab.train.runtime import load_payload, save_payload

    cfg = digits_config(digits_npz, method="mentornet", **{"mentornet.clean_fraction": 0.1})
    ctx = digits_context(cfg)
    state = TrainState()
    MentorNetMethod().init_state(ctx, state)
    state.extra[MENTOR_KEY] = fit_mentor(
        torch.rand(8, 2), torch.ones(8), hidden=4, fit=MentorFit(2, 0.1, 5.0), generator=derived_generator(0)
    )
    save_payload({"fingerprint": "x", "state": state.to_dict()}, tmp_path / "s.pt")
    extra = load_payload(tmp_path / "s.pt")["state"]["extra"]
    assert set(extra) == {EMA_KEY, SUBSET_KEY, MENTOR_KEY} and 35 <= len(extra[SUBSET_KEY]) <= 45  # ~10 %
