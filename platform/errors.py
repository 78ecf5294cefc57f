"""The one exception type for mistakes a user can fix, and the one way to report a problem worked around.

Everything that reads user input (paths, files, config values, CLI options) raises `UserError`
with one line saying what is wrong and how to fix it. The CLI prints that line and exits with
code 2; any other exception is a bug and keeps its traceback. `warn` is for what noisylab repairs on
its own (a damaged cache entry set aside and computed again): one line, and the run goes on.
"""

from __future__ import annotations

import sys


class UserError(Exception):
    """Bad input: a one-line message that names the problem and the fix."""

    exit_code = 2


class Interrupted(UserError):
    """Ctrl-C during training: one line saying where the run stopped and how to resume; exit 130 (the
    shell's code for SIGINT)."""

    exit_code = 130


def warn(message: str) -> None:
    """One line `warning: ...` on stderr (read at call time: the CLI's test runner swaps it), flushed at
    once so it shows before the long computation that usually follows."""
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()
