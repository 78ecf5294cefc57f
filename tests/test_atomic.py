"""One way to write a file (`noisylab.atomic`): whole or not at all, and no other temporary-file scheme."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import IO

import pytest

from noisylab.atomic import write_text, write_with

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("platform", "trainables", "sweeps")

# Calls that write a file outside the helper, or build a temporary file and rename it into place.
_ATTRIBUTES = {"rename", "write_text", "write_bytes", "mkstemp", "mkdtemp", "NamedTemporaryFile"}
_OS = {"replace", "rename", "link", "symlink"}
# Allowed, each for a reason: the helper itself; a staging folder whose contents Ray Train copies into
# the run's storage as a checkpoint (Ray owns that copy, and the folder is gone after `report`).
ALLOWED = {("platform/atomic.py", "*"), ("platform/train/runtime.py", "TemporaryDirectory")}


def _writes_outside_the_helper(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        on_os = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "os"
        if (
            (isinstance(f, ast.Attribute) and name in _ATTRIBUTES)
            or (on_os and name in _OS)
            or name == "TemporaryDirectory"
            or (name == "open" and _write_mode(node))
        ):
            found.append((node.lineno, name))
    return found


def _write_mode(call: ast.Call) -> bool:
    """`open(path, "w")`, "wb", "x"...: a write that a crash can leave half done. Appending ("a") is
    allowed: `metrics.jsonl` grows a line at a time and its reader skips a half-written last line."""
    modes = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "mode")]
    return any(isinstance(m, ast.Constant) and set(str(m.value)) & {"w", "x", "+"} for m in modes)


def test_every_file_is_written_through_the_atomic_helper() -> None:
    offending = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, name in _writes_outside_the_helper(path):
                if (rel, "*") not in ALLOWED and (rel, name) not in ALLOWED:
                    offending.append(f"{rel}:{line} {name}")
    assert offending == [], "write files with noisylab.atomic (write_with, write_text, write_bytes)"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "record.bin"
    write_text(path, "old")

    def half_then_fail(f: IO[bytes]) -> None:
        f.write(b"half")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError, match="the writer failed"):
        write_with(path, half_then_fail)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["record.bin"]
    write_with(path, lambda f: f.write(b"new"))
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["record.bin"]
