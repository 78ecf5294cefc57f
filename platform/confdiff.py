"""What sets one run's configuration apart: the fields that differ from its method's defaults.

Reports group runs into cells of seeds. Two runs belong to one cell only when their configs differ by
the seed alone, so every record gets a `config_key` (its whole config less the seed) and a readable
`config` label (the fields that differ from `profiles.make_config(profile, {"method": m})`, so a plain
`paper_focal` run is not labelled `loss.main=focal`). Fields a table already shows as columns (method,
model, dataset, noise, profile) are left out of the label, and so are fields every record of one sweep
shares (the study's own settings): what is left is what a reader needs to tell rows apart.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

import polars as pl

from noisylab.config import RunConfig
from noisylab.errors import UserError

# Never part of the label: the seed (what a cell pools over), the table's own columns, and where the
# data lay (the dataset column names it, the record's data fingerprint tells files apart).
NOT_LABELLED = frozenset(
    {"seed", "method", "profile", "data.dataset", "data.noise", "data.name", "data.root", "model.name"}
)


def _comparable(flat: dict[str, Any]) -> dict[str, Any]:
    """`workers` 0 (in-process) and 1 (one Ray worker) train the same world of one rank: not a difference."""
    return flat | {"workers": 1} if flat.get("workers") == 0 else flat


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"refine": {"threshold": 1.0}} → {"refine.threshold": 1.0}; tuples become lists (JSON's form)."""
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat |= flatten(v, f"{prefix}{k}.")
        else:
            flat[f"{prefix}{k}"] = json.loads(json.dumps(v))
    return flat


@lru_cache(maxsize=64)
def _defaults(profile: str, method: str) -> dict[str, Any]:
    from noisylab.profiles import make_config

    try:
        cfg = make_config(profile, {"method": method})
    except UserError:  # a profile this version no longer has: compare with the bare defaults
        cfg = RunConfig(profile=profile, method=method)
    return flatten(cfg.to_dict())


def differences(cfg: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """The dotted-path fields of `cfg` whose value differs from its method's defaults under its profile
    (the seed, method and profile themselves excluded)."""
    flat = _comparable(flatten(cfg.to_dict() if isinstance(cfg, RunConfig) else cfg))
    base = _defaults(str(flat.get("profile", "gpu")), str(flat.get("method", "paper")))
    skip = ("seed", "method", "profile")
    return {k: v for k, v in sorted(flat.items()) if k not in skip and base.get(k, object()) != v}


def value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def label(diff: dict[str, Any]) -> str:
    """'loss.main=ce, refine.threshold=0.5' (sorted by path), or '' for a config with no differences."""
    return ", ".join(f"{k}={value_text(v)}" for k, v in sorted(diff.items()) if k not in NOT_LABELLED)


def _parse(config_json: str | None) -> dict[str, Any] | None:
    if not config_json:
        return None
    try:
        data = json.loads(config_json)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def with_config_columns(records: pl.DataFrame) -> pl.DataFrame:
    """`records` plus `config_key` (the config less the seed, plus the data's fingerprint) and `config`
    (the label above). Idempotent. Records without a readable config get an empty key and label."""
    if "config_key" in records.columns or records.height == 0:
        return records
    configs = [_parse(c) for c in _column(records, "config_json")]
    studies = _column(records, "study")
    data_fps = _column(records, "data_fingerprint")
    diffs = [differences(c) if c is not None else {} for c in configs]
    shared = _shared_within_study(studies, diffs)
    keys, labels = [], []
    for config, study, fp, diff in zip(configs, studies, data_fps, diffs, strict=True):
        if config is None:
            keys.append("")
        else:
            flat = {k: v for k, v in _comparable(flatten(config)).items() if k not in ("seed", "data.root")}
            keys.append(json.dumps(flat, sort_keys=True) + (fp or flat.get("data.root", "") or ""))
        drop = shared.get(study, {}) if study is not None else {}
        labels.append(label({k: v for k, v in diff.items() if drop.get(k, _ABSENT) != v}))
    return records.with_columns(
        pl.Series("config_key", keys, dtype=pl.String),
        pl.Series("config", _disambiguated(records, keys, labels), dtype=pl.String),
    )


_ABSENT = object()


def _column(records: pl.DataFrame, name: str) -> list[Any]:
    return records[name].to_list() if name in records.columns else [None] * records.height


def _shared_within_study(studies: list[str | None], diffs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per study: the differing fields every one of its records has with the same value."""
    shared: dict[str, dict[str, Any]] = {}
    for study, diff in zip(studies, diffs, strict=True):
        if study is None:
            continue
        if study not in shared:
            shared[study] = dict(diff)
        else:
            shared[study] = {k: v for k, v in shared[study].items() if diff.get(k, _ABSENT) == v}
    return shared


def _disambiguated(records: pl.DataFrame, keys: list[str], labels: list[str]) -> list[str]:
    """Two configs with the same label in the same table cell (e.g. two .npz files with one name, or two
    sweeps with different study settings) get a short hash of their key, so they stay apart visibly."""
    cell = [
        tuple(row)
        for row in records.select(
            *(c for c in ("method", "model", "profile", "dataset", "noise") if c in records.columns)
        ).iter_rows()
    ]
    seen: dict[tuple[Any, ...], set[str]] = {}
    for c, k, lab in zip(cell, keys, labels, strict=True):
        seen.setdefault((*c, lab), set()).add(k)
    out = []
    for c, k, lab in zip(cell, keys, labels, strict=True):
        if len(seen[(*c, lab)]) > 1:
            tag = "config " + hashlib.sha256(k.encode()).hexdigest()[:6]
            lab = f"{lab}, {tag}" if lab else tag
        out.append(lab)
    return out
