"""How often a Ray Train run restarts from its newest checkpoint after a lost worker or node.

A module of its own, without torch: the CLI reads the default and checks the value before it imports the
runner.
"""

from __future__ import annotations

from noisylab.errors import UserError

# A few: a cluster that loses a preemptible node now and then (cluster.yaml launches such nodes) finishes
# by itself, while a run that fails for a reason of its own (a bug, a full disk) still stops after a
# handful of tries.
DEFAULT_MAX_FAILURES = 3
MAX_FAILURES_LIMIT = 1000


def check_max_failures(value: int) -> int:
    """`value` itself, or UserError naming the bounds."""
    if not 0 <= value <= MAX_FAILURES_LIMIT:
        raise UserError(
            f"--max-failures must lie in 0..{MAX_FAILURES_LIMIT} (restarts from the newest checkpoint), "
            f"got {value}"
        )
    return value
