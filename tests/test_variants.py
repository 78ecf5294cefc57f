"""Variants as method names (the report's, the ablation arms, the remedies): their defaults, the
user's overrides, and their records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import PIPELINE_LEARNS, digits_config

from noisylab.config.profiles import make_config
from noisylab.config.run import RunConfig, validate
from noisylab.config.variants import VARIANTS, base_method, variant_overrides
from noisylab.runner import execute
from noisylab.trainables import METHODS, get_method, method_names, method_networks
from noisylab.trainables.paper import PaperMethod
from noisylab.trainables.paper_dividemix import PaperDivideMixMethod

EXPECTED = {
    "paper_focal": ("loss", "main", "focal"),
    "paper_swce_focal": ("refine", "selection_loss", "swce_focal"),
    "paper_byol": ("pretrain", "method", "byol"),
    "paper_apl": ("refine", "mae_scale", "apl"),
    "paper_no_simclr": ("pretrain", "method", "none"),
    "paper_ce": ("loss", "main", "ce"),
    "paper_no_copies": ("refine", "copies", 0),
    "paper_dividemix_ce": ("paper_dividemix", "loss", "ce"),
    "paper_classnorm": ("loss", "swce_norm", "class"),
    "paper_cewarmup": ("warmup", "loss", "ce"),
}
BASES = {"paper_dividemix_ce": PaperDivideMixMethod}


def _setting(cfg: RunConfig, section: str, name: str) -> Any:
    return getattr(getattr(cfg, section), name)


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_make_config_applies_the_variant_and_keeps_its_name(variant: str) -> None:
    section, name, value = EXPECTED[variant]
    for profile in ("tiny", "cpu", "gpu"):
        cfg = validate(make_config(profile, {"method": variant}), methods=method_names())
        assert cfg.method == variant and _setting(cfg, section, name) == value
        assert cfg.profile == profile
    base = VARIANTS[variant].base
    assert _setting(make_config("tiny", {"method": base}), section, name) != value  # the base's own


def test_a_users_set_wins_over_the_variant() -> None:
    cfg = make_config("tiny", {"method": "paper_focal", "loss.main": "ce"})
    assert cfg.loss.main == "ce" and cfg.method == "paper_focal"
    cfg = make_config("tiny", {"method": "paper_byol", "pretrain.method": "none"})
    assert cfg.pretrain.method == "none"


def test_every_variant_is_its_base_method_under_its_own_name() -> None:
    assert set(VARIANTS) == set(EXPECTED) and set(VARIANTS) <= set(METHODS)
    for variant in VARIANTS:
        method = get_method(variant)
        assert isinstance(method, BASES.get(variant, PaperMethod)) and method.name == variant
        assert method_networks(variant) == method_networks(VARIANTS[variant].base)
        assert base_method(variant) == VARIANTS[variant].base
    assert base_method("ce") == "ce" and method_networks("paper_dividemix_ce") == 2
    assert variant_overrides("ce") == {} and variant_overrides("paper") == {}
    variant_overrides("paper_focal")["loss.main"] = "ce"  # a copy: the table itself stays as it is
    assert VARIANTS["paper_focal"].overrides == {"loss.main": "focal"}


LEARNS = PIPELINE_LEARNS


@pytest.mark.parametrize("variant", ["paper_focal", "paper_swce_focal"])
def test_variant_runs_learn_and_record_their_settings(digits_npz: Path, tmp_path: Path, variant: str) -> None:
    section, name, value = EXPECTED[variant]
    r = execute(
        digits_config(digits_npz, method=variant, **LEARNS), storage=tmp_path, use_ray=False, progress=False
    ).record
    assert r["method"] == variant and json.loads(r["config_json"])[section][name] == value
    history = json.loads(r["history_json"])
    warmup = [h["train_loss"] for h in history if h["phase"] == "warmup"]
    assert warmup[-1] < warmup[0]
    assert len(r["stages"]) == 4 and r["test_acc"] > 0.5  # ten classes: chance is 0.1
