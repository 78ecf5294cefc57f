"""Output off a terminal (a pipe, a file): nothing is wrapped or cut, one row a line, no padding at the
ends of lines; on a terminal the terminal's width still applies."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from record_factory import make_record, write_run
from rich.table import Table
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.config.fielddocs import describe_fields
from noisylab.config.run import RunConfig, field_paths
from noisylab.consoles import OutputConsole

runner = CliRunner()  # its output is no terminal, as in `noisylab ... | grep`


def test_fields_in_a_pipe_is_one_whole_line_per_field() -> None:
    result = runner.invoke(app, ["fields"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    whole = describe_fields(limit=None)
    for path in field_paths():
        found = [line for line in lines if line.split("│")[0].strip() == path]
        assert len(found) == 1, path  # `grep PATH` finds the field, on one line
        assert found[0].rstrip().endswith(whole[path][1]), path  # its whole description, uncut
    assert not [line for line in lines if line != line.rstrip()], "lines end in padding"
    assert "…" not in result.stdout


def test_fields_as_csv_and_json_read_back_every_field() -> None:
    defaults = RunConfig().to_dict()
    as_csv = runner.invoke(app, ["fields", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert as_csv.exit_code == 0 and [r["field"] for r in rows] == list(field_paths())
    as_json = runner.invoke(app, ["fields", "--format", "json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == rows
    by_path = {r["field"]: r for r in rows}
    assert json.loads(by_path["refine.threshold"]["default"]) == defaults["refine"]["threshold"]
    assert by_path["refine.threshold"]["type"] == "float"
    assert (
        by_path["mentornet.clean_fraction"]["what"]
        == describe_fields(limit=None)["mentornet.clean_fraction"][1]
    )


def test_report_headers_and_sources_are_whole_in_a_pipe(tmp_path: Path) -> None:
    for seed in (0, 1):
        for method in ("ce", "paper"):
            write_run(tmp_path, make_record(method=method, seed=seed, noise="idn:0.2", test_acc=0.7))
    for extra in (["--table", "all"], ["--vs-paper"]):
        result = runner.invoke(app, ["report", str(tmp_path), *extra], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        assert "…" not in result.stdout, extra
        assert max(len(line) for line in result.stdout.splitlines()) > 80, extra
    vs = runner.invoke(app, ["report", str(tmp_path), "--vs-paper"]).stdout
    assert "published_pct" in vs and "Table II (accuracy %, IDN-CIFAR); baseline rows cited" in vs


def test_the_record_path_is_one_line(tmp_path: Path, digits_npz: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "runs"
    args = ["run", "--dataset", "npz", "--data-root", str(digits_npz), "--storage", str(deep)]
    args += ["--noise", "sym:0.2", "--method", "ce", "--profile", "tiny", "--workers", "0", "--no-progress"]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("record: ")]
    (run_dir,) = deep.iterdir()
    assert line == f"record: {run_dir / 'record.parquet'}"


def test_a_terminal_keeps_its_width() -> None:
    """What a person reads is still laid out for their terminal: wrapped at its columns, with a frame."""
    buffer = io.StringIO()
    console = OutputConsole(file=buffer, force_terminal=True, width=40, color_system=None)
    table = Table("field", "what")
    table.add_row("mentornet.clean_fraction", "a description long enough to wrap at forty columns " * 2)
    console.print(table)
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) == 40 and len(lines) > 5
    assert lines[0].startswith("┏")  # the outer frame stays
