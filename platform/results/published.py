"""Published numbers to compare measured ones with (`noisylab report --vs-paper`).

`published.csv` (package data) holds one row per published cell:

    table        which published table the number comes from (free text)
    dataset      a noisylab dataset name (cifar10, cifar100, fashion-mnist, chest-xray, chaoyang, ...)
    noise_kind   a `NoiseSpec` kind (idn, symmetric, pair, none, file)
    noise_rate   the target flip rate as a fraction (0.2 for IDN 20 %), as in result records
    method       a noisylab method name (ce, coteaching, dividemix, paper, ...); methods noisylab does
                 not implement (e.g. causalnl) are shown for reference, with no measured value
    model        the backbone the paper used (resnet18, ...), or empty when the paper names none;
                 a row with a model is compared only with runs of that model
    metric       acc (test accuracy) or f1 (test macro-F1)
    value_pct    the published value, in percent
    source       paper and table the value was copied from

Shipped (each row's `source` says where it was copied from):
- every cell of Tables II–V of the report "Improving Training For Noisy Labels" (IDN throughout).
  Table II's baseline rows are cited there from Kim et al., CVPR 2024 (LSL) without a backbone, so
  their `model` is empty; "Our Method" is `paper_dividemix` (section V: "The following results were
  obtained after implementing our pipeline on top of Dividemix"), ResNet-18 (Table III adds ResNet-34
  for it and DivideMix on CIFAR-100). Tables IV–V (Chest X-ray, Chaoyang) do not name their metric;
  section IV-E names test F1 as the primary metric, so they are `f1` (`noisylab report --metric f1`).
  Table V's "Focal Loss" is `paper_focal`, "SWCE + FL" is `paper_swce_focal`.
- C2D and DivideMix on CIFAR-10 with symmetric noise 20/50/80/90 % (PreAct ResNet-18), as the C2D
  README (Zheltonozhskii et al., WACV 2022) puts them side by side.
- the Fashion-MNIST IDN results of Yao et al. 2021 (CausalNL, NeurIPS 2021) for CE, Co-teaching and
  CausalNL.

No number is estimated. Add any other published cell with a CSV of the same columns:
`noisylab report --vs-paper --published FILE` (its rows are added to these, and replace a shipped row
with the same key).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from noisylab.errors import UserError

COLUMNS: dict[str, pl.DataType] = {
    "table": pl.String(),
    "dataset": pl.String(),
    "noise_kind": pl.String(),
    "noise_rate": pl.Float64(),
    "method": pl.String(),
    "model": pl.String(),
    "metric": pl.String(),
    "value_pct": pl.Float64(),
    "source": pl.String(),
}
KEY = ("dataset", "noise_kind", "noise_rate", "method", "model", "metric")
METRICS = ("acc", "f1")
NOISE_KINDS = ("none", "idn", "symmetric", "pair", "file")
PACKAGED = "published.csv"


def load_published(extra: Path | None = None) -> pl.DataFrame:
    """The shipped published numbers, plus (and overridden by) the rows of a user CSV `extra`."""
    # Beside this module (package data). `importlib.resources` cannot read it: `noisylab` is a namespace
    # package (platform/ has no __init__.py), which 3.11's resource readers do not support when editable.
    shipped = Path(__file__).with_name(PACKAGED).read_text(encoding="utf-8")
    table = _parse(shipped, PACKAGED)
    if extra is not None:
        if not extra.is_file():
            raise UserError(f"--published {extra}: no such file (a CSV with columns {', '.join(COLUMNS)})")
        try:
            text = extra.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--published {extra}: cannot read it as UTF-8 text ({e})") from None
        user = _parse(text, str(extra))
        table = pl.concat([user, table]).unique(list(KEY), keep="first", maintain_order=True)
    return table


def _parse(text: str, name: str) -> pl.DataFrame:
    try:
        raw = pl.read_csv(text.encode(), infer_schema=False)  # every column as text: checked below
    except pl.exceptions.PolarsError as e:
        raise UserError(f"{name} is not a CSV file ({str(e).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise UserError(f"{name} lacks the columns {', '.join(missing)}: it needs {', '.join(COLUMNS)}")
    rows = raw.select(list(COLUMNS))
    for number in ("noise_rate", "value_pct"):
        hit = rows.with_row_index().filter(pl.col(number).cast(pl.Float64, strict=False).is_null())
        if hit.height:
            raise UserError(
                f"{name}, data row {hit['index'][0] + 1}: {number} {hit[number][0]!r} is not a number"
            )
    out = rows.with_columns(
        pl.col("noise_rate", "value_pct").cast(pl.Float64),
        pl.col("model").fill_null("").str.strip_chars(),
        pl.col("noise_kind", "metric", "method", "dataset").str.strip_chars(),
    )
    checks = [
        (~pl.col("metric").is_in(METRICS), f"metric must be one of {', '.join(METRICS)}"),
        (~pl.col("noise_kind").is_in(NOISE_KINDS), f"noise_kind must be one of {', '.join(NOISE_KINDS)}"),
        ((pl.col("noise_rate") < 0) | (pl.col("noise_rate") >= 1), "noise_rate is a fraction in [0, 1)"),
        ((pl.col("value_pct") < 0) | (pl.col("value_pct") > 100), "value_pct is a percentage in [0, 100]"),
        (pl.col("method").is_null() | pl.col("dataset").is_null(), "method and dataset are required"),
    ]
    for bad, rule in checks:
        hit = out.with_row_index().filter(bad.fill_null(True))
        if hit.height:
            raise UserError(f"{name}, data row {hit['index'][0] + 1}: {rule}")
    return out
