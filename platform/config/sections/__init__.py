"""Each method's config section, in its own module: its settings, the rules that turn its None-means-
"the paper's default" fields into the values a run uses, and its checks.

A section module (`noisylab.config.sections.<name>`, torch-free) holds

- a frozen dataclass, one field per setting, each with a comment that `noisylab fields` shows (units, the
  paper's default and where it comes from); a field whose default depends on the run (its data, noise or
  budget) is `X | None = None`, and its comment says the rule;
- `resolve(cfg: RunConfig) -> RunConfig`: `cfg` with this section's None fields replaced by the values the
  run will use. It changes only fields that are None (so resolving twice changes nothing), only its own
  section, and leaves a field None where no rule applies (a label file has no noise rate): `check` then
  asks the user for it. It may read the sections resolved before it in `SECTIONS` (`baseline` first);
- `check(cfg: RunConfig) -> None`: raise `UserError` with a one-line fix for a bad value. It runs on
  every run, after resolution, whatever the method (a bad value is refused even where it goes unused);
  rules about the method's own run (enough epochs for two phases...) test `base_method(cfg.method)`;
- typed readers of the resolved fields for the trainables (`rules.used`), e.g. `dividemix.lambda_u(cfg)`.

`config.resolve` runs `resolve` of the sections whose line below lists the run's method (its
`noisylab.config.variants.base_method`), in this order, and records the paths it filled in
`RunConfig.resolved`:
sections a method does not use keep their None, since no run used them. `config.validate` (and
`profiles.make_config`) resolve, so every config that reaches a run, its `config.json` and its record
holds the values the run used.

Adding a method's section: write `platform/config/sections/<name>.py` as above, add the field
`<name>: <Name>Config = field(default_factory=<Name>Config)` to `config.RunConfig`, and add one line to
`SECTIONS` naming the methods that read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from noisylab.config.sections import (
    baseline,
    c2d,
    coteaching,
    decoupling,
    dividemix,
    forward,
    lsl,
    mentornet,
    mixup,
    paper_dividemix,
    reweight,
    selfie,
)

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig


@dataclass(frozen=True)
class Section:
    name: str  # the RunConfig field that holds it (and its module's name)
    methods: frozenset[str]  # the base methods whose runs read it
    resolve: Callable[[RunConfig], RunConfig]
    check: Callable[[RunConfig], None]


def _section(module: ModuleType, *methods: str) -> Section:
    return Section(module.__name__.rsplit(".", 1)[-1], frozenset(methods), module.resolve, module.check)


# The one-network baselines train for `baseline.epochs`; so do the two-network ones.
_BUDGETED = (
    *("ce", "swce", "focal", "nce_mae", "mixup", "forward", "coteaching", "dividemix", "c2d"),
    *("reweight", "decoupling", "mentornet", "selfie", "lsl"),
)

SECTIONS: tuple[Section, ...] = (
    _section(baseline, *_BUDGETED),  # first: forward and dividemix split its epochs
    _section(mixup, "mixup"),
    _section(forward, "forward", "reweight"),  # reweight estimates T as forward does
    _section(coteaching, "coteaching"),
    _section(dividemix, "dividemix", "c2d", "paper_dividemix"),
    _section(c2d, "c2d"),
    _section(paper_dividemix, "paper_dividemix"),
    _section(mentornet, "mentornet"),
    _section(selfie, "selfie"),
    _section(reweight, "reweight"),
    _section(decoupling, "decoupling"),
    _section(lsl, "lsl"),
)


# The sections of RunConfig that config.py defines for the methods that share them: the report's
# pipeline (and the pipeline on DivideMix) reads its pre-training, warm-up, refinement and loss; C2D
# pre-trains as the pipeline does; the loss-only baselines read their loss's settings. Every run reads
# its own settings (seed, batch, optimiser...), `data` and `model`.
SHARED_SECTIONS: dict[str, tuple[str, ...]] = {
    "paper": ("pretrain", "warmup", "refine", "loss"),
    "paper_dividemix": ("pretrain", "warmup", "refine", "loss"),
    "c2d": ("pretrain",),
    "swce": ("loss",),
    "focal": ("loss",),
    "nce_mae": ("loss",),
}
ALWAYS_READ = ("data", "model")


def sections_read(base: str) -> tuple[str, ...]:
    """The RunConfig sections a run of base method `base` reads (besides the run's own settings): what
    an experiment tracker lists as its hyper-parameters, leaving out the sections of other methods."""
    own = tuple(s.name for s in SECTIONS if base in s.methods)
    return (*ALWAYS_READ, *SHARED_SECTIONS.get(base, ()), *own)
