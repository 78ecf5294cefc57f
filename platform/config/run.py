"""One typed, frozen configuration for a run, checked once where input arrives.

Every number of the report's pipeline is a field here, so a sweep can move any of them by its dotted
path (`refine.threshold`, `warmup.lr`). Workers receive the `RunConfig` object itself, never a dict.

Defaults are the report's ("Improving Training For Noisy Labels"); where the report is silent the
choice is named in the field's comment. Profiles (`profiles.py`) shrink a run for a CPU without
dropping a phase.

This module holds the sections every method shares (data, model, pre-training, warm-up, refinement,
losses) and the run's own settings. Each baseline's section, with its paper defaults, the rules that
resolve them and its checks, is a module of `noisylab.config.sections`; `resolve` applies those rules once, at
the edge (`validate`, `profiles.make_config`), so a config that reaches a run holds the values it uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

from noisylab.config.sections import SECTIONS
from noisylab.config.sections.baseline import BaselineConfig
from noisylab.config.sections.c2d import C2DConfig
from noisylab.config.sections.coteaching import CoteachingConfig
from noisylab.config.sections.decoupling import DecouplingConfig
from noisylab.config.sections.dividemix import DivideMixConfig
from noisylab.config.sections.forward import ForwardConfig
from noisylab.config.sections.lsl import LslConfig
from noisylab.config.sections.mentornet import MentorNetConfig
from noisylab.config.sections.mixup import MixupConfig
from noisylab.config.sections.paper_dividemix import PaperDivideMixConfig
from noisylab.config.sections.reweight import ReweightConfig
from noisylab.config.sections.rules import positive
from noisylab.config.sections.selfie import SelfieConfig
from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.noise import NoiseSpec

MainLoss = Literal["swce", "ce", "focal"]
SelectionLoss = Literal["nce_mae", "swce_focal"]
MaeScale = Literal["report", "apl"]
WarmupLoss = Literal["main", "ce"]
SwceNorm = Literal["none", "class"]
Stem = Literal["auto", "cifar", "imagenet"]
EvalEvery = Literal["epoch", "phase"]
Optimizer = Literal["adamw", "adam", "sgd"]
Precision = Literal["fp32", "bf16", "fp16"]
PretrainMethod = Literal["simclr", "byol", "none"]


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion-mnist"  # the format: one of noisylab.data.DATASETS (`run --help` lists them)
    root: str | None = None  # None: the dataset's default location (see noisylab.data.DEFAULT_ROOTS)
    name: str | None = None  # the dataset's name in reports; None: the .npz stem / folder name, or the format
    image_size: int | None = None  # pixels; None keeps the native size (folders of mixed sizes: 224)
    train_subset: int | None = None  # samples, class-balanced, drawn with `subset_seed`; None = all
    test_subset: int | None = None  # test samples, class-balanced (subset_seed + 1); None = all
    subset_seed: int = 0  # fixed across run seeds so every seed sees the same images
    noise: str = "idn:0.3"  # NoiseSpec text: idn:τ | sym:r | pair:r | none | file:PATH[#key]
    crop_padding: int = 4  # pixels of reflect padding before the random crop of weak augmentation
    flip: bool = True  # random horizontal flips (turn off for digits and other chiral images)
    # Out-of-fold runs (`noisylab labels RUN --folds K`): the training set is split into `folds` folds,
    # stratified by the given label and seeded by `seed`; the run trains on all but fold `holdout_fold`
    # (1-based) and writes that fold's class probabilities (heldout.parquet). None: the whole set trains.
    folds: int | None = None  # K: the folds of the training set (None: no fold is held out)
    holdout_fold: int | None = None  # the fold this run never trains on and scores, 1..K

    @cached_property
    def noise_spec(self) -> NoiseSpec:
        """`noise` parsed, once per config object: every reader (validation, data preparation, records,
        methods whose defaults follow the noise rate) shares it. Not a field, so it never enters the
        saved config or its fingerprint; a pickled config carries it to Ray workers."""
        # Imported here: noise pulls in numpy, and reading a config (the CLI's listings) should not.
        from noisylab.noise import NoiseSpec

        return NoiseSpec.parse(self.noise)


@dataclass(frozen=True)
class ModelConfig:
    # preact_resnet18/34 (DivideMix's PreAct ResNet at ≤ 64 px), resnet18/34 (timm's post-activation
    # ResNet; DivideMix's own ResNet34), or any other timm model name. The default is the network of
    # DivideMix, C2D, SSR and most of the report's Table II; on clean Fashion-MNIST it learns about as fast
    # as a plain PreAct ResNet-18 and as timm's resnet18 without zero-initialised BN (BENCHMARKS.md,
    # "Which network").
    name: str = "preact_resnet18"
    width: int = 64  # channels of the first stage (64 in every ResNet-18/34); CPU profiles shrink it
    stem: Stem = "auto"  # auto: 3×3/stride-1/no max-pool (CIFAR stem) for images ≤ 64 px, else ImageNet
    # Start each residual branch at zero (timm's ImageNet default: the last BN weight of a block, the last
    # conv of a pre-activation block), so every block begins as the identity. A large-batch ImageNet trick
    # (Goyal et al. 2017): at the 10-30-epoch budgets of CPU runs it costs about ten points of accuracy
    # (BENCHMARKS.md, "Which network"), and the reference codes of the noisy-label field do not use it.
    zero_init_last: bool = False
    proj_dim: int = 128  # SimCLR projection output (report silent; SimCLR's CIFAR value)
    # NHWC memory layout of the network and of every batch: faster convolutions on GPUs with tensor
    # cores (with bf16/fp16); the `gpu` profile turns it on. Results match NCHW up to rounding.
    channels_last: bool = False
    # torch.compile the network that trains (the bare one still holds the weights and checkpoints). The
    # first epochs pay the compilation (minutes on a CPU); worth it for long GPU runs.
    compile: bool = False


@dataclass(frozen=True)
class PretrainConfig:
    method: PretrainMethod = "simclr"  # self-supervised pre-training: SimCLR, BYOL, or none
    epochs: int = 30  # pre-training epochs (report: 30)
    lr: float = 1e-3  # Adam; report silent, a common SimCLR-with-Adam value
    weight_decay: float = 1e-6  # pre-training optimiser's weight decay (report silent)
    temperature: float = 0.5  # NT-Xent τ; report silent, SimCLR's CIFAR value
    # BYOL (Grill et al. 2020, §3.2): the target is an EMA of the online network with rate
    # τ_k = τ_final − (τ_final − τ_base)·(cos(πk/K) + 1)/2 over the K optimiser steps of pre-training.
    byol_tau: float = 0.996  # τ_base, BYOL's value
    byol_tau_final: float = 1.0  # BYOL raises τ to 1; set it equal to byol_tau for a constant rate


@dataclass(frozen=True)
class WarmupConfig:
    epochs: int = 5  # warm-up epochs with the main loss (report: 5)
    lr: float = 1e-4  # Adam
    weight_decay: float = 0.03  # Adam's L2 term, as the report states it
    # main: warm up with `loss.main` (the report: SWCE). ce: plain cross entropy, so every class is learnt
    # before SWCE's confidence weights start (a remedy for SWCE starving slow classes; not the report's).
    loss: WarmupLoss = "main"


@dataclass(frozen=True)
class RefineConfig:
    iterations: int = 4  # refinement iterations, each ending in a consensus relabelling (report: 4)
    epochs: tuple[int, ...] = (4, 7, 7, 7)  # per iteration
    stages: tuple[tuple[int, ...], ...] = ((2, 3, 4), (2, 5, 7), (2, 5, 7), (2, 5, 7))  # 1-based epochs
    lrs: tuple[float, ...] = (1e-4, 1e-5, 1e-5, 1e-6)  # Adam, per iteration
    weight_decay: float = 0.03  # refinement optimiser's weight decay (report: 0.03)
    threshold: float = 1.0  # selection-loss threshold: 1.0 for CIFAR, 0.25 for the medical sets
    selection_loss: SelectionLoss = "nce_mae"  # the per-sample score a stage thresholds
    mae_weight: float = 1.0  # β in NCE + β·MAE
    # The MAE of the selection score. report: Σ_c|p_c − q_c| = 2(1 − p_y), as the report writes it; at
    # threshold 1 a selected sample then has p_y > 1/2, so consensus can never change its label. apl:
    # 1 − p_y, the scale of the Active-Passive-Losses code the report cites, under which labels do change.
    mae_scale: MaeScale = "report"
    copies: int = 2  # augmented copies of each pseudo-labelled sample added to its batch


@dataclass(frozen=True)
class LossConfig:
    main: MainLoss = "swce"  # loss of warm-up and refinement training
    swce_detach: bool = True  # stop-gradient on the weight p_y (see losses.swce for why)
    # none: SWCE as the report writes it. class: each sample's weight p_y divided by the mean weight of
    # its class in the batch (losses.swce_class_normalised), so a class the network is slow on keeps
    # CE's share of the gradient; a remedy for SWCE starving slow classes, not the report's.
    swce_norm: SwceNorm = "none"
    focal_gamma: float = 2.0  # γ of the focal loss (Lin et al. 2017's default)
    # `--method nce_mae` trains with α·NCE + β·MAE (Ma et al. 2020, Active-Passive Losses). β is on the
    # APL code's scale, MAE = 1 − p_y (half of `losses.mae`); α = β = 1 is APL's CIFAR-10 setting.
    apl_alpha: float = 1.0  # α, NCE weight
    apl_beta: float = 1.0  # β, weight of 1 − p_y


DERIVED = "derived"  # dataclass field metadata: written by noisylab itself, not a setting (no --set)


@dataclass(frozen=True)
class RunConfig:
    method: str = "paper"  # the pipeline, a variant of it, or a baseline (see `noisylab run --help`)
    seed: int = 0  # seeds the noise, the initial weights and the data order
    profile: str = "gpu"  # the name of the profile the run used; recorded in every result
    batch_size: int = 256  # global, split across workers
    eval_every: EvalEvery = "epoch"  # test-set evaluation after every epoch or only at phase ends
    # The report says "Adam, weight decay 0.03". As an L2 term inside Adam (torch's Adam), 0.03 outweighs
    # SWCE's small gradients (they are scaled by p_y) and stalls learning: on digits a 6-epoch SWCE
    # warm-up reached ~20 % test accuracy against ~65 % without decay. Decoupled decay (AdamW) applies
    # the same 0.03 as a shrink of lr·0.03 per step and trains; `adam` keeps the literal reading.
    optimizer: Optimizer = "adamw"
    sgd_momentum: float = 0.9  # optimizer=sgd only; the momentum of DivideMix's SGD (Li et al. 2020)
    workers: int = 1  # Ray Train workers; 0 runs the loop in-process (Train's local mode)
    use_gpu: bool = False  # one GPU per worker (NCCL); else CPU (gloo)
    # Numeric format of forward passes and losses (autocast): fp32; bf16 (fp32's range, on CPUs too);
    # fp16 (with loss scaling). Weights, optimiser state and checkpoints stay fp32 in every case.
    precision: Precision = "fp32"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    forward: ForwardConfig = field(default_factory=ForwardConfig)
    coteaching: CoteachingConfig = field(default_factory=CoteachingConfig)
    dividemix: DivideMixConfig = field(default_factory=DivideMixConfig)
    c2d: C2DConfig = field(default_factory=C2DConfig)
    paper_dividemix: PaperDivideMixConfig = field(default_factory=PaperDivideMixConfig)
    mentornet: MentorNetConfig = field(default_factory=MentorNetConfig)
    selfie: SelfieConfig = field(default_factory=SelfieConfig)
    reweight: ReweightConfig = field(default_factory=ReweightConfig)
    decoupling: DecouplingConfig = field(default_factory=DecouplingConfig)
    lsl: LslConfig = field(default_factory=LslConfig)

    # The dotted paths of the None-means-default fields that `resolve` filled with the value this run uses
    # (its method's rule: the paper's λ_u for this noise, the baseline's budget...). Written by `resolve`
    # only, never set by hand; `unresolved` empties them again, so a config re-used with another noise
    # rate or budget has its rules choose again. Not part of the fingerprint: it computes nothing.
    resolved: tuple[str, ...] = field(default=(), metadata={DERIVED: True})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def fingerprint(self) -> str:
        """Hash of everything that changes what a run computes (every setting: workers split batches)."""
        settings = {k: v for k, v in self.to_dict().items() if k != "resolved"}
        settings["data"] = data_settings(self.data)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _build(cls, data, prefix="")


FOLD_FIELDS = ("folds", "holdout_fold")


def data_settings(data: DataConfig) -> dict[str, Any]:
    """`data` as the hashes of a run see it (its fingerprint, its pre-training's cache key). A config that
    holds no fold out hashes without the fold fields, as it did before they existed: runs and cached
    pre-trainings made then are still found by the same command."""
    settings = dataclasses.asdict(data)
    if data.folds is None and data.holdout_fold is None:
        for name in FOLD_FIELDS:
            del settings[name]
    return settings


# ---- overrides by dotted path --------------------------------------------------------------

C = TypeVar("C")


def field_paths(cls: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted path and its type, e.g. {"refine.threshold": float, ...}."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.metadata.get(DERIVED):
            continue
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
            raise UserError(
                f"unknown config field '{path}'{did_you_mean(path, paths)}; list them with `noisylab fields`"
            )
        cfg = _set_path(cfg, path.split("."), _coerce(value, paths[path], path))
    return cfg


def did_you_mean(path: str, known: Iterable[str]) -> str:
    """' (did you mean `refine.threshold`?)' for a misspelt dotted path, '' when nothing is close: the
    fields of its own section spelt most alike, else the fields anywhere whose last name is alike
    (`threshold`, `treshold`, a section that does not exist)."""
    import difflib

    def likest(word: str, words: list[str], cutoff: float) -> list[str]:
        """The words spelt like `word`, the likest and those nearly as alike (within 0.1)."""
        scored = sorted(((difflib.SequenceMatcher(None, word, w).ratio(), w) for w in words), reverse=True)
        scored = [(score, w) for score, w in scored if score >= cutoff]
        return [w for score, w in scored if score >= scored[0][0] - 0.1] if scored else []

    known = list(known)
    section, _, leaf = path.rpartition(".")
    close = likest(path, [p for p in known if p.rpartition(".")[0] == section], 0.75)
    if not close:
        alike = likest(leaf, sorted({p.rpartition(".")[2] for p in known}), 0.8)
        close = [p for name in alike for p in known if p.rpartition(".")[2] == name]
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"`{p}`" for p in close[:3]) + "?)"


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


def type_name(tp: Any) -> str:
    """A field type in words: 'int', 'float or None', 'one of swce, ce, focal', 'a list of int'."""
    return _type_name(tp).replace("NoneType", "None")


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
    if not isinstance(data, dict):
        where = f"'{prefix.rstrip('.')}'" if prefix else "a saved config"
        raise UserError(f"{where} must be a JSON object of config fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key, value in data.items():
        if key not in names:
            hint = did_you_mean(prefix + key, (prefix + name for name in names))
            raise UserError(f"unknown config field '{prefix}{key}' in a saved config{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{prefix}{key}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


# ---- resolution: each method's paper defaults, applied once at the edge ----------------------------


def resolve(cfg: RunConfig) -> RunConfig:
    """`cfg` with the None-means-default fields of every section its method uses (`noisylab.config.sections`)
    replaced by the values the run will use, and their paths added to `resolved`. Sections the method
    does not use keep their None. Idempotent: a resolved config comes back unchanged."""
    from noisylab.config.variants import base_method

    base = base_method(cfg.method)
    out = cfg
    for section in SECTIONS:
        if base in section.methods:
            out = section.resolve(out)
    filled = {path for path in _nullable_paths() if _get_path(cfg, path) is None}
    filled = {path for path in filled if _get_path(out, path) is not None}
    if not filled:
        return out
    return replace(out, resolved=tuple(sorted(set(cfg.resolved) | filled)))


def unresolved(cfg: RunConfig) -> RunConfig:
    """`cfg` with the fields `resolve` filled set back to None: what to change a resolved config from,
    so that its rules choose again for the new noise, dataset or budget (`api.run` does this)."""
    paths = field_paths()
    for path in cfg.resolved:
        if path in paths:  # a saved config from another version may name a field this one lacks
            cfg = _set_path(cfg, path.split("."), None)
    return replace(cfg, resolved=())


@lru_cache(maxsize=1)
def _nullable_paths() -> tuple[str, ...]:
    """The section fields that may be None, i.e. that a rule may resolve."""
    return tuple(p for p, tp in field_paths().items() if "." in p and type(None) in get_args(tp))


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


# ---- validation ---------------------------------------------------------------------------


def validate(cfg: RunConfig, *, methods: tuple[str, ...]) -> RunConfig:
    """Check every cross-field rule once, at the edge; raise UserError with the fix. Returns `cfg`
    resolved (`resolve`): the config to run, save and record."""
    if cfg.method not in methods:
        raise UserError(f"unknown method '{cfg.method}': choose one of {', '.join(methods)}")
    _validate_floats(cfg)
    for name, seed in (("seed", cfg.seed), ("data.subset_seed", cfg.data.subset_seed)):
        if not 0 <= seed < 2**32:  # numpy's and torch's seeders take unsigned 32-bit seeds at least
            raise UserError(f"{name} must lie in 0..{2**32 - 1}, got {seed}")
    _validate_ints(cfg)
    positive("batch_size", cfg.batch_size, minimum=2)
    cfg.data.noise_spec  # noqa: B018 - parsing checks the kind and the rate
    if cfg.workers < 0:
        raise UserError(f"workers must be ≥ 0, got {cfg.workers}")
    if cfg.workers > 1 and cfg.batch_size < 2 * cfg.workers:
        raise UserError(f"batch_size {cfg.batch_size} is too small for {cfg.workers} workers")
    if not 0.0 <= cfg.sgd_momentum < 1.0:
        raise UserError(f"sgd_momentum must lie in [0, 1), got {cfg.sgd_momentum}")
    d = cfg.data
    for name, value in (("data.train_subset", d.train_subset), ("data.test_subset", d.test_subset)):
        if value is not None:
            positive(name, value, minimum=2)
    if d.crop_padding < 0:
        raise UserError(f"data.crop_padding must be ≥ 0, got {d.crop_padding}")
    if d.image_size is not None:
        positive("data.image_size", d.image_size, minimum=8)
    _validate_folds(d)
    positive("model.width", cfg.model.width, minimum=1)
    positive("model.proj_dim", cfg.model.proj_dim, minimum=1)
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
    p = cfg.pretrain
    for name, tau in (("pretrain.byol_tau", p.byol_tau), ("pretrain.byol_tau_final", p.byol_tau_final)):
        if not 0.0 <= tau <= 1.0:
            raise UserError(f"{name} must lie in [0, 1] (an EMA rate), got {tau}")
    _validate_refine(cfg.refine)
    if cfg.loss.focal_gamma < 0:
        raise UserError(f"loss.focal_gamma must be ≥ 0, got {cfg.loss.focal_gamma}")
    for name, weight in (("loss.apl_alpha", cfg.loss.apl_alpha), ("loss.apl_beta", cfg.loss.apl_beta)):
        if weight < 0:
            raise UserError(f"{name} must be ≥ 0, got {weight}")
    cfg = resolve(cfg)
    for section in SECTIONS:  # every section's values, used by this method or not
        section.check(cfg)
    return cfg


# Float fields whose name says they are a rate, threshold, temperature, weight or learning rate: never
# negative. By name, so a section added later is covered without a line here.
_NON_NEGATIVE = re.compile(r"(^|_)(lrs?|rate|threshold|temperature|weight|decay|momentum|tau)(_|$)")


def _validate_floats(cfg: RunConfig) -> None:
    """Every float field (and every float in a tuple field) is finite: `inf` or `nan` would train to NaN
    and be recorded as a result. Rates, thresholds, temperatures, weights and learning rates are ≥ 0."""
    flat = cfg.to_dict()
    for path in field_paths():
        value: Any = flat
        for part in path.split("."):
            value = value[part]
        values = value if isinstance(value, tuple | list) else (value,)
        floats = [v for v in values if isinstance(v, float)]
        if not all(math.isfinite(v) for v in floats):
            raise UserError(f"config field '{path}' must be a finite number, got {value}")
        if _NON_NEGATIVE.search(path.rsplit(".", 1)[-1]) and any(v < 0 for v in floats):
            raise UserError(f"config field '{path}' must be ≥ 0, got {value}")


# Upper bounds of the integer fields, checked here so that an absurd value is one line instead of an
# overflow in torch, an allocation without bound or a schedule without end deep inside a run. Far above
# anything the report, the baselines' papers or a GPU cluster uses; the training set bounds the batch
# once it is loaded (`prepare.check_batch`).
MAX_INT = 2**31 - 1  # any integer field not named below: what torch and numpy index with
MAX_EPOCHS = 10_000  # every field counting epochs (per phase, iteration or warm-up)
_INT_BOUNDS: dict[str, int] = {
    "seed": 2**32 - 1,  # numpy's and torch's seeders take unsigned 32-bit seeds
    "data.subset_seed": 2**32 - 1,
    "model.width": 512,  # 8× timm's 64: ResNet-18 at 512 channels already holds ~700 M weights
    "model.proj_dim": 65_536,
    "data.image_size": 4096,
    "refine.iterations": 1_000,
    "refine.copies": 64,  # each copy adds the batch's pseudo-labelled samples once more
    "lsl.views": 64,
    "selfie.restarts": 100,  # each restart trains the whole budget again
    "mentornet.mentor_hidden": 65_536,
    "data.folds": 1_000,  # each fold is a whole training run
    "data.holdout_fold": 1_000,
}
_EPOCH_FIELD = re.compile(r"(^|_)epochs$")


def int_bound(path: str) -> int:
    """The largest value the integer field `path` may take."""
    if path in _INT_BOUNDS:
        return _INT_BOUNDS[path]
    return MAX_EPOCHS if _EPOCH_FIELD.search(path.rsplit(".", 1)[-1]) else MAX_INT


def _ints(value: Any) -> list[int]:
    """The integers in a field's value: itself, or those nested in its lists (refine.stages)."""
    if isinstance(value, tuple | list):
        return [i for v in value for i in _ints(v)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


def _validate_ints(cfg: RunConfig) -> None:
    flat = cfg.to_dict()
    for path in field_paths():
        value: Any = flat
        for part in path.split("."):
            value = value[part]
        bound = int_bound(path)
        if any(i > bound for i in _ints(value)):
            shown = json.dumps(value) if isinstance(value, tuple) else value
            raise UserError(
                f"config field '{path}' must be ≤ {bound:,}, got {shown}: choose a smaller value "
                "(`noisylab fields` says what it counts)"
            )


def _validate_folds(d: DataConfig) -> None:
    """Both fold fields or neither; the held-out fold one of the folds."""
    if (d.folds is None) != (d.holdout_fold is None):
        raise UserError(
            "data.folds and data.holdout_fold go together (K folds, the one of them held out): set both, "
            "or neither to train on the whole set (`noisylab labels RUN --folds K` sets them for you)"
        )
    if d.folds is None or d.holdout_fold is None:
        return
    positive("data.folds", d.folds, minimum=2)
    if not 1 <= d.holdout_fold <= d.folds:
        raise UserError(
            f"data.holdout_fold must lie in 1..{d.folds} (one of the data.folds={d.folds} folds), "
            f"got {d.holdout_fold}"
        )


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


def load_config_json(path: Path) -> RunConfig:
    from noisylab.config.files import read_config_data  # it reads configs into this module's RunConfig

    data = read_config_data(path)
    try:
        return resolve(RunConfig.from_dict(data))  # a config saved before resolution existed holds None
    except UserError as e:
        raise UserError(
            f"{path} is not a noisylab config ({e}): move it away or pass another --name"
        ) from None
