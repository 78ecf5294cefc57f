"""What Ray runs: one module per method, all driven by the one engine (`noisylab.runtime.run_schedule`).

`METHODS` maps a `--method` name to a factory; sweeps and the CLI read it.
"""

from __future__ import annotations

from collections.abc import Callable

from noisylab.runtime import Method
from noisylab.trainables.ce import ce_method
from noisylab.trainables.paper import PaperMethod

METHODS: dict[str, Callable[[], Method]] = {
    "paper": PaperMethod,
    "ce": ce_method,
}


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def get_method(name: str) -> Method:
    return METHODS[name]()
