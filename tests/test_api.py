"""The README's "Python API" example, run as written on the digits .npz."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import polars as pl
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_readme_example_runs(digits_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(digits_npz, tmp_path / "my-data.npz")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(readme_example(), str(README), "exec"), scope)
    runs = scope["runs"]
    assert isinstance(runs, pl.DataFrame) and runs.height == 3
    assert sorted(runs["method"].to_list()) == ["ce", "paper", "paper"]
    assert isinstance(runs.schema["history"], pl.List)  # nested, not JSON text
    assert "history_json" not in runs.columns
    curves = scope["curves"]
    assert isinstance(curves, pl.DataFrame) and {"phase", "epoch", "test_acc"} <= set(curves.columns)
    assert scope["saved"].data.root == "my-data.npz"  # type: ignore[attr-defined]


def test_run_refuses_bad_input_with_a_user_error(tmp_path: Path) -> None:
    from noisylab.api import load_config
    from noisylab.errors import UserError

    with pytest.raises(UserError, match=r"refine\.thresold"):
        load_config(profile="tiny", refine__thresold=0.5)
