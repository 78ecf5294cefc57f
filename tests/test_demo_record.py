"""The demo's seed-0 figure is guarded: the config `make demo` builds is the one whose result
benchmarks/demo_record.json records, and README and BENCHMARKS.md quote that result. A change of a
default that the demo reads fails here, naming the fields; a change of the numerics is what
`benchmarks/demo_record.py` (one demo run) sees."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import noisylab.runner as runner_module
from noisylab.cli import app
from noisylab.config.diff import flatten

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from demo_record import DEMO_ARGS, recorded  # noqa: E402


class Built(Exception):
    pass


def demo_config(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The config the demo's command line builds, caught where it would start training."""
    seen = []

    def caught(cfg: Any, **kwargs: Any) -> None:
        seen.append(cfg)
        raise Built

    monkeypatch.setattr(runner_module, "execute", caught)
    result = CliRunner().invoke(app, [*DEMO_ARGS, "--storage", "unused", "--no-progress"])
    assert isinstance(result.exception, Built), result.output
    return seen[0]


def figure_line(final: dict[str, Any]) -> str:
    return f"test accuracy {final['test_acc']:.2%} / macro-F1 {final['test_f1']:.2%}".replace("%", " %")


def test_the_demo_builds_the_recorded_config(monkeypatch: pytest.MonkeyPatch) -> None:
    want = recorded()
    cfg = demo_config(monkeypatch)
    now, then = flatten(cfg.to_dict()), flatten(want["config"])
    moved = {k: (then.get(k), now.get(k)) for k in now.keys() | then.keys() if now.get(k) != then.get(k)}
    moved.pop("resolved", None)
    assert cfg.fingerprint() == want["fingerprint"], (
        f"the demo's config changed {moved}: its figure moves too. Run `make demo`, then "
        "`benchmarks/demo_record.py --record runs/<the run>`, and re-record the figure with the reason"
    )


@pytest.mark.parametrize("document", ["README.md", "BENCHMARKS.md"])
def test_the_documents_quote_the_recorded_figure(document: str) -> None:
    line = figure_line(recorded()["final"])
    assert line in (ROOT / document).read_text(), f"{document} should say: {line}"
