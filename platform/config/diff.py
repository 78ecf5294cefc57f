"""What sets one run's configuration apart: the fields that differ from its method's defaults.

Reports group runs into cells of seeds. Two runs belong to one cell only when their configs differ by
the seed alone, so every record gets a `config_key` (its whole config less the seed) and a readable
`config` label (the fields that differ from `profiles.make_config(profile, {"method": m})`, so a plain
`paper_focal` run is not labelled `loss.main=focal`). Fields a table already shows as columns (method,
model, dataset, noise, profile) are left out of the label, and so are fields every record of one sweep
shares (the study's own settings): what is left is what a reader needs to tell rows apart.

A method's paper defaults that depend on the run (DivideMix's λ_u, Co-teaching's forget rate, the baseline's
budget; `noisylab.config.sections`) are compared resolved on both sides: a record's config as its run used
it (a record saved before resolution existed is resolved here the same way), the defaults resolved for the
run's own dataset and noise. A field the run's rules chose is never a difference: what the user changed is
the input the rule read (the budget a forward split follows, say), and that is labelled.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

import polars as pl

from noisylab.config.run import DataConfig, RunConfig, resolve
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


def resolved_flat(config: RunConfig | dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """(the flat config with the values its run used, the paths of those its method's rules chose). A
    saved config this version cannot read (a field it no longer has) is taken as it is."""
    if isinstance(config, dict):
        try:
            config = RunConfig.from_dict(config)
        except UserError:
            flat = flatten(config)
            chosen = flat.pop("resolved", None)
            return flat, frozenset(chosen) if isinstance(chosen, list) else frozenset()
    run = resolve(config)
    flat = flatten(run.to_dict())
    del flat["resolved"]
    return flat, frozenset(run.resolved)


@lru_cache(maxsize=256)
def _defaults(profile: str, method: str, dataset: str, noise: str) -> dict[str, Any]:
    """The flat defaults of `method` under `profile`, its rules resolved for the run's dataset and noise;
    the dataset and noise fields themselves stay the profile's (`noisylab show` lists them when they
    differ)."""
    from noisylab.config.profiles import make_config

    try:
        plain = make_config(profile, {"method": method})
        cfg = make_config(profile, {"method": method, "data.dataset": dataset, "data.noise": noise})
    except UserError:  # a profile this version no longer has: compare with the bare defaults
        plain = RunConfig(profile=profile, method=method)
        cfg = resolve(
            RunConfig(profile=profile, method=method, data=DataConfig(dataset=dataset, noise=noise))
        )
    flat = flatten(cfg.to_dict())
    del flat["resolved"]
    return flat | {"data.dataset": plain.data.dataset, "data.noise": plain.data.noise}


def differences(cfg: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """The dotted-path fields of `cfg` whose value differs from its method's defaults under its profile
    (the seed, method and profile themselves excluded, and the fields its method's rules chose)."""
    return _differences(*resolved_flat(cfg))


def _differences(flat: dict[str, Any], chosen: frozenset[str]) -> dict[str, Any]:
    flat = _comparable(flat)
    base = _defaults(
        str(flat.get("profile", "gpu")),
        str(flat.get("method", "paper")),
        str(flat.get("data.dataset", DataConfig.dataset)),
        str(flat.get("data.noise", DataConfig.noise)),
    )
    skip = {"seed", "method", "profile"} | chosen
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
    # Resolved, so a record saved with None and one saved with the values its rules chose are one config.
    used = [resolved_flat(c) if c is not None else None for c in configs]
    diffs = [_differences(*u) if u is not None else {} for u in used]
    shared = _shared_within_study(studies, diffs)
    keys, labels = [], []
    for u, study, fp, diff in zip(used, studies, data_fps, diffs, strict=True):
        if u is None:
            keys.append("")
        else:
            flat = {k: v for k, v in _comparable(u[0]).items() if k not in ("seed", "data.root")}
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
