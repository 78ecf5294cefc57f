"""A clean terminal for local runs: drop the Ray messages known to be harmless there, keep the rest.

Dropped, on a cluster this process starts itself (no `--address`):

* the TrainController's `core_worker.cc ... E ... Actor with class name: 'PreemptionWatcher' ... has
  constructor arguments in the object store and max_restarts > 0` line (ray issue #53727): a warning
  about restarting an actor whose arguments could be lost, which a single-machine run never does;
* `Token authentication is enabled for this Ray cluster` (Ray ≥ 2.59): a notice that the cluster this
  process just started for itself is protected, which is the safe default.

Everything else Ray forwards (worker tracebacks, OOM kills, other `E` lines) still reaches the terminal.
Ray's full logs, dropped lines included, stay in its session folder; `ray_logs_dir()` names it.

How: the driver prints worker output through `ray._private.worker.print_to_stdstream`, which `ray.init`
binds when it connects, so the filter wraps it before `ray.init` (a private hook: if a Ray upgrade
renames it, `install` leaves output as it is rather than fail).
"""

from __future__ import annotations

import logging
import re
from typing import Any

HARMLESS_WORKER_LINES = (re.compile(r"core_worker\.cc.*'PreemptionWatcher'.*constructor arguments"),)
TOKEN_NOTICE = "Token authentication is enabled"
_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def harmless(line: str) -> bool:
    return any(p.search(line) for p in HARMLESS_WORKER_LINES)


class _DropTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return TOKEN_NOTICE not in record.getMessage()


def install() -> None:
    """Filter the messages above for the rest of this process (idempotent)."""
    logger = logging.getLogger(_TOKEN_LOGGER)
    if not any(isinstance(f, _DropTokenNotice) for f in logger.filters):
        logger.addFilter(_DropTokenNotice())
    try:
        from ray._private import worker
    except ImportError:  # pragma: no cover - Ray without the private module: leave output alone
        return
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_noisylab_filtered", False):
        return

    def filtered(data: dict[str, Any], ignore_prefix: bool) -> None:
        lines = [line for line in data.get("lines", []) if not harmless(line)]
        if lines:
            original(data | {"lines": lines}, ignore_prefix)

    filtered._noisylab_filtered = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = filtered


def ray_logs_dir() -> str | None:
    """The folder holding this Ray session's full logs (None before `ray.init`)."""
    try:
        from ray._private import worker

        node = worker._global_node
        return str(node.get_logs_dir_path()) if node is not None else None
    except (ImportError, AttributeError):  # pragma: no cover - another Ray version
        return None
