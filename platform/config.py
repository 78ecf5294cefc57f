"""One typed, frozen configuration for a run, checked once where input arrives.

Every number of the report's pipeline is a field here, so a sweep can move any of them by its dotted
path (`refine.threshold`, `warmup.lr`). Workers receive the `RunConfig` object itself, never a dict.

Defaults are the report's ("Improving Training For Noisy Labels"); where the report is silent the
choice is named in the field's comment. Profiles (`profiles.py`) shrink a run for a CPU without
dropping a phase.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from noisylab.errors import UserError

MainLoss = Literal["swce", "ce", "focal"]
SelectionLoss = Literal["nce_mae", "swce_focal"]
Stem = Literal["auto", "cifar", "imagenet"]
EvalEvery = Literal["epoch", "phase"]
Optimizer = Literal["adamw", "adam"]
PretrainMethod = Literal["simclr", "none"]


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion-mnist"
    root: str | None = None  # None: the dataset's default location (see noisylab.data.DEFAULT_ROOTS)
    image_size: int | None = None  # pixels; None keeps fixed-size datasets as they are
    train_subset: int | None = None  # samples, class-balanced, drawn with `subset_seed`; None = all
    test_subset: int | None = None
    subset_seed: int = 0  # fixed across run seeds so every seed sees the same images
    noise: str = "idn:0.3"  # NoiseSpec text: idn:τ | sym:r | pair:r | none | file:PATH[#key]
    crop_padding: int = 4  # pixels of reflect padding before the random crop of weak augmentation
    flip: bool = True  # random horizontal flips (turn off for digits and other chiral images)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet18"  # any timm model name; resnet18/resnet34 get the stem option below
    width: int = 64  # channels of the first stage (timm's ResNet default is 64); CPU profiles shrink it
    stem: Stem = "auto"  # auto: 3×3/stride-1/no max-pool (CIFAR stem) for images ≤ 64 px, else ImageNet
    proj_dim: int = 128  # SimCLR projection output (report silent; SimCLR's CIFAR value)


@dataclass(frozen=True)
class PretrainConfig:
    method: PretrainMethod = "simclr"
    epochs: int = 30
    lr: float = 1e-3  # Adam; report silent, a common SimCLR-with-Adam value
    weight_decay: float = 1e-6
    temperature: float = 0.5  # NT-Xent τ; report silent, SimCLR's CIFAR value


@dataclass(frozen=True)
class WarmupConfig:
    epochs: int = 5
    lr: float = 1e-4  # Adam
    weight_decay: float = 0.03  # Adam's L2 term, as the report states it


@dataclass(frozen=True)
class RefineConfig:
    iterations: int = 4
    epochs: tuple[int, ...] = (4, 7, 7, 7)  # per iteration
    stages: tuple[tuple[int, ...], ...] = ((2, 3, 4), (2, 5, 7), (2, 5, 7), (2, 5, 7))  # 1-based epochs
    lrs: tuple[float, ...] = (1e-4, 1e-5, 1e-5, 1e-6)  # Adam, per iteration
    weight_decay: float = 0.03
    threshold: float = 1.0  # selection-loss threshold: 1.0 for CIFAR, 0.25 for the medical sets
    selection_loss: SelectionLoss = "nce_mae"
    mae_weight: float = 1.0  # β in NCE + β·MAE, with MAE = Σ_c|p_c − q_c| = 2(1 − p_y) (report scale)
    copies: int = 2  # augmented copies of each pseudo-labelled sample added to its batch


@dataclass(frozen=True)
class LossConfig:
    main: MainLoss = "swce"  # loss of warm-up and refinement training
    swce_detach: bool = True  # stop-gradient on the weight p_y (see losses.swce for why)
    focal_gamma: float = 2.0


@dataclass(frozen=True)
class BaselineConfig:
    """Plain supervised training (`--method ce`): by default the same number of supervised epochs
    as the pipeline's warm-up plus refinement, from scratch."""

    epochs: int | None = None  # None: warmup.epochs + sum(refine.epochs)
    lr: float = 1e-3  # Adam; the setting of the published Fashion-MNIST CE anchors (Yao et al. 2021)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class RunConfig:
    method: str = "paper"
    seed: int = 0
    profile: str = "gpu"  # the name of the profile the run used; recorded in every result
    batch_size: int = 256  # global, split across workers
    eval_every: EvalEvery = "epoch"  # test-set evaluation after every epoch or only at phase ends
    # The report says "Adam, weight decay 0.03". As an L2 term inside Adam (torch's Adam), 0.03 outweighs
    # SWCE's small gradients (they are scaled by p_y) and stalls learning: on digits a 6-epoch SWCE
    # warm-up reached ~20 % test accuracy against ~65 % without decay. Decoupled decay (AdamW) applies
    # the same 0.03 as a shrink of lr·0.03 per step and trains; `adam` keeps the literal reading.
    optimizer: Optimizer = "adamw"
    workers: int = 1  # Ray Train workers; 0 runs the loop in-process (Train's local mode)
    use_gpu: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)

    # ---- derived -------------------------------------------------------------------------
    @property
    def baseline_epochs(self) -> int:
        if self.baseline.epochs is not None:
            return self.baseline.epochs
        return self.warmup.epochs + sum(self.refine.epochs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def fingerprint(self) -> str:
        """Hash of everything that changes what a run computes (all fields: workers split batches)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _build(cls, data, prefix="")


# ---- overrides by dotted path --------------------------------------------------------------

C = TypeVar("C")


def field_paths(cls: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted path and its type, e.g. {"refine.threshold": float, ...}."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(field_paths(tp, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def with_overrides(cfg: C, overrides: dict[str, Any]) -> C:
    """Return `cfg` with dotted-path fields replaced; values are coerced to the field's type.

    Unknown paths and values of the wrong type raise UserError naming the path.
    """
    paths = field_paths(type(cfg))
    for path, value in overrides.items():
        if path not in paths:
            close = [p for p in paths if p.split(".")[-1] == path.split(".")[-1]]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"unknown config field '{path}'{hint}; list them with `noisylab fields`")
        cfg = _set_path(cfg, path.split("."), _coerce(value, paths[path], path))
    return cfg


def _set_path(obj: Any, parts: list[str], value: Any) -> Any:
    if len(parts) == 1:
        return replace(obj, **{parts[0]: value})
    return replace(obj, **{parts[0]: _set_path(getattr(obj, parts[0]), parts[1:], value)})


def parse_assignment(text: str) -> tuple[str, Any]:
    """`refine.threshold=0.5` → ("refine.threshold", "0.5"); values stay text until coerced."""
    if "=" not in text:
        raise UserError(f"--set expects PATH=VALUE, got '{text}' (e.g. --set refine.threshold=0.5)")
    path, value = text.split("=", 1)
    return path.strip(), value.strip()


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Coerce text or JSON-ish values (from the CLI, a sweep, a saved record) to the field type."""
    try:
        return _coerce_inner(value, tp)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise UserError(f"config field '{path}' expects {_type_name(tp)}, got {value!r}") from None


def _coerce_inner(value: Any, tp: Any) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce_inner(value, inner[0])
    if origin is Literal:
        if value not in args:
            raise ValueError(value)
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = json.loads(value.replace("(", "[").replace(")", "]"))
        if not isinstance(value, (list, tuple)):
            raise TypeError(value)
        elem = args[0]
        return tuple(_coerce_inner(v, elem) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(value)
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    if tp is float:
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    raise TypeError(tp)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _build(cls: type[C], data: dict[str, Any], prefix: str) -> C:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key, value in data.items():
        if key not in names:
            raise UserError(f"unknown config field '{prefix}{key}' in a saved config")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{prefix}{key}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


# ---- validation ---------------------------------------------------------------------------


def validate(cfg: RunConfig, *, methods: tuple[str, ...]) -> RunConfig:
    """Check every cross-field rule once, at the edge; raise UserError with the fix."""
    if cfg.method not in methods:
        raise UserError(f"unknown method '{cfg.method}': choose one of {', '.join(methods)}")
    _positive("batch_size", cfg.batch_size, minimum=2)
    from noisylab.noise import NoiseSpec  # noise depends on config-free code only; parse checks rates

    NoiseSpec.parse(cfg.data.noise)
    if cfg.workers < 0:
        raise UserError(f"workers must be ≥ 0, got {cfg.workers}")
    if cfg.workers > 1 and cfg.batch_size < 2 * cfg.workers:
        raise UserError(f"batch_size {cfg.batch_size} is too small for {cfg.workers} workers")
    d = cfg.data
    for name, value in (("data.train_subset", d.train_subset), ("data.test_subset", d.test_subset)):
        if value is not None:
            _positive(name, value, minimum=2)
    if d.crop_padding < 0:
        raise UserError(f"data.crop_padding must be ≥ 0, got {d.crop_padding}")
    if d.image_size is not None:
        _positive("data.image_size", d.image_size, minimum=8)
    _positive("model.width", cfg.model.width, minimum=1)
    _positive("model.proj_dim", cfg.model.proj_dim, minimum=1)
    for name, value in (
        ("pretrain.epochs", cfg.pretrain.epochs),
        ("warmup.epochs", cfg.warmup.epochs),
    ):
        if value < 0:
            raise UserError(f"{name} must be ≥ 0, got {value}")
    for name, lr in (("pretrain.lr", cfg.pretrain.lr), ("warmup.lr", cfg.warmup.lr)):
        if not lr > 0:
            raise UserError(f"{name} must be > 0, got {lr}")
    if cfg.pretrain.temperature <= 0:
        raise UserError(f"pretrain.temperature must be > 0, got {cfg.pretrain.temperature}")
    _validate_refine(cfg.refine)
    if cfg.baseline.epochs is not None:
        _positive("baseline.epochs", cfg.baseline.epochs, minimum=1)
    if cfg.loss.focal_gamma < 0:
        raise UserError(f"loss.focal_gamma must be ≥ 0, got {cfg.loss.focal_gamma}")
    return cfg


def _validate_refine(r: RefineConfig) -> None:
    if r.iterations < 0:
        raise UserError(f"refine.iterations must be ≥ 0, got {r.iterations}")
    for name, seq in (("refine.epochs", r.epochs), ("refine.stages", r.stages), ("refine.lrs", r.lrs)):
        if len(seq) != r.iterations:
            raise UserError(
                f"{name} has {len(seq)} entries but refine.iterations is {r.iterations}: "
                "give one per iteration"
            )
    for i, (epochs, stages, lr) in enumerate(zip(r.epochs, r.stages, r.lrs, strict=True), start=1):
        if epochs < 1:
            raise UserError(f"refinement iteration {i} has {epochs} epochs; it needs at least 1")
        if not stages:
            raise UserError(f"refinement iteration {i} has no selection stage; give at least one epoch")
        if list(stages) != sorted(set(stages)):
            raise UserError(f"refinement iteration {i}: stages {list(stages)} must be increasing")
        if stages[0] < 1 or stages[-1] > epochs:
            raise UserError(
                f"refinement iteration {i}: stages {list(stages)} lie outside its {epochs} epochs "
                f"(stages are 1-based epoch numbers ≤ {epochs})"
            )
        if not lr > 0:
            raise UserError(f"refinement iteration {i}: learning rate must be > 0, got {lr}")
    if r.threshold <= 0:
        raise UserError(f"refine.threshold must be > 0, got {r.threshold}")
    if r.copies < 0:
        raise UserError(f"refine.copies must be ≥ 0, got {r.copies}")


def _positive(name: str, value: int, *, minimum: int) -> None:
    if value < minimum:
        raise UserError(f"{name} must be ≥ {minimum}, got {value}")


def load_config_json(path: Path) -> RunConfig:
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read the config {path}: {e}") from None
