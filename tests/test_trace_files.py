"""Trace a suspect to its file: `samples.parquet` and every export name the given label's class and, for
data read from image files, the file's path relative to the data root; older tables still export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from noisylab.cli import app
from noisylab.config.profiles import make_config
from noisylab.runner import execute

CLASSES = {"ant": (200, 30, 30), "bee": (30, 200, 30), "cat": (30, 30, 200)}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/{train,test}/<class>/<i>.png: 8×8 RGB images, one colour per class plus noise."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("test", 4)):
        for name, colour in CLASSES.items():
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (8, 8, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def run_dir(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = make_config(
        "tiny",
        {
            "method": "ce",
            "data.dataset": "imagefolder",
            "data.root": str(image_folder),
            "data.noise": "sym:0.3",
            "data.crop_padding": 1,
            "model.width": 8,
            "workers": 0,
        },
    )
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).directory


def test_samples_name_each_image_file_and_its_given_class(image_folder: Path, run_dir: Path) -> None:
    samples = pl.read_parquet(run_dir / "samples.parquet")
    names = sorted(CLASSES)
    assert samples["class_name"].to_list() == [names[y] for y in samples["given_label"].to_list()]
    files = samples["file"].to_list()
    assert len(set(files)) == samples.height == 48
    for row in samples.iter_rows(named=True):
        # The file is where the image lies, and its folder is its clean class (folders are the labels).
        path = image_folder / row["file"]
        assert path.is_file() and Path(row["file"]).parts[:2] == ("train", names[row["clean_label"]])
    noisy = samples.filter(pl.col("given_label") != pl.col("clean_label"))
    assert noisy.height > 0  # sym:0.3 moved some labels: their class_name is not their folder
    assert all(Path(f).parts[1] != c for f, c in zip(noisy["file"], noisy["class_name"], strict=True))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_export_carries_the_file_and_class_name(run_dir: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"suspects{suffix}"
    result = CliRunner().invoke(app, ["labels", str(run_dir), "--output", str(out)])
    assert result.exit_code == 0, result.output
    exported = pl.read_csv(out) if suffix == ".csv" else pl.read_parquet(out)
    samples = pl.read_parquet(run_dir / "samples.parquet")
    assert exported["file"].to_list() == samples["file"].to_list()
    assert exported["class_name"].to_list() == samples["class_name"].to_list()


def test_a_samples_table_from_before_the_names_still_exports(run_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    samples = pl.read_parquet(run_dir / "samples.parquet")
    samples.drop("class_name", "file").write_parquet(old / "samples.parquet")
    for name in ("old.csv", "older.parquet"):
        result = CliRunner().invoke(app, ["labels", str(old), "--output", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert pl.read_csv(tmp_path / "old.csv")["given_label"].to_list() == samples["given_label"].to_list()
    assert "file" not in pl.read_parquet(tmp_path / "older.parquet").columns


def test_the_out_of_fold_export_carries_the_file_and_class_name(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "oof.csv"
    # 48 images in 3 folds: each fold run trains on 32, one batch of the tiny profile's 32.
    argv = ["labels", str(run_dir), "--folds", "3", "--storage", str(tmp_path / "folds")]
    result = CliRunner().invoke(app, [*argv, "--output", str(out)])
    assert result.exit_code == 0, result.output
    exported = pl.read_csv(out)
    samples = pl.read_parquet(run_dir / "samples.parquet")
    assert exported["file"].to_list() == samples["file"].to_list()
    assert exported["class_name"].to_list() == samples["class_name"].to_list()
    for run in (tmp_path / "folds").iterdir():  # each held-out table names its own files too
        held = pl.read_parquet(run / "heldout.parquet")
        assert held["file"].to_list() == samples["file"].gather(held["index"]).to_list()
