"""What Ray runs: one module per method, all driven by the one engine (`noisylab.train.runtime.run_schedule`).

`METHODS` maps a `--method` name to a factory; sweeps and the CLI read it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from noisylab.config.run import RunConfig
from noisylab.config.variants import VARIANTS
from noisylab.train.runtime import Method
from noisylab.trainables.c2d import c2d_method
from noisylab.trainables.ce import ce_method
from noisylab.trainables.coteaching import coteaching_method
from noisylab.trainables.decoupling import decoupling_method
from noisylab.trainables.dividemix import dividemix_method
from noisylab.trainables.forward import ForwardMethod
from noisylab.trainables.lsl import LslMethod
from noisylab.trainables.mentornet import mentornet_method
from noisylab.trainables.mixup import MixupMethod
from noisylab.trainables.paper import PaperMethod
from noisylab.trainables.paper_dividemix import PaperDivideMixMethod
from noisylab.trainables.reweight import reweight_method
from noisylab.trainables.robust_losses import focal_method, nce_mae_method, swce_method
from noisylab.trainables.selfie import selfie_method

_BASES: dict[str, Callable[[str], Method]] = {"paper": PaperMethod, "paper_dividemix": PaperDivideMixMethod}

METHODS: dict[str, Callable[[], Method]] = {
    "paper": PaperMethod,
    "ce": ce_method,
    "swce": swce_method,
    "focal": focal_method,
    "nce_mae": nce_mae_method,
    "mixup": MixupMethod,
    "forward": ForwardMethod,
    "reweight": reweight_method,
    "coteaching": coteaching_method,
    "decoupling": decoupling_method,
    "dividemix": dividemix_method,
    "c2d": c2d_method,
    "mentornet": mentornet_method,
    "selfie": selfie_method,
    "paper_dividemix": PaperDivideMixMethod,
    "lsl": LslMethod,
    # Variants: a base method under another name, with the defaults of noisylab.config.variants.
    **{name: functools.partial(_BASES[v.base], name) for name, v in VARIANTS.items()},
}


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def get_method(name: str) -> Method:
    return METHODS[name]()


def method_networks(name: str) -> int:
    """How many networks a method trains: its `networks` attribute (2 = a TwinNetwork), else 1."""
    return int(getattr(get_method(name), "networks", 1))


def model_options(cfg: RunConfig) -> dict[str, Any]:
    """Keyword options of `models.build_model` that the run's method asks for through its optional
    `model_options(cfg)` (LSL's structural head); none for the others, whose networks stay as they are."""
    ask = getattr(get_method(cfg.method), "model_options", None)
    return dict(ask(cfg)) if ask is not None else {}
