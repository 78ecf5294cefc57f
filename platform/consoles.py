"""The consoles every command prints through: as wide as the terminal on a terminal, unlimited off one.

Rich takes its width from whichever standard stream is a terminal, and falls back to 80 columns; so
`noisylab fields | grep ...` was cut to the width of the terminal stderr was on (or to 80 in a script):
every table's cells wrapped onto several lines, headers shortened to "…", paths split where a column
ended. Off a terminal nobody reads at a given width: a line is as long as its content, a table has no
outer frame and no line ends in the padding of its last column, so `grep` and `cut` see one row a line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.segment import Segment
from rich.table import Table

# Columns given to output that is not a terminal: wider than any table noisylab prints, so nothing is
# wrapped or cut (rich lays a table out at its content's width, not at the console's).
UNLIMITED = 1_000_000


class OutputConsole(Console):
    """A rich Console that is as wide as its content when it does not write to a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(UNLIMITED, measured.height)
        return measured

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.is_terminal:
            for table in objects:
                if isinstance(table, Table):
                    table.show_edge = False  # the right edge would keep every row's padding
                    table.title_justify = "left"  # centred over a long last column, it starts far right
        super().print(*objects, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        text = super()._render_buffer(buffer)
        if self.is_terminal:
            return text
        return "\n".join(line.rstrip(" ") for line in text.split("\n"))
