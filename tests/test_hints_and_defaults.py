"""Small things a user trips on: a hint for a misspelt field, `--version`, each loss-only method described
by its own loss, every shipped study as a `--profile tiny` smoke test, a dry run that finds missing data,
the user's own data trained on its own labels, and an .npz's validation split named on the run line."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from noisylab.api import load_config
from noisylab.cli import app
from noisylab.config.profiles import make_config
from noisylab.errors import UserError
from noisylab.runner import execute
from noisylab.studies.tune import plan
from noisylab.sweeps import get_study, study_names

runner = CliRunner()
TINY = ["--profile", "tiny", "--workers", "0", "--no-progress", "--set", "data.crop_padding=1"]


def test_a_misspelt_field_names_the_field_it_is_close_to() -> None:
    with pytest.raises(UserError, match=r"'refine\.treshold' \(did you mean `refine\.threshold`\?\)"):
        load_config(profile="tiny", refine__treshold=0.5)
    with pytest.raises(UserError, match=r"did you mean `mentornet\.clean_fraction`\?"):
        make_config("tiny", {"mentornet.clean_frac": 0.1})
    with pytest.raises(UserError, match=r"'nothing\.at\.all'; list them"):  # nothing close: no guess
        make_config("tiny", {"nothing.at.all": 1})


def test_version_names_the_package_and_its_revision() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith(f"noisylab {version('noisylab')} (git ")
    exe = Path(sys.executable).parent / "noisylab"
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == result.stdout


def test_each_loss_only_method_is_described_by_its_own_loss() -> None:
    result = runner.invoke(app, ["methods"])
    rows = {line.split("│")[0].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "softmax-weighted cross entropy" in rows["swce"]
    assert "focal loss" in rows["focal"] and "γ" in rows["focal"]
    assert "NCE" in rows["nce_mae"] and "active-passive" in rows["nce_mae"]
    described = [rows[m].split("│")[-1].strip() for m in ("swce", "focal", "nce_mae", "ce")]
    assert len(set(described)) == 4


# ---- the user's own data ---------------------------------------------------------------------------


def _digits_with_val(path: Path, digits_npz: Path) -> Path:
    with np.load(digits_npz) as d:
        arrays = {k: d[k] for k in d.files}
    np.savez(path, **arrays, val_images=arrays["test_images"][:50], val_labels=arrays["test_labels"][:50])
    return path


def test_own_data_is_trained_on_its_own_labels_and_the_run_line_says_so(
    tmp_path: Path, digits_npz: Path
) -> None:
    npz = _digits_with_val(tmp_path / "mine.npz", digits_npz)
    base = ["run", "--dataset", "npz", "--data-root", str(npz), "--method", "ce", *TINY]
    plain = runner.invoke(app, [*base, "--storage", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    assert "noise none: the labels of your own npz data are taken as the noisy ones" in plain.stderr
    assert "its val_images and val_labels (50 images) are not used" in plain.stderr
    asked = runner.invoke(app, [*base, "--storage", str(tmp_path / "b"), "--noise", "sym:0.4"])
    assert asked.exit_code == 0, asked.output
    assert "noise none:" not in asked.stderr
    records = [pl.read_parquet(next((tmp_path / s).glob("*/record.parquet"))) for s in ("a", "b")]
    assert [(r["noise_kind"][0], r["noise_rate"][0]) for r in records] == [("none", 0.0), ("symmetric", 0.4)]
    assert records[0]["realised_noise_rate"][0] == 0.0
    assert make_config("tiny", {"data.dataset": "imagefolder"}).data.noise == "none"
    assert make_config("tiny", {"data.dataset": "cifar10"}).data.noise == "idn:0.3"  # benchmark sets
    by_set = make_config("tiny", {"data.dataset": "npz", "data.noise": "pair:0.2"})
    assert by_set.data.noise == "pair:0.2"


# ---- studies as smoke tests ------------------------------------------------------------------------


def test_every_shipped_study_plans_under_the_tiny_smoke_profile() -> None:
    for name in study_names():
        study = get_study(name)
        configs = plan(study, "tiny", {})
        assert configs and all(c.profile == "tiny" and c.seed == 0 for c in configs), name
        assert study.num_trials("tiny") == len(configs) * (study.num_samples if study.search else 1)
    assert get_study("medical").profile("tiny").overrides["refine.threshold"] == 0.25  # its cpu settings


@pytest.mark.slow
@pytest.mark.parametrize("study", study_names())
def test_the_first_tiny_trial_of_every_study_trains(study: str, tmp_path: Path, digits_npz: Path) -> None:
    """The study's own trial config (method, model, its cpu settings on the tiny profile), trained on the
    digits in place of its dataset: what `sweep STUDY --profile tiny` runs first, with data at hand."""
    cfg = plan(get_study(study), "tiny", {"data.crop_padding": 1})[0]
    digits = dataclasses.replace(cfg.data, dataset="npz", root=str(digits_npz), noise="sym:0.3")
    outcome = execute(dataclasses.replace(cfg, data=digits), storage=tmp_path, use_ray=False, progress=False)
    record = outcome.record
    assert record["method"] == cfg.method and record["model"] == cfg.model.name
    assert record["profile"] == "tiny" and record["test_acc"] is not None


def _idx_fashion_mnist(root: Path, *, train: int = 200, test: int = 100) -> Path:
    """A small Fashion-MNIST in its IDX files (random 28×28 images, all 10 classes)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return root


@pytest.mark.slow
def test_a_shipped_study_runs_whole_as_a_smoke_test(tmp_path: Path) -> None:
    data = _idx_fashion_mnist(tmp_path / "fmnist")
    args = ["sweep", "fmnist_cpu", "--profile", "tiny", "--local", "--storage", str(tmp_path / "st")]
    result = runner.invoke(app, [*args, "--set", f"data.root={data}", "--set", "data.crop_padding=1"])
    assert result.exit_code == 0, result.output
    assert "2 trials finished, 0 failed; 2 records" in result.stderr


def test_a_dry_run_names_missing_data_and_passes_once_it_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default roots are data/<name> under the working folder
    args = ["sweep", "paper_table2", "--dry-run", "--profile", "tiny"]
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "78 trials" in missing.stdout
    (line,) = missing.stderr.splitlines()
    assert "cifar10 (data/cifar10/cifar-10-batches-py/)" in line
    assert "cifar100 (data/cifar100/cifar-100-python/)" in line
    cifar10 = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    cifar10.mkdir(parents=True)
    for name in ("batches.meta", "data_batch_1", "data_batch_2", "test_batch"):
        (cifar10 / name).touch()
    partly = runner.invoke(app, args).stderr
    assert "missing files of 2 of the 2" in partly and "data_batch_3, data_batch_4" in partly.replace(
        str(cifar10) + "/", ""
    ).replace("data/cifar10/cifar-10-batches-py/", "")
    for name in ("data_batch_3", "data_batch_4", "data_batch_5"):
        (cifar10 / name).touch()
    cifar100 = tmp_path / "data" / "cifar100" / "cifar-100-python"
    cifar100.mkdir(parents=True)
    for name in ("meta", "train", "test"):
        (cifar100 / name).touch()
    present = runner.invoke(app, args)
    assert present.exit_code == 0 and present.stderr == "", present.output
