"""Each method's config section (noisylab.config.sections): its paper defaults resolved once, at the edge,
into the values the run uses; resolution idempotent and undone when what a rule reads changes; config.json
holding the resolved numbers; a saved config repeating its run. The checks' one-line refusals are in the
bad-input catalogue (test_bad_inputs.py) and the method's own tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import digits_config

from noisylab.config.fielddocs import describe_fields
from noisylab.config.files import load_config, read_overrides
from noisylab.config.profiles import make_config
from noisylab.config.run import (
    RunConfig,
    field_paths,
    load_config_json,
    resolve,
    unresolved,
    validate,
    with_overrides,
)
from noisylab.config.sections import SECTIONS, baseline, dividemix, forward
from noisylab.config.variants import VARIANTS, base_method
from noisylab.errors import UserError
from noisylab.noise import NoiseSpec
from noisylab.runner import CONFIG_FILE, execute
from noisylab.trainables import METHODS, get_method, method_names

# What each base method's rules fill under symmetric noise: the fields it reads whose default is a rule.
DIVIDEMIX_RULES = {"dividemix.lambda_u", "dividemix.confidence_penalty", "dividemix.loss_window"}
RESOLVED: dict[str, set[str]] = {
    "paper": set(),
    "ce": {"baseline.epochs"},
    "swce": {"baseline.epochs"},
    "focal": {"baseline.epochs"},
    "nce_mae": {"baseline.epochs"},
    "mixup": {"baseline.epochs"},
    "forward": {"baseline.epochs", "forward.estimate_epochs", "forward.train_epochs"},
    "coteaching": {"baseline.epochs", "coteaching.forget_rate"},
    "dividemix": {"baseline.epochs", "dividemix.warmup_epochs"} | DIVIDEMIX_RULES,
    "c2d": {"baseline.epochs"} | DIVIDEMIX_RULES,  # c2d warms up for c2d.warmup_epochs
    "paper_dividemix": DIVIDEMIX_RULES,  # the pipeline's schedule: no baseline budget
    "reweight": {"baseline.epochs", "forward.estimate_epochs", "forward.train_epochs"},  # forward's phases
    "decoupling": {"baseline.epochs"},
    "mentornet": {"baseline.epochs"},
    "selfie": {"baseline.epochs", "selfie.history", "selfie.noise_rate", "selfie.warmup_epochs"},
    "lsl": {"baseline.epochs"},
}


def _get(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


# ---- the registry -----------------------------------------------------------------------------------


def test_every_section_is_a_run_config_field_defined_in_its_own_module() -> None:
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    bases = {m for m in METHODS if m not in VARIANTS}
    for section in SECTIONS:
        assert section.name in fields, section.name
        cls = type(getattr(RunConfig(), section.name))
        assert cls.__module__ == f"noisylab.config.sections.{section.name}"
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert section.methods <= bases, f"{section.name}: methods that are no base method"
    assert set(RESOLVED) == bases, "a new method: say which fields its rules fill"


@pytest.mark.parametrize("method", method_names())
def test_a_method_gets_exactly_its_own_rules_and_its_trainable_reads_them(method: str) -> None:
    cfg = make_config("cpu", {"method": method, "data.noise": "sym:0.3"})
    assert set(cfg.resolved) == RESOLVED[base_method(method)]
    bare = unresolved(cfg)
    for path in field_paths():
        if path in cfg.resolved:
            assert _get(bare, path) is None and _get(cfg, path) is not None, path
        else:  # resolution touches nothing else: a section the method does not use keeps its None
            assert _get(bare, path) == _get(cfg, path), path
    assert get_method(method).schedule(cfg)  # reads plain values: an unresolved one would raise


@pytest.mark.parametrize("method", ["ce", "forward", "coteaching", "dividemix", "c2d", "paper_dividemix"])
def test_resolution_is_idempotent_and_validate_returns_it(method: str) -> None:
    cfg = make_config("tiny", {"method": method, "data.noise": "pair:0.4"})
    assert resolve(cfg) == cfg and resolve(resolve(unresolved(cfg))) == cfg
    assert validate(cfg, methods=method_names()) == cfg
    assert validate(unresolved(cfg), methods=method_names()) == cfg


# ---- the rules --------------------------------------------------------------------------------------


def test_the_baselines_budget_is_the_pipelines_supervised_epochs() -> None:
    assert baseline.baseline_epochs(make_config("gpu", {"method": "ce"})) == 5 + 4 + 7 + 7 + 7
    assert baseline.baseline_epochs(make_config("gpu", {"method": "ce", "warmup.epochs": 10})) == 35
    assert baseline.baseline_epochs(make_config("gpu", {"method": "ce", "baseline.epochs": 12})) == 12
    assert make_config("gpu", {"method": "paper"}).baseline.epochs is None  # the pipeline never reads it


def test_forward_splits_the_budget() -> None:
    def split(**overrides: Any) -> tuple[int, int]:
        return forward.forward_epochs(make_config("gpu", {"method": "forward"} | overrides))

    assert split(**{"baseline.epochs": 7}) == (3, 4)  # phase 1 the smaller half
    assert split(**{"baseline.epochs": 7, "forward.estimate_epochs": 2}) == (2, 5)
    assert split(**{"baseline.epochs": 7, "forward.train_epochs": 6}) == (1, 6)
    assert split(**{"forward.estimate_epochs": 2, "forward.train_epochs": 9}) == (2, 9)  # both given


def test_coteaching_forgets_at_the_nominal_noise_rate() -> None:
    def tau(noise: str) -> float | None:
        return make_config("gpu", {"method": "coteaching", "data.noise": noise}).coteaching.forget_rate

    assert [tau(n) for n in ("sym:0.3", "pair:0.45", "idn:0.2", "none")] == [0.3, 0.45, 0.2, 0.0]
    assert tau("file:labels.npy") is None  # no rate before the run: check asks for it


def test_dividemix_paper_defaults_as_rules() -> None:
    def lam(dataset: str, noise: str) -> float:
        return dividemix.paper_lambda_u(dataset, NoiseSpec.parse(noise))

    assert [lam("cifar10", f"sym:{r}") for r in (0.2, 0.5, 0.8, 0.9)] == [0, 25, 25, 50]
    assert [lam("cifar100", f"sym:{r}") for r in (0.2, 0.5, 0.8, 0.9)] == [25, 150, 150, 150]
    assert lam("cifar10", "pair:0.4") == 0 and lam("cifar100", "pair:0.4") == 150
    assert lam("fashion-mnist", "idn:0.3") == 0 and lam("fashion-mnist", "idn:0.4") == 25  # CIFAR-10's rule
    assert lam("cifar10", "sym:0.35") == 25 and lam("cifar10", "none") == 0  # ties go up

    def cfg(**overrides: Any) -> RunConfig:
        return make_config("gpu", {"method": "dividemix", "baseline.epochs": 30} | overrides)

    d = cfg().dividemix
    assert (d.warmup_epochs, d.lambda_u, d.loss_window, d.confidence_penalty) == (10, 0.0, 1, False)
    assert dividemix.warmup_epochs(cfg(**{"baseline.epochs": 6})) == 3  # capped at half the run
    assert dividemix.warmup_epochs(cfg(**{"data.dataset": "cifar100", "baseline.epochs": 300})) == 30
    assert dividemix.loss_window(cfg(**{"data.noise": "sym:0.9"})) == 5
    assert dividemix.lambda_u(cfg(**{"data.noise": "sym:0.9"})) == 50
    assert dividemix.confidence_penalty(cfg(**{"data.noise": "pair:0.4"}))
    assert cfg(**{"dividemix.lambda_u": 7.0}).dividemix.lambda_u == 7.0  # a given value wins
    file_noise = cfg(**{"data.noise": "file:labels.npy"}).dividemix
    assert file_noise.lambda_u is None and file_noise.loss_window == 1  # no rate: λ_u must be given
    # c2d and paper_dividemix warm up by their own settings: DivideMix's warm-up field stays unused
    for method in ("c2d", "paper_dividemix"):
        assert make_config("gpu", {"method": method}).dividemix.warmup_epochs is None


def test_a_resolved_baseline_of_no_epochs_names_the_fields_it_came_from() -> None:
    empty = {"refine.iterations": 0, "refine.epochs": [], "refine.stages": [], "refine.lrs": []}
    cfg = make_config("gpu", {"method": "ce", "warmup.epochs": 0} | empty)
    with pytest.raises(UserError, match=r"warmup\.epochs \+ sum\(refine\.epochs\) = 0"):
        validate(cfg, methods=method_names())


def test_a_trainable_refuses_a_config_that_skipped_resolution() -> None:
    with pytest.raises(RuntimeError, match=r"'baseline\.epochs' was never resolved"):
        get_method("ce").schedule(RunConfig(method="ce"))


# ---- changing a resolved config ---------------------------------------------------------------------


def test_the_rules_choose_again_when_what_they_read_changes() -> None:
    low = validate(
        make_config("tiny", {"method": "dividemix", "data.noise": "sym:0.2"}), methods=method_names()
    )
    assert (low.dividemix.lambda_u, low.dividemix.loss_window) == (0.0, 1)
    high = validate(
        RunConfig.from_dict(
            unresolved(low).to_dict() | {"data": low.to_dict()["data"] | {"noise": "sym:0.9"}}
        ),
        methods=method_names(),
    )
    assert (high.dividemix.lambda_u, high.dividemix.loss_window) == (50.0, 5)
    given = make_config("tiny", {"method": "dividemix", "dividemix.lambda_u": 7.0})
    assert "dividemix.lambda_u" not in given.resolved
    assert resolve(unresolved(given)).dividemix.lambda_u == 7.0  # a value the user gave stays theirs


def test_the_fingerprint_is_of_the_values_not_of_who_chose_them() -> None:
    chosen = make_config("tiny", {"method": "coteaching", "data.noise": "sym:0.3"})
    given = make_config(
        "tiny", {"method": "coteaching", "data.noise": "sym:0.3", "coteaching.forget_rate": 0.3}
    )
    assert chosen.resolved != given.resolved and chosen.fingerprint() == given.fingerprint()
    assert unresolved(chosen).fingerprint() != chosen.fingerprint()  # None is another config than 0.3


def test_a_saved_config_reads_back_resolved_old_or_new(tmp_path: Path) -> None:
    cfg = validate(
        make_config("tiny", {"method": "dividemix", "data.noise": "sym:0.5"}), methods=method_names()
    )
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(json.dumps(cfg.to_dict()))
    legacy = {k: v for k, v in unresolved(cfg).to_dict().items() if k != "resolved"}  # before resolution
    old.write_text(json.dumps(legacy))
    assert "dividemix.lambda_u" not in read_overrides(new)  # the rule's choice is read as unset
    for path in (new, old):
        assert load_config_json(path) == cfg
        assert load_config(path) == cfg
        assert load_config(path, data__noise="sym:0.9").dividemix.lambda_u == 50.0  # chosen again
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(cfg.to_dict() | {"resolved": "dividemix.lambda_u"}))
    with pytest.raises(UserError, match="'resolved' must be a list"):
        read_overrides(broken)


def test_the_resolved_list_is_noisylabs_to_write_not_a_setting() -> None:
    assert "resolved" not in field_paths() and "resolved" not in describe_fields()
    with pytest.raises(UserError, match="unknown config field 'resolved'"):
        with_overrides(RunConfig(), {"resolved": "[]"})


def test_a_saved_config_that_names_an_unknown_field_as_resolved_still_loads() -> None:
    cfg = make_config("gpu", {"method": "ce"})
    assert cfg.resolved == ("baseline.epochs",)
    stale = RunConfig.from_dict(cfg.to_dict() | {"resolved": ["baseline.epochs", "gone.field"]})
    assert resolve(unresolved(stale)) == cfg


# ---- real runs: config.json holds the values used, and repeats the run ------------------------------

TINY_RUN: dict[str, Any] = {"data.train_subset": 100, "data.test_subset": 50, "baseline.epochs": 2}


@pytest.mark.parametrize("method", ["ce", "forward", "coteaching", "dividemix"])
def test_config_json_holds_the_values_the_run_used_and_repeats_it(
    digits_npz: Path, tmp_path: Path, method: str
) -> None:
    cfg = digits_config(digits_npz, method=method, **TINY_RUN)
    first = execute(cfg, storage=tmp_path, use_ray=False, progress=False)
    saved = json.loads((first.directory / CONFIG_FILE).read_text())
    assert set(saved["resolved"]) == RESOLVED[method] - {"baseline.epochs"}  # the budget was given
    for path in RESOLVED[method]:
        section, name = path.split(".")
        assert saved[section][name] is not None, path
    by_method: dict[str, dict[str, dict[str, Any]]] = {
        "ce": {"baseline": {"epochs": 2}},
        "forward": {"forward": {"estimate_epochs": 1, "train_epochs": 1}},
        "coteaching": {"coteaching": {"forget_rate": 0.3}},  # the digits' sym:0.3
        "dividemix": {
            "dividemix": {"warmup_epochs": 1, "lambda_u": 0.0, "loss_window": 1, "confidence_penalty": False}
        },
    }
    for section, values in by_method[method].items():
        assert {k: saved[section][k] for k in values} == values
    assert json.loads(first.record["config_json"]) == saved  # the record holds the same config
    history = json.loads(first.record["history_json"])
    if method == "dividemix":
        assert [h["phase"] for h in history] == ["warmup", "train"]  # the resolved warm-up is what ran
        assert history[-1]["lambda_u"] == 0.0
    if method == "coteaching":
        assert history[-1]["forget_rate"] == pytest.approx(0.3 * 1 / 10)  # R(1) = τ·1/T_k
    # The saved config repeats the run: the same fingerprint, so it is shown, not trained again.
    again = execute(load_config(first.directory), storage=tmp_path, use_ray=False, progress=False)
    assert again.already_done and again.record["fingerprint"] == first.record["fingerprint"]
