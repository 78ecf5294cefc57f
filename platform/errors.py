"""The one exception type for mistakes a user can fix.

Everything that reads user input (paths, files, config values, CLI options) raises `UserError`
with one line saying what is wrong and how to fix it. The CLI prints that line and exits with
code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a one-line message that names the problem and the fix."""

    exit_code = 2


class Interrupted(UserError):
    """Ctrl-C during training: one line saying where the run stopped and how to resume; exit 130 (the
    shell's code for SIGINT)."""

    exit_code = 130
