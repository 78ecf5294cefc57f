"""The report's variants as method names: their defaults, the user's overrides, and their records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import PIPELINE_LEARNS, digits_config

from noisylab.config import RunConfig, validate
from noisylab.profiles import make_config
from noisylab.runner import execute
from noisylab.trainables import METHODS, get_method, method_names
from noisylab.trainables.paper import PaperMethod
from noisylab.variants import VARIANTS, variant_overrides

EXPECTED = {
    "paper_focal": ("loss", "main", "focal"),
    "paper_swce_focal": ("refine", "selection_loss", "swce_focal"),
    "paper_byol": ("pretrain", "method", "byol"),
}


def _setting(cfg: RunConfig, section: str, name: str) -> Any:
    return getattr(getattr(cfg, section), name)


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_make_config_applies_the_variant_and_keeps_its_name(variant: str) -> None:
    section, name, value = EXPECTED[variant]
    for profile in ("tiny", "cpu", "gpu"):
        cfg = validate(make_config(profile, {"method": variant}), methods=method_names())
        assert cfg.method == variant and _setting(cfg, section, name) == value
        assert cfg.profile == profile
    assert _setting(make_config("tiny", {"method": "paper"}), section, name) != value  # the pipeline's own


def test_a_users_set_wins_over_the_variant() -> None:
    cfg = make_config("tiny", {"method": "paper_focal", "loss.main": "ce"})
    assert cfg.loss.main == "ce" and cfg.method == "paper_focal"
    cfg = make_config("tiny", {"method": "paper_byol", "pretrain.method": "none"})
    assert cfg.pretrain.method == "none"


def test_every_variant_is_the_pipeline_under_its_own_name() -> None:
    assert set(VARIANTS) == set(EXPECTED) and set(VARIANTS) <= set(METHODS)
    for variant in VARIANTS:
        method = get_method(variant)
        assert isinstance(method, PaperMethod) and method.name == variant
    assert variant_overrides("ce") == {} and variant_overrides("paper") == {}
    variant_overrides("paper_focal")["loss.main"] = "ce"  # a copy: the table itself stays as it is
    assert VARIANTS["paper_focal"] == {"loss.main": "focal"}


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
