"""`platform/` is the noisylab package but must never shadow the standard library's `platform`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_folder_has_no_init() -> None:
    assert (ROOT / "platform" / "config.py").exists()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_wins_from_the_repo_root() -> None:
    # The repo root on sys.path (python -m, pytest, Ray's working_dir) must still give the stdlib module.
    code = "import platform, noisylab.config.run; print(hasattr(platform, 'machine'), noisylab.config.run.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    is_stdlib, config_file = out.stdout.split()
    assert is_stdlib == "True"
    assert Path(config_file).parent.name == "platform"
