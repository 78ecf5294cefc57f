"""Report tables out: a terminal table (rich), CSV, Parquet, Markdown or LaTeX.

Numbers stay numbers in CSV and Parquet (read back, they equal the table's `data`: the pivot's
"mean ± std (n=…)" text cells are written as numeric mean, std and n columns); the text formats show
floats with two decimals and empty cells as '-'. LaTeX is in the booktabs style (`\\usepackage{booktabs}`),
with the best cell of each pivot column in bold. Files are written atomically (`noisylab.atomic`).
Several tables go to one Markdown or LaTeX file, one after the other under their titles; for CSV
and Parquet each gets its own file, `<stem>.<table>.<ext>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from noisylab.atomic import write_text, write_with
from noisylab.errors import UserError

FORMATS = ("table", "csv", "parquet", "markdown", "latex")
EMPTY = "-"


@dataclass(frozen=True)
class Titled:
    name: str  # short, for file names: pivot, best, selection, ...
    title: str
    frame: pl.DataFrame  # what is shown (terminal, Markdown, LaTeX)
    data: pl.DataFrame | None = None  # what CSV/Parquet hold when it differs from `frame`: numbers only
    bold: frozenset[tuple[int, str]] = frozenset()  # (row, column) cells set in bold in LaTeX
    notes: tuple[str, ...] = ()  # lines under the table (terminal, Markdown, LaTeX); CSV/Parquet hold data

    @property
    def export(self) -> pl.DataFrame:
        return self.frame if self.data is None else self.data


def cell_text(value: object) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


# -------------------------------------------------------------------------------------------- text


def to_markdown(frame: pl.DataFrame) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    align = ["---:" if _numeric(t) else ":---" for t in frame.dtypes]
    lines = [
        "| " + " | ".join(esc(c) for c in frame.columns) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(esc(cell_text(v)) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "−": "-",
    "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(
    frame: pl.DataFrame,
    title: str = "",
    bold: frozenset[tuple[int, str]] = frozenset(),
    notes: tuple[str, ...] = (),
) -> str:
    """A `table` float holding a booktabs `tabular` (`\\toprule`, `\\midrule`, `\\bottomrule`: the
    document needs `\\usepackage{booktabs}`); the cells in `bold` (row, column) are set in bold; each
    of `notes` a small paragraph under the tabular."""
    spec = "".join("r" if _numeric(t) else "l" for t in frame.dtypes)
    lines = [r"\begin{table}[ht]", r"\centering"]
    if title:
        lines.append(rf"\caption{{{latex_escape(title)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in frame.columns) + r" \\")
    lines.append(r"\midrule")
    for i, row in enumerate(frame.iter_rows()):
        texts = [latex_escape(cell_text(v)) for v in row]
        texts = [
            rf"\textbf{{{t}}}" if (i, c) in bold else t for t, c in zip(texts, frame.columns, strict=True)
        ]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip{{\footnotesize {latex_escape(note)}}}" for note in notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_text(tables: Sequence[Titled], fmt: str) -> str:
    """CSV (one table only), Markdown or LaTeX text of `tables`."""
    if fmt == "csv":
        if len(tables) != 1:
            raise UserError("CSV on the terminal holds one table: choose one --table, or give --output FILE")
        return tables[0].export.write_csv()
    if fmt == "markdown":
        return "\n".join(
            f"### {t.title}\n\n{to_markdown(t.frame)}" + "".join(f"\n{note}\n" for note in t.notes)
            for t in tables
        )
    if fmt == "latex":
        return "\n".join(to_latex(t.frame, t.title, t.bold, t.notes) for t in tables)
    raise UserError(f"--format {fmt} cannot be shown on the terminal: give --output FILE")


# Columns of prose (a paper and its table): cut on a terminal; whole in a pipe, a file and every export.
LONG_TEXT = ("source",)
LONG_TEXT_WIDTH = 24  # characters


def print_tables(tables: Sequence[Titled], console: Console) -> None:
    for t in tables:
        table = Table(title=t.title, title_justify="left")
        for name, dtype in t.frame.schema.items():
            if _numeric(dtype):
                table.add_column(name, justify="right")
            elif name in LONG_TEXT and console.is_terminal:  # one line a row; a pipe gets the whole text
                table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=LONG_TEXT_WIDTH)
            else:
                table.add_column(name)
        for row in t.frame.iter_rows():
            table.add_row(*(cell_text(v) for v in row))
        if t.frame.height == 0:
            console.print(f"{t.title}: no rows", markup=False, highlight=False)
        else:
            console.print(table)
        for note in t.notes:
            console.print(note, markup=False, highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------- files


def write_tables(tables: Sequence[Titled], fmt: str, output: Path) -> list[Path]:
    """Write `tables` to `output` (CSV/Parquet: one file per table when there are several). Returns the
    files written."""
    if fmt not in FORMATS or fmt == "table":
        raise UserError(f"--output needs --format csv, parquet, markdown or latex, not {fmt}")
    if output.is_dir():
        raise UserError(f"--output {output} is a folder: give a file name, e.g. {output / ('report.' + fmt)}")
    if not output.parent.exists():
        raise UserError(f"--output {output}: the folder {output.parent} does not exist")
    if fmt in ("markdown", "latex"):
        text = render_text(tables, fmt)
        write_text(output, text)
        return [output]
    written = []
    for t in tables:
        path = output if len(tables) == 1 else output.with_name(f"{output.stem}.{t.name}{output.suffix}")
        if fmt == "csv":
            write_with(path, t.export.write_csv)
        else:
            write_with(path, t.export.write_parquet)
        written.append(path)
    return written
