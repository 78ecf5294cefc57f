"""Per-sample outcome of a run: `samples.parquet` in the run folder, and `noisylab labels` exports.

One row per training sample (in the order of the run's training subset): its index there and in the
dataset's full training split (`dataset_index`: the subset is drawn from it), for data read from image
files the file's path relative to the data root (`file`), the label training started from
(`given_label`) and its class name (`class_name`), the label it ended with, the clean label (known for
synthetic noise; the given one for label files), whether and when the pipeline relabelled or selected
it, its last selection score, and the network's class probabilities at the end of the run
(`pred_probs`, N×K, the layout of cleanlab's `find_label_issues(labels, pred_probs)`). The
probabilities come from one scan over the training set without augmentation after the last epoch, the
cost of one test evaluation per sample.

A fold run (`data.folds`, made by `noisylab labels RUN --folds K`) also writes `heldout.parquet`: the
same columns for the fold it never trained on, its `index` that of the whole training set, and
`pred_probs` that fold's out-of-fold probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from noisylab.atomic import write_with
from noisylab.errors import UserError
from noisylab.train.engine import scan
from noisylab.train.evaluation import EVAL_BATCH
from noisylab.train.runtime import Context

SAMPLES_FILE = "samples.parquet"
HELDOUT_FILE = "heldout.parquet"
EXPORT_FORMATS = (".parquet", ".csv", ".npy")

# Per-sample selection bookkeeping a method may keep in `TrainState.extra` (the pipeline does).
TRACKED = {
    "times_selected": "how many selection stages picked the sample",
    "last_selected_step": "0-based schedule step of its last selection (-1: never)",
    "relabelled_iteration": "refinement iteration that last changed its label (-1: never)",
    "last_score": "its selection score at the last stage (lower = more likely clean; NaN: never scored)",
}


def final_probabilities(ctx: Context) -> np.ndarray:
    """Softmax of the final network on every training sample [N, K], identical on every rank."""
    probs = scan(
        ctx.net,
        ctx.train_images,
        transform=ctx.augmenter.plain,
        fn=lambda logits, idx: torch.softmax(logits.float(), dim=1),
        batch_size=EVAL_BATCH,
        world=ctx.world,
        progress=ctx.progress,
        desc="final scan",
    )
    return probs.numpy().astype(np.float32)


def heldout_probabilities(ctx: Context, images: np.ndarray) -> np.ndarray:
    """Softmax of the final network on a fold run's held-out images [M, C, H, W] → [M, K], transformed
    as the training set is when it is scanned (the run's normalisation, no augmentation)."""
    tensor = torch.from_numpy(np.array(images, copy=True)).to(ctx.world.device)
    probs = scan(
        ctx.net,
        tensor,
        transform=ctx.augmenter.plain,
        fn=lambda logits, idx: torch.softmax(logits.float(), dim=1),
        batch_size=EVAL_BATCH,
        world=ctx.world,
        progress=ctx.progress,
        desc="held-out scan",
    )
    return probs.numpy().astype(np.float32)


def named_columns(
    given: np.ndarray, class_names: tuple[str, ...] | None, files: tuple[str, ...] | None
) -> dict[str, Any]:
    """`class_name` (the given label's name) and, for data read from image files, `file` (its path
    relative to the data root): what traces a suspect back to the image on disk."""
    out: dict[str, Any] = {}
    if class_names is not None:
        out["class_name"] = pl.Series(np.asarray(class_names, dtype=object)[given], dtype=pl.String)
    if files is not None:
        out["file"] = pl.Series(list(files), dtype=pl.String)
    return out


def sample_table(
    *,
    given: np.ndarray,
    final: np.ndarray,
    clean: np.ndarray,
    probs: np.ndarray,
    tracked: dict[str, Any] | None = None,
    dataset_index: np.ndarray | None = None,
    class_names: tuple[str, ...] | None = None,
    files: tuple[str, ...] | None = None,
) -> pl.DataFrame:
    n = len(given)
    tracked = tracked or {}

    def column(name: str, fill: float) -> np.ndarray:
        value = tracked.get(name)
        if value is None:
            return np.full(n, fill)
        return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)

    named = named_columns(given, class_names, files)
    return pl.DataFrame(
        {
            "index": np.arange(n, dtype=np.int64),
            "dataset_index": np.arange(n, dtype=np.int64) if dataset_index is None else dataset_index,
            **({"file": named["file"]} if "file" in named else {}),
            "given_label": given.astype(np.int64),
            **({"class_name": named["class_name"]} if "class_name" in named else {}),
            "final_label": final.astype(np.int64),
            "clean_label": clean.astype(np.int64),
            "relabelled": given != final,
            "relabelled_iteration": column("relabelled_iteration", -1).astype(np.int64),
            "times_selected": column("times_selected", 0).astype(np.int64),
            "last_selected_step": column("last_selected_step", -1).astype(np.int64),
            "last_score": column("last_score", np.nan).astype(np.float64),
            "pred_probs": probs.astype(np.float32),  # an Array(Float32, K) column
        }
    )


def heldout_table(
    *,
    fold: int,
    position: np.ndarray,
    dataset_index: np.ndarray,
    given: np.ndarray,
    clean: np.ndarray,
    probs: np.ndarray,
    class_names: tuple[str, ...],
    files: tuple[str, ...] | None,
) -> pl.DataFrame:
    """A fold run's `heldout.parquet`: one row per held-out sample, `index` its place in the whole
    training set, `pred_probs` [M, K] from the network that never saw it."""
    named = named_columns(given, class_names, files)
    return pl.DataFrame(
        {
            "index": position.astype(np.int64),
            "dataset_index": dataset_index.astype(np.int64),
            **({"file": named["file"]} if "file" in named else {}),
            "fold": np.full(len(position), fold, dtype=np.int64),
            "given_label": given.astype(np.int64),
            "class_name": named["class_name"],
            "clean_label": clean.astype(np.int64),
            "pred_probs": probs.astype(np.float32),
        }
    )


HELDOUT_COLUMNS = ("index", "dataset_index", "fold", "given_label", "clean_label", "pred_probs")


def write_samples(table: pl.DataFrame, path: Path) -> None:
    write_with(path, table.write_parquet)  # atomically: all of it or none of it


# Every column `sample_table` writes: a file without one of them is not a samples table of noisylab's.
SAMPLE_COLUMNS = (
    "index",
    "dataset_index",
    "given_label",
    "final_label",
    "clean_label",
    "relabelled",
    "relabelled_iteration",
    "times_selected",
    "last_selected_step",
    "last_score",
    "pred_probs",
)


def read_samples(run_dir: Path) -> pl.DataFrame:
    """The samples table of a run folder (or the file itself), checked: readable Parquet, every column of
    `sample_table`, and `pred_probs` an N×K array of probabilities. UserError (one line) otherwise.
    `class_name` and `file` are optional: tables written before them lack them."""
    path = run_dir / SAMPLES_FILE if run_dir.is_dir() else run_dir
    if not path.exists():
        raise UserError(
            f"no {SAMPLES_FILE} at {path.parent}: the run is unfinished, or was made before runs kept "
            "per-sample data (run it again under another --name)"
        )
    return _read_table(path, SAMPLE_COLUMNS)


def read_heldout(run_dir: Path) -> pl.DataFrame:
    """A finished fold run's `heldout.parquet`, checked as `read_samples` checks its table."""
    path = run_dir / HELDOUT_FILE
    if not path.exists():
        raise UserError(
            f"no {HELDOUT_FILE} in {run_dir}: the fold run did not finish; run the same command to resume it"
        )
    return _read_table(path, HELDOUT_COLUMNS)


def _read_table(path: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    try:
        table = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise UserError(
            f"{path} is not a readable Parquet file ({_first_line(e)}): it is corrupt or half-copied; "
            "copy the run again, or train it again under another --name"
        ) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(
            f"{path} is not a noisylab samples table (it lacks the columns {', '.join(missing)}): "
            "point at the run folder noisylab wrote it in"
        )
    _check_probabilities(table, path)
    return table


def _check_probabilities(table: pl.DataFrame, path: Path) -> None:
    """`pred_probs` must be one fixed-length float row per sample, as `sample_table` writes it."""
    dtype = table.schema["pred_probs"]
    if not (isinstance(dtype, pl.Array) and dtype.inner is not None and dtype.inner.is_float()):
        raise UserError(
            f"{path}: pred_probs is {dtype}, not one row of class probabilities per sample "
            "(an array of floats): point at the run folder noisylab wrote it in"
        )


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def export_paths(output: Path) -> list[Path]:
    """Every file `export_samples(..., output)` writes: `output`, and beside a .parquet or .csv the
    `<stem>.pred_probs.npy` array cleanlab takes."""
    suffix = output.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UserError(f"--output {output}: name a {', '.join(EXPORT_FORMATS)} file")
    if suffix == ".npy":
        return [output]
    return [output, output.with_name(f"{output.stem}.pred_probs.npy")]


def check_export(output: Path, *, overwrite: bool = False) -> list[Path]:
    """The files `export_samples(..., output)` would write, after checking it may: UserError (one line
    naming every file) when the folder is missing, a name is a folder, or a file exists without
    `overwrite`. `labels --folds` calls it before training, so nothing is trained for a refusal."""
    paths = export_paths(output)
    if not output.parent.exists():
        raise UserError(f"--output {output}: the folder {output.parent} does not exist")
    folders = [p for p in paths if p.is_dir()]
    if folders:
        raise UserError(f"--output {output}: {folders[0]} is a folder: choose a file name")
    taken = [p for p in paths if p.exists()]
    if taken and not overwrite:
        raise UserError(
            f"--output {output} would replace {_names(taken)}, which already "
            f"{'exists' if len(taken) == 1 else 'exist'}: `noisylab labels` writes {_names(paths)}; "
            "pass --overwrite to replace them, or choose another --output"
        )
    return paths


def export_samples(table: pl.DataFrame, output: Path, *, overwrite: bool = False) -> list[Path]:
    """`.parquet`: the table as is (pred_probs a list column); `.csv`: one column per class (p0, p1, …);
    `.npy`: the N×K pred_probs array alone. Parquet and CSV also get a `.npy` of pred_probs beside them
    (`<stem>.pred_probs.npy`), the array cleanlab takes. An existing file among them is replaced only
    with `overwrite`: the refusal comes before anything is written, and names every file."""
    paths = check_export(output, overwrite=overwrite)
    probs = np.asarray(table["pred_probs"].to_numpy(), dtype=np.float32)
    write_with(paths[-1], lambda f: np.save(f, probs, allow_pickle=False))
    if output.suffix.lower() == ".parquet":
        write_samples(table, output)
    elif output.suffix.lower() == ".csv":
        classes = {f"p{k}": probs[:, k] for k in range(probs.shape[1])}
        flat = table.drop("pred_probs").with_columns(**classes)
        write_with(output, flat.write_csv)
    return paths


def _names(paths: list[Path]) -> str:
    return " and ".join(str(p) for p in paths)
