"""The pipeline on DivideMix (`paper_dividemix`) and C2D: one SimCLR encoder in both networks, relabelled
labels reaching the division and MixMatch, the two readings of NCE+MAE, crash and resume, and the
pre-training cache that lets a study share one pre-training per seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import FIRST_BATCH, digits_config, digits_context
from torch import Tensor, nn

from noisylab.config.run import validate
from noisylab.data.prepare import cache_dir
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.train import losses
from noisylab.train.engine import BatchOut, BatchPlace, Step, train_epoch
from noisylab.train.models import TwinNetwork
from noisylab.train.runtime import PretrainCache, TrainState, load_payload, make_optimizer, pretrain_cache_key
from noisylab.train.twins import ensemble_log_probs
from noisylab.trainables import dividemix, get_method, method_names
from noisylab.trainables.paper import select_and_relabel

TIMING = {"seconds", "images_per_s", "pretrain_cached"}
# Every phase of paper_dividemix in a few seconds: 1 SimCLR epoch, 1 warm-up epoch, 2 iterations of 2.
SHORT: dict[str, Any] = {
    "data.train_subset": 200,
    "batch_size": 50,
    "dividemix.lambda_u": 25.0,  # exercise the unlabelled term too
    "refine.mae_scale": "apl",  # labels change at the first consensus (see the planted test below)
}


def comparable(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in json.loads(record["history_json"])]


# ---- one SimCLR encoder, two networks -----------------------------------------------------------


@pytest.mark.parametrize("method", ["paper_dividemix", "c2d"])
def test_both_networks_start_from_one_simclr_encoder_with_their_own_heads(
    digits_npz: Path, method: str
) -> None:
    cfg = digits_config(digits_npz, method=method, **{"data.train_subset": 200, "baseline.epochs": 3})
    validate(cfg, methods=method_names())
    ctx = digits_context(cfg)
    twin = ctx.net
    assert isinstance(twin, TwinNetwork)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in twin.members]
    trainable = get_method(method)
    state = TrainState()
    trainable.init_state(ctx, state)
    (step,) = [s for s in trainable.schedule(cfg) if s.phase == "pretrain"]  # the tiny profile: 1 epoch
    optimizer = make_optimizer(twin, step, cfg.optimizer, momentum=cfg.sgd_momentum)
    trainable.run_step(step, 0, ctx, state, optimizer)

    first, second = (m.state_dict() for m in twin.members)
    for key in first:
        if key.startswith(("backbone.", "projector.")):
            assert torch.equal(first[key], second[key]), key  # one encoder in both
    assert not torch.equal(first["head.weight"], second["head.weight"])  # two heads
    assert any(  # the encoder is the pre-trained one, not either member's initial weights
        not torch.equal(first[k], before[0][k]) for k in first if k.startswith("backbone.") and "conv" in k
    )
    for member, seed in ((0, cfg.seed), (1, cfg.seed + 2**31)):  # each head fresh from its own seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            expected = nn.Linear(twin.members[member].head.in_features, ctx.num_classes)
        assert torch.equal(twin.members[member].head.weight, expected.weight)


# ---- relabelled labels reach the division and MixMatch -------------------------------------------


def test_the_division_and_mixmatch_use_the_current_labels(
    digits_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = digits_config(digits_npz, method="paper_dividemix", **{"data.train_subset": 60, "batch_size": 20})
    ctx = digits_context(cfg)
    state = TrainState()
    get_method("paper_dividemix").init_state(ctx, state)
    assert state.labels is not None
    relabelled = state.labels.clone()
    relabelled[:10] = (relabelled[:10] + 1) % ctx.num_classes  # a planted consensus relabelling
    state.labels = relabelled
    seen: dict[str, Tensor] = {}
    real_scan = dividemix.member_losses

    def scan_spy(ctx_: Any, labels: Tensor, **kw: Any) -> Tensor:
        seen["gmm"] = labels
        return real_scan(ctx_, labels, **kw)

    def loss_spy(real: Any) -> Any:
        def spy(ctx_: Any, labels: Tensor, *a: Any, **kw: Any) -> Any:
            seen["mixmatch"] = labels
            return real(ctx_, labels, *a, **kw)

        return spy

    monkeypatch.setattr(dividemix, "member_losses", scan_spy)
    # Whichever layout the epoch takes (the official one unless a member's division is all or nothing).
    monkeypatch.setattr(dividemix, "mixmatch_loss", loss_spy(dividemix.mixmatch_loss))
    monkeypatch.setattr(dividemix, "labelled_pass_loss", loss_spy(dividemix.labelled_pass_loss))
    step = Step("refine", 1, 2, 1e-3, 0.0, iteration=1)
    optimizer = make_optimizer(ctx.net, step, cfg.optimizer, momentum=0.0)
    dividemix.divided_epoch(step, 0, ctx, state, optimizer, epochs_done=0, pseudo=state.pseudo, copies=2)
    assert torch.equal(seen["gmm"], relabelled) and torch.equal(seen["mixmatch"], relabelled)
    assert not torch.equal(relabelled, ctx.noisy_labels)


def test_mixmatch_trains_a_fully_labelled_batch_on_the_relabelled_targets(digits_npz: Path) -> None:
    # Every sample labelled with weight 1 and no mixing: the targets are the labels themselves, so the
    # step's loss is each member's cross entropy against the RELABELLED labels.
    cfg = digits_config(
        digits_npz,
        method="paper_dividemix",
        **{"data.train_subset": 60, "dividemix.alpha": 0.0, "dividemix.prior_weight": 0.0},
    )
    ctx = digits_context(cfg)
    net = ctx.net.train()
    assert isinstance(net, TwinNetwork)
    labels = ctx.noisy_labels.clone()
    labels[:8] = (labels[:8] + 3) % ctx.num_classes
    ones = torch.ones(60, 2)
    idx = torch.arange(16)

    def step_loss(y: Tensor) -> float:
        fn = dividemix.mixmatch_loss(ctx, y, ones, ones > 0, epochs_done=0)
        return float(fn(idx, torch.Generator().manual_seed(3), FIRST_BATCH).loss.detach())

    gen = torch.Generator().manual_seed(3)
    raw = ctx.train_images[idx]
    views = torch.cat([ctx.augmenter.weak(raw, gen), ctx.augmenter.weak(raw, gen)])  # (32, C, H, W)

    def by_hand(y: Tensor) -> float:
        return sum(float(F.cross_entropy(member(views), y[idx].repeat(2)).detach()) for member in net.members)

    assert step_loss(labels) == pytest.approx(by_hand(labels), rel=1e-6)
    assert step_loss(ctx.noisy_labels) == pytest.approx(by_hand(ctx.noisy_labels), rel=1e-6)
    assert by_hand(labels) != pytest.approx(by_hand(ctx.noisy_labels), rel=1e-4)  # an untrained net: close


def test_pseudo_labelled_samples_in_the_labelled_set_get_their_copies(digits_npz: Path) -> None:
    cfg = digits_config(digits_npz, method="paper_dividemix", **{"data.train_subset": 60})
    ctx = digits_context(cfg)
    labelled = torch.zeros(60, 2, dtype=torch.bool)
    labelled[:4, 0] = True  # labelled by member 1 only: still copied
    labelled[4:6] = True
    pseudo = torch.zeros(60, dtype=torch.bool)
    pseudo[[0, 4, 8]] = True  # 8 is pseudo-labelled but unlabelled by both: no copies
    fn = dividemix.mixmatch_loss(
        ctx, ctx.noisy_labels, labelled.float(), labelled, epochs_done=0, pseudo=pseudo, copies=2
    )
    images = fn(torch.arange(10), torch.Generator().manual_seed(0), FIRST_BATCH).images
    assert images == 2 * 2 * (10 + 2 * 2)  # members × views × (batch + copies of samples 0 and 4)


def test_swce_labelled_loss_weights_each_row_by_its_confidence_in_the_target() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0]])
    onehot = F.one_hot(torch.tensor([0, 2, 2]), 3).float()
    labelled = torch.tensor([True, True, False])
    lx, _ = dividemix.semi_supervised_loss(logits, onehot, labelled, labelled_loss="swce")
    swce = losses.swce(logits[:2], torch.tensor([0, 2]))  # one-hot targets: exactly SWCE
    assert float(lx) == pytest.approx(float(swce.mean()))
    plain, _ = dividemix.semi_supervised_loss(logits, onehot, labelled)
    assert float(lx) < float(plain)  # weights p_y < 1


# ---- the two readings of NCE + MAE ---------------------------------------------------------------


class _Table(nn.Module):
    """A 'network' whose logits for the scanned batch are fixed: log-probabilities of planted rows."""

    def __init__(self, probs: Tensor) -> None:
        super().__init__()
        self.log_probs = nn.Parameter(probs.log(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.log_probs[: x.shape[0]]  # (B, K): the scan sends the whole set as one batch


def _planted_probs() -> Tensor:
    """Three samples of 10 classes, all labelled 0: sure and right; p_0 = 0.3 with 0.6 on class 1
    (a moderate disagreement); p_0 = 0.02 with 0.9 on class 2 (a strong one)."""
    rows = []
    for p_label, other, p_other in ((0.9, 1, 0.05), (0.3, 1, 0.6), (0.02, 2, 0.9)):
        row = torch.full((10,), (1.0 - p_label - p_other) / 8)
        row[0], row[other] = p_label, p_other
        rows.append(row)
    return torch.stack(rows)


@pytest.mark.parametrize(("scale", "selected", "labels"), [("report", 1, [0, 0, 0]), ("apl", 2, [0, 1, 0])])
def test_only_the_apl_scale_relabels_a_moderate_disagreement(
    digits_npz: Path, scale: str, selected: int, labels: list[int]
) -> None:
    cfg = digits_config(digits_npz, **{"data.train_subset": 60, "refine.mae_scale": scale})
    ctx = digits_context(cfg)
    probs = _planted_probs()
    ctx.net = _Table(probs)
    ctx.train_images = ctx.train_images[:3]
    ctx.clean_labels = torch.tensor([0, 1, 2])
    state = TrainState(labels=torch.zeros(3, dtype=torch.int64), pseudo=torch.zeros(3, dtype=torch.bool))
    # Report scale: NCE + 2(1 − p_y) < 1 needs p_y > 1/2 (NCE ≥ 0), so only sample 0 is selected, and
    # its prediction is its label. APL scale: NCE + (1 − p_y) < 1 also selects sample 1 (p_y = 0.3,
    # NCE ≈ 0.03), which takes its prediction, class 1; sample 2 (p_y = 0.02) stays out of both.
    metrics = select_and_relabel(Step("refine", 1, 1, 1e-3, 0.0, iteration=1, stage=1), ctx, state)
    assert metrics["selected_size"] == selected
    assert state.labels is not None and state.labels.tolist() == labels
    assert metrics["relabelled"] == selected - 1
    assert state.pseudo is not None and state.pseudo.tolist() == [True, selected == 2, False]


def test_the_ensemble_scores_the_members_mean_softmax() -> None:
    logits = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    mean = torch.softmax(logits, dim=-1).mean(dim=0)
    assert torch.allclose(ensemble_log_probs(logits).exp(), mean, atol=1e-6)


# ---- crash and resume ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "extra", "crash_before", "phases"),
    [
        # pretrain, warm-up, iteration 1 (2 epochs, relabels at its end), iteration 2: crash in iteration 2
        ("paper_dividemix", {}, 4, ["pretrain", "warmup"] + ["refine"] * 4),
        # pretrain, 1 clipped warm-up epoch, 2 DivideMix epochs: crash before the second
        ("c2d", {"baseline.epochs": 3, "c2d.warmup_epochs": 1}, 3, ["pretrain", "warmup", "train", "train"]),
    ],
)
def test_resume_after_a_crash_equals_an_uninterrupted_run(
    digits_npz: Path, tmp_path: Path, method: str, extra: dict[str, Any], crash_before: int, phases: list[str]
) -> None:
    cfg = digits_config(digits_npz, method=method, **(SHORT | extra))
    whole = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False, pretrain_cache=False).record
    assert [h["phase"] for h in json.loads(whole["history_json"])] == phases
    with pytest.raises(RuntimeError, match="injected failure"):
        execute(
            cfg,
            storage=tmp_path / "b",
            use_ray=False,
            progress=False,
            fail_at_step=crash_before,
            pretrain_cache=False,
        )
    out = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False, pretrain_cache=False)
    assert out.resumed
    assert comparable(out.record) == comparable(whole)
    assert out.record["final_labels_sha256"] == whole["final_labels_sha256"]
    if method == "paper_dividemix":
        first = next(h for h in json.loads(whole["history_json"]) if "relabelled" in h)
        assert first["relabelled"] > 0  # the crash came after labels had changed


# ---- the pre-training cache ----------------------------------------------------------------------


def test_a_reused_pretraining_replays_exactly(digits_npz: Path, tmp_path: Path) -> None:
    cfg = digits_config(digits_npz, **{"data.train_subset": 200, "pretrain.epochs": 2})
    alone = execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False, pretrain_cache=False).record
    stored = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False).record
    reused = execute(cfg, storage=tmp_path / "c", use_ray=False, progress=False).record
    history = json.loads(reused["history_json"])
    assert [h.get("pretrain_cached", False) for h in history[:3]] == [True, True, False]
    assert comparable(alone) == comparable(stored) == comparable(reused)
    assert reused["final_labels_sha256"] == alone["final_labels_sha256"]
    # its wall time still counts the pre-training it reused
    assert reused["wall_seconds"] >= sum(h["seconds"] for h in history[:2])


def _damaged(entry: dict[str, Any], damage: str) -> dict[str, Any]:
    """A copy of a good cache entry, wrong in one way."""
    entry = dict(entry) | {"model": dict(entry["model"]), "rng": dict(entry["rng"])}
    first = next(iter(entry["model"]))
    if damage == "shape":
        entry["model"][first] = torch.zeros(2 * entry["model"][first].shape[0], 1, 3, 3)
    elif damage == "dtype":
        entry["model"][first] = entry["model"][first].double()
    elif damage == "nan":
        entry["model"][first] = torch.full_like(entry["model"][first], float("nan"))
    elif damage == "no history":
        del entry["history"]
    elif damage == "key":
        entry["fingerprint"] = "0" * 20
    elif damage == "rng":
        entry["rng"]["numpy"] = [1, 2, 3]
    return entry


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("bytes", "it is not a readable checkpoint"),
        ("shape", "backbone.stem.conv.weight is float32 [16, 1, 3, 3], the network's float32 [8, 1, 3, 3]"),
        ("dtype", "backbone.stem.conv.weight is float64 [8, 1, 3, 3], the network's float32 [8, 1, 3, 3]"),
        ("nan", "backbone.stem.conv.weight holds NaN or infinite values"),
        ("no history", "it lacks history"),
        ("key", "it holds the key '00000000000000000000', not '{key}'"),
        ("rng", "its numpy RNG state is not 624 32-bit words"),
    ],
)
def test_a_damaged_cache_entry_is_set_aside_and_computed_again(
    digits_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, problem: str
) -> None:
    cfg = digits_config(digits_npz, **{"data.train_subset": 200, "pretrain.epochs": 1})
    cache = PretrainCache(cache_dir() / "pretrain", str(pretrain_cache_key(cfg, networks=1, world_size=1)))
    execute(cfg, storage=tmp_path / "a", use_ray=False, progress=False)  # stores the entry (or reuses it)
    good = load_payload(cache.path)
    if damage == "bytes":
        cache.path.write_bytes(b"not a checkpoint")
    else:
        torch.save(_damaged(good, damage), cache.path)
    damaged = cache.path.read_bytes()
    capsys.readouterr()

    record = execute(cfg, storage=tmp_path / "b", use_ray=False, progress=False).record
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and f"({problem.format(key=cache.key)})" in warnings[0], warnings
    assert "pre-training again" in warnings[0]
    assert not any(h.get("pretrain_cached") for h in json.loads(record["history_json"]))
    assert cache.path.with_name(cache.path.name + ".bad").read_bytes() == damaged  # kept for a look

    # The run stored its own entry in its place: the next run reuses it, without a warning.
    again = execute(cfg, storage=tmp_path / "c", use_ray=False, progress=False).record
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert json.loads(again["history_json"])[0]["pretrain_cached"] is True
    assert comparable(again) == comparable(record)


def test_the_cache_key_ignores_labels_and_method_but_not_seed_or_networks(digits_npz: Path) -> None:
    def key(over: dict[str, Any] | None = None, *, networks: int = 1, world_size: int = 1) -> str | None:
        cfg = digits_config(digits_npz, **(over or {}))
        return pretrain_cache_key(cfg, networks=networks, world_size=world_size)

    base = key()
    assert base is not None
    assert key({"data.noise": "idn:0.5"}) == base and key({"method": "paper_ce"}) == base
    assert key({"seed": 1}) != base and key(networks=2) != base
    assert key({"pretrain.epochs": 3}) != base and key({"data.train_subset": 300}) != base
    assert key({"pretrain.method": "byol"}) is None  # BYOL keeps a target network in the run's state
    assert key(world_size=2) is None  # every rank would need the same cache


# ---- small pieces ---------------------------------------------------------------------------------


def test_gradient_clipping_bounds_each_step() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False)
    start = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    x = torch.randn(8, 4)

    def batch_fn(idx: Tensor, gen: torch.Generator, at: BatchPlace) -> BatchOut:
        return BatchOut(1e4 * model(x[idx]).sum(), len(idx))

    train_epoch(
        model, optimizer, torch.arange(8), step=Step("train", 1, 1, 1.0, 0.0), batch_size=8,
        batch_fn=batch_fn, generator=torch.Generator(), grad_clip=1.0,
    )  # fmt: skip
    assert float((model.weight.detach() - start).norm()) == pytest.approx(1.0, rel=1e-4)  # lr 1, norm-1 step


def test_class_normalised_swce_gives_every_class_a_mean_weight_of_one() -> None:
    logits = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 0, 1])
    out = losses.swce_class_normalised(logits, y)
    p_y = torch.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    ce = F.cross_entropy(logits, y, reduction="none")
    for k in range(4):  # slow reference: the weight is p_y over its class's mean p_y
        rows = y == k
        assert torch.allclose(out[rows], p_y[rows] / p_y[rows].mean() * ce[rows], atol=1e-6)
        assert float((out[rows] / ce[rows]).mean()) == pytest.approx(1.0, abs=1e-5)
    same = torch.zeros(6, 3)  # equal confidences within each class: exactly cross entropy
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    plain_ce = F.cross_entropy(same, labels, reduction="none")
    assert torch.allclose(losses.swce_class_normalised(same, labels), plain_ce)
    logits.requires_grad_(True)  # the weights are constants: the gradient is the weighted CE gradient
    losses.swce_class_normalised(logits, y).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_mae_scales() -> None:
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    y = torch.tensor([0])
    p = float(torch.softmax(logits, dim=1)[0, 0])
    assert float(losses.mae(logits, y)) == pytest.approx(2 * (1 - p))  # Σ|p − q|, the report
    assert float(losses.mae(logits, y, scale=losses.MAE_APL_SCALE)) == pytest.approx(1 - p)  # APL's code
    l1 = F.l1_loss(torch.softmax(logits, 1), F.one_hot(y, 3).float(), reduction="sum")
    assert float(losses.mae(logits, y)) == pytest.approx(float(l1))


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"method": "c2d", "pretrain.method": "byol"}, "pretrain.method must be simclr or none"),
        ({"method": "paper_dividemix", "pretrain.method": "byol"}, "pretrain.method must be simclr or none"),
        ({"method": "c2d", "baseline.epochs": 5, "c2d.warmup_epochs": 5}, "leaves no DivideMix epoch"),
        ({"method": "c2d", "c2d.grad_clip": -1.0}, "c2d.grad_clip must be ≥ 0"),
    ],
)
def test_bad_settings_are_refused(digits_npz: Path, over: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        validate(digits_config(digits_npz, **over), methods=method_names())


def test_twin_methods_build_two_networks(digits_npz: Path) -> None:
    for method in ("paper_dividemix", "paper_dividemix_ce", "c2d"):
        ctx = digits_context(digits_config(digits_npz, method=method, **{"baseline.epochs": 3}))
        assert isinstance(ctx.net, TwinNetwork)


def test_methods_lists_every_method_with_its_network_count() -> None:
    from typer.testing import CliRunner

    from noisylab.cli import app

    result = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # off a terminal the table has no outer edge: "method │ networks │ what"
    rows = {line.split("│")[0].strip(): line for line in result.stdout.splitlines() if line.count("│") == 2}
    assert set(method_names()) <= set(rows)
    assert "│ 2 " in rows["paper_dividemix"] and "│ 2 " in rows["c2d"] and "│ 1 " in rows["paper_apl"]
    assert "refine.mae_scale=apl" in rows["paper_apl"]
