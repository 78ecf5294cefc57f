from __future__ import annotations

import pickle

import pytest

from noisylab.config.profiles import PROFILES, make_config
from noisylab.config.run import RunConfig, field_paths, parse_assignment, validate, with_overrides
from noisylab.errors import UserError

METHODS = ("paper", "ce")


def test_defaults_are_the_report_numbers() -> None:
    cfg = RunConfig()
    assert cfg.pretrain.epochs == 30
    assert (cfg.warmup.epochs, cfg.warmup.lr, cfg.warmup.weight_decay) == (5, 1e-4, 0.03)
    assert cfg.refine.iterations == 4
    assert cfg.refine.epochs == (4, 7, 7, 7)
    assert cfg.refine.stages == ((2, 3, 4), (2, 5, 7), (2, 5, 7), (2, 5, 7))
    assert cfg.refine.lrs == (1e-4, 1e-5, 1e-5, 1e-6)
    assert cfg.refine.threshold == 1.0
    assert cfg.refine.copies == 2
    assert cfg.loss.main == "swce" and cfg.loss.swce_detach
    validate(cfg, methods=METHODS)


def test_the_noise_is_parsed_once_per_config_and_never_saved() -> None:
    cfg = with_overrides(RunConfig(), {"data.noise": "sym:0.25"})
    spec = cfg.data.noise_spec
    assert (spec.kind, spec.rate) == ("symmetric", 0.25) and cfg.data.noise_spec is spec
    assert "noise_spec" not in cfg.to_dict()["data"]
    assert cfg.fingerprint() == with_overrides(RunConfig(), {"data.noise": "sym:0.25"}).fingerprint()
    assert pickle.loads(pickle.dumps(cfg)).data.noise_spec == spec  # as Ray hands it to workers
    assert with_overrides(cfg, {"data.noise": "none"}).data.noise_spec.kind == "none"  # a new config


def test_overrides_coerce_text_to_field_types() -> None:
    cfg = with_overrides(
        RunConfig(),
        dict(
            [
                parse_assignment("refine.threshold=0.25"),
                parse_assignment("refine.stages=[[1,2],[3]]"),
                parse_assignment("refine.iterations=2"),
                parse_assignment("refine.epochs=(2, 3)"),
                parse_assignment("refine.lrs=[1e-3, 1e-4]"),
                parse_assignment("loss.swce_detach=false"),
                parse_assignment("data.train_subset=none"),
            ]
        ),
    )
    assert cfg.refine.threshold == 0.25
    assert cfg.refine.stages == ((1, 2), (3,))
    assert cfg.refine.epochs == (2, 3)
    assert cfg.loss.swce_detach is False
    assert cfg.data.train_subset is None
    validate(cfg, methods=METHODS)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("refine.treshold", "1", "unknown config field 'refine.treshold'"),
        ("refine.threshold", "high", "expects float"),
        ("refine.epochs", "[1.5]", "expects a list of int"),
        ("loss.main", "hinge", "one of swce, ce, focal"),
        ("seed", "1.5", "expects int"),
    ],
)
def test_bad_overrides_name_the_field(path: str, value: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        with_overrides(RunConfig(), {path: value})


def test_a_misspelt_leaf_suggests_the_real_path() -> None:
    with pytest.raises(UserError, match=r"did you mean `refine\.threshold`"):
        with_overrides(RunConfig(), {"threshold": 0.5})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"refine.stages": ((2, 3, 5), (2, 5, 7), (2, 5, 7), (2, 5, 7))}, r"outside its 4 epochs"),
        ({"refine.stages": ((3, 2, 4), (2, 5, 7), (2, 5, 7), (2, 5, 7))}, "must be increasing"),
        ({"refine.iterations": 3}, "give one per iteration"),
        ({"method": "magic"}, "unknown method 'magic'"),
        ({"batch_size": 1}, "batch_size must be"),
        ({"refine.threshold": 0.0}, "threshold must be > 0"),
        ({"data.noise": "idn:1.5"}, r"outside \[0, 1\)"),
        ({"data.noise": "idn:-0.1"}, r"outside \[0, 1\)"),
        ({"data.noise": "gaussian:0.2"}, "gaussian"),
    ],
)
def test_validation_refuses_inconsistent_configs(overrides: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        validate(with_overrides(RunConfig(), overrides), methods=METHODS)


def test_fingerprint_tracks_every_field_and_round_trips() -> None:
    a = RunConfig()
    b = with_overrides(a, {"refine.threshold": 0.9})
    assert a.fingerprint() != b.fingerprint()
    assert RunConfig.from_dict(b.to_dict()) == b
    assert RunConfig.from_dict(b.to_dict()).fingerprint() == b.fingerprint()


def test_profiles_keep_every_phase_and_name_themselves() -> None:
    for name in PROFILES:
        cfg = make_config(name)
        validate(cfg, methods=METHODS)
        assert cfg.profile == name
        assert cfg.pretrain.epochs >= 1 and cfg.warmup.epochs >= 1 and cfg.refine.iterations >= 1
    cpu = make_config("cpu")
    report = RunConfig().refine
    assert (cpu.refine.epochs, cpu.refine.stages) == (report.epochs, report.stages)  # the report's schedule
    assert cpu.refine.lrs == pytest.approx(tuple(10 * lr for lr in report.lrs))
    with pytest.raises(UserError, match="unknown profile"):
        make_config("laptop")


def test_field_paths_cover_nested_configs() -> None:
    paths = field_paths()
    assert paths["refine.threshold"] is float
    assert "data.noise" in paths and "model.width" in paths and "seed" in paths
