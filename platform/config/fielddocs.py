"""One-line descriptions of config fields, read from the comments of the modules that define them:
`config.py` for the shared sections, `noisylab.config.sections.<name>` for each method's own.

The config's comments are its documentation (units, sources, why a default); `noisylab fields` shows
them rather than keep a second copy that would drift. A field's description is its trailing comment,
else the comment block right above it, else its section's docstring's first line.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import sys
import tokenize
import typing
from functools import cache
from typing import Any

from noisylab.config.run import DERIVED, RunConfig


def _comments(source: str) -> dict[int, str]:
    """{line number: comment text} for every comment in `source`."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


@cache
def _class_fields(module: str) -> dict[str, dict[str, str]]:
    """{class name: {field name: description}} for the dataclasses of `module` (an imported one)."""
    source = inspect.getsource(sys.modules[module])
    comments = _comments(source)
    lines = source.splitlines()
    out: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            text = comments.get(item.lineno, "")
            if not text:  # the comment block right above
                above: list[str] = []
                n = item.lineno - 1
                while n >= 1 and lines[n - 1].strip().startswith("#"):
                    above.insert(0, comments.get(n, ""))
                    n -= 1
                text = " ".join(above)
            fields[item.target.id] = text
        fields["__doc__"] = _first_line(ast.get_docstring(node))  # written docstrings only
        out[node.name] = fields
    return out


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ").strip()


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def describe_fields(
    cls: type = RunConfig, prefix: str = "", *, limit: int | None = 160
) -> dict[str, tuple[Any, str]]:
    """{dotted path: (type, description)} for every settable field; descriptions longer than `limit`
    characters are shortened at a word (None: whole)."""
    hints = typing.get_type_hints(cls)
    own = _class_fields(cls.__module__).get(cls.__name__, {})
    out: dict[str, tuple[Any, str]] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get(DERIVED):
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out |= describe_fields(tp, f"{prefix}{f.name}.", limit=limit)  # type: ignore[arg-type]
        else:
            text = own.get(f.name) or own.get("__doc__", "")
            out[f"{prefix}{f.name}"] = (tp, text if limit is None else _shorten(text, limit))
    return out
