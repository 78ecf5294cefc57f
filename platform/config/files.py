"""Configs from files: a run's saved `config.json`, or a TOML/JSON file of overrides.

Both are read the same way: nested sections (`{"refine": {"threshold": 0.5}}`, TOML's `[refine]`) and
dotted keys (`"refine.threshold" = 0.5`) become dotted-path overrides, applied over the profile exactly
as `--set` is, so a saved config reproduces its run and a small file varies one.

A saved config holds the values its run used, the paper defaults its method's rules chose included, and
names those fields in `resolved`. They are read as unset, so the rules choose again: the same values for
the same run, and the right ones when the file is re-used with another noise rate, dataset or budget.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from noisylab.config.diff import flatten
from noisylab.config.run import RunConfig
from noisylab.errors import UserError

# A config is a table of sections of values, lists of lists at most (refine.stages is 4 levels deep). A
# file nested deeper is not a config, and Python's parsers overflow their stack a few thousand levels in.
MAX_DEPTH = 16


def read_config_data(path: Path) -> Any:
    """The parsed content of a TOML (`.toml`) or JSON (anything else) config file. UserError, one line,
    for whatever keeps it from being read: no file, bytes that are not UTF-8, a syntax error, nesting
    deeper than a config has, an integer longer than Python converts."""
    kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the config file {path} ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}): save it as UTF-8"
        ) from None
    too_deep = UserError(
        f"{path} nests its values more than {MAX_DEPTH} levels deep, which no config does: "
        'write sections of fields, e.g. {"refine": {"threshold": 0.5}}'
    )
    try:
        data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except RecursionError:
        raise too_deep from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not valid {kind}: {e}") from None
    except ValueError as e:  # Python converts at most sys.get_int_max_str_digits() digits to an int
        if "digits" in str(e):
            raise UserError(
                f"{path} holds an integer of more than {sys.get_int_max_str_digits():,} digits, which no "
                "config field takes: fix that value"
            ) from None
        raise UserError(f"{path} holds a value that cannot be read ({e}): fix that value") from None
    if _depth(data) > MAX_DEPTH:
        raise too_deep
    return data


def _depth(data: Any) -> int:
    """How deep `data` nests (a scalar is 1), counted without recursion and no further than MAX_DEPTH + 1."""
    deepest, stack = 0, [(data, 1)]
    while stack and deepest <= MAX_DEPTH:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def read_overrides(path: Path) -> dict[str, Any]:
    """Dotted-path overrides from a `.json` or `.toml` file (a run folder means its config.json)."""
    if path.is_dir():
        path = path / "config.json"
    data = read_config_data(path)
    if not isinstance(data, dict):
        raise UserError(f'{path} must hold a table of config fields, e.g. {{"refine": {{"threshold": 0.5}}}}')
    fields = flatten(data)
    chosen = fields.pop("resolved", [])
    if not isinstance(chosen, list) or not all(isinstance(p, str) for p in chosen):
        raise UserError(f"{path}: 'resolved' must be a list of config field paths, got {chosen!r}")
    return {k: v for k, v in fields.items() if k not in chosen}


def load_config(path: Path | str | None = None, *, profile: str | None = None, **overrides: Any) -> RunConfig:
    """A checked RunConfig: profile ← the file's fields (a saved config.json or an overrides file) ←
    `overrides` (dotted paths, with '__' for '.' as keyword arguments: refine__threshold=0.5). The
    profile is `profile`, else the file's, else 'cpu'."""
    from noisylab.config.profiles import make_config
    from noisylab.config.run import validate
    from noisylab.trainables import method_names

    fields = read_overrides(Path(path)) if path is not None else {}
    chosen = profile or str(fields.get("profile") or "cpu")
    fields = {k: v for k, v in fields.items() if k != "profile"}
    given = {k.replace("__", "."): v for k, v in overrides.items()}
    return validate(make_config(chosen, fields | given), methods=method_names())
