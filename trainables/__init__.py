"""What Ray runs: one module per method, all driven by the one engine (`noisylab.runtime.run_schedule`).

`METHODS` maps a `--method` name to a factory; sweeps and the CLI read it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from noisylab.runtime import Method
from noisylab.trainables.ce import ce_method
from noisylab.trainables.coteaching import coteaching_method
from noisylab.trainables.dividemix import dividemix_method
from noisylab.trainables.forward import ForwardMethod
from noisylab.trainables.mixup import MixupMethod
from noisylab.trainables.paper import PaperMethod
from noisylab.trainables.robust_losses import focal_method, nce_mae_method, swce_method
from noisylab.variants import VARIANTS

METHODS: dict[str, Callable[[], Method]] = {
    "paper": PaperMethod,
    "ce": ce_method,
    "swce": swce_method,
    "focal": focal_method,
    "nce_mae": nce_mae_method,
    "mixup": MixupMethod,
    "forward": ForwardMethod,
    "coteaching": coteaching_method,
    "dividemix": dividemix_method,
    # The report's variants: the pipeline under another name, with the defaults of noisylab.variants.
    **{name: functools.partial(PaperMethod, name) for name in VARIANTS},
}


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def get_method(name: str) -> Method:
    return METHODS[name]()


def method_networks(name: str) -> int:
    """How many networks a method trains: its `networks` attribute (2 = a TwinNetwork), else 1."""
    return int(getattr(get_method(name), "networks", 1))
