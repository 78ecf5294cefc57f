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
import tomllib
from pathlib import Path
from typing import Any

from noisylab.confdiff import flatten
from noisylab.config import RunConfig
from noisylab.errors import UserError


def read_overrides(path: Path) -> dict[str, Any]:
    """Dotted-path overrides from a `.json` or `.toml` file (a run folder means its config.json)."""
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read the config file {path} ({e.strerror or e})") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
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
    from noisylab.config import validate
    from noisylab.profiles import make_config
    from noisylab.trainables import method_names

    fields = read_overrides(Path(path)) if path is not None else {}
    chosen = profile or str(fields.get("profile") or "cpu")
    fields = {k: v for k, v in fields.items() if k != "profile"}
    given = {k.replace("__", "."): v for k, v in overrides.items()}
    return validate(make_config(chosen, fields | given), methods=method_names())
