"""Stratified folds, the fold a fold run holds out, the fold fields of the config, and how fold runs
share the CPUs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import digits_config

from noisylab.config.profiles import make_config
from noisylab.config.run import RunConfig, validate
from noisylab.data.folds import check_fold_count, stratified_folds
from noisylab.data.prepare import hold_out, prepare_data
from noisylab.errors import UserError
from noisylab.runner import default_name
from noisylab.studies.oof import plan_folds, plan_lanes
from noisylab.train.runtime import pretrain_cache_key
from noisylab.trainables import method_names


def test_folds_are_stratified_balanced_and_seeded() -> None:
    labels = np.random.default_rng(1).integers(0, 4, 103)
    folds = stratified_folds(labels, 5, seed=7)
    assert folds.min() == 1 and folds.max() == 5
    sizes = np.bincount(folds)[1:]
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 103
    for c in range(4):  # each class spread over the folds as evenly as its count allows
        per_fold = np.bincount(folds[labels == c], minlength=6)[1:]
        assert per_fold.max() - per_fold.min() <= 1
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=7))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=8))


def test_impossible_folds_are_refused() -> None:
    with pytest.raises(UserError, match="at least 2 folds"):
        stratified_folds(np.zeros(10, dtype=np.int64), 1, seed=0)
    with pytest.raises(UserError, match="would leave a fold empty"):
        stratified_folds(np.zeros(3, dtype=np.int64), 4, seed=0)
    # 20 samples, but class 2 has 3: a fourth fold would hold none of it, so 4 folds are refused, 3 are not.
    labels = np.array([0] * 9 + [1] * 8 + [2] * 3)
    with pytest.raises(UserError, match=r"class 'c' has only 3 training sample.*1 of the stratified folds"):
        check_fold_count(labels, 4, class_names=("a", "b", "c"))
    with pytest.raises(UserError, match="use --folds ≤ 3"):
        stratified_folds(labels, 4, seed=0)
    assert sorted(np.bincount(stratified_folds(labels, 3, seed=0)[labels == 2])[1:]) == [1, 1, 1]


def test_configs_without_folds_hash_as_before_the_fold_fields() -> None:
    """Fingerprints and pre-training cache keys computed by the commit before `data.folds` existed:
    runs and cached encoders made then are found by the same command."""
    assert RunConfig().fingerprint() == "c9333ce40045ef04"
    assert make_config("cpu-small", {"method": "ce"}).fingerprint() == "b22ea4ab4f5c86ec"
    tiny = make_config("tiny", {})
    assert tiny.fingerprint() == "06b8948680c0ea44"
    assert pretrain_cache_key(tiny, networks=1, world_size=1) == "2c04948613ade7470ade"


def test_fold_runs_differ_in_fingerprint_name_and_pretraining() -> None:
    base = make_config("tiny", {})
    one, two = (
        make_config("tiny", {"data.folds": 5, "data.holdout_fold": k, "data.noise": n})
        for k, n in ((1, "idn:0.3"), (2, "idn:0.3"))
    )
    assert len({base.fingerprint(), one.fingerprint(), two.fingerprint()}) == 3
    assert "-fold1of5-" in default_name(one) and "fold" not in default_name(base)
    keys = {pretrain_cache_key(c, networks=1, world_size=1) for c in (base, one, two)}
    assert len(keys) == 3
    # The folds follow the noisy labels, so a fold run's encoder depends on the noise too.
    other_noise = make_config("tiny", {"data.folds": 5, "data.holdout_fold": 1, "data.noise": "sym:0.5"})
    assert pretrain_cache_key(other_noise, networks=1, world_size=1) != pretrain_cache_key(
        one, networks=1, world_size=1
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data.folds": 5}, "go together"),
        ({"data.holdout_fold": 1}, "go together"),
        ({"data.folds": 1, "data.holdout_fold": 1}, "data.folds must be ≥ 2"),
        ({"data.folds": 5, "data.holdout_fold": 6}, "must lie in 1..5"),
        ({"data.folds": 5, "data.holdout_fold": 0}, "must lie in 1..5"),
    ],
)
def test_fold_fields_are_checked(overrides: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        validate(make_config("tiny", overrides), methods=method_names())


def test_a_fold_run_trains_on_the_other_folds_and_holds_its_own_out(digits_npz: Path) -> None:
    cfg = digits_config(digits_npz, seed=3)
    whole = prepare_data(cfg)
    parts = [hold_out(whole, folds=3, fold=k, seed=3) for k in (1, 2, 3)]
    held = [p.holdout for p in parts]
    assert all(h is not None for h in held)
    positions = np.concatenate([h.position for h in held if h is not None])
    assert np.array_equal(np.sort(positions), np.arange(len(whole.noisy_labels)))  # each sample once
    for part, h in zip(parts, held, strict=True):
        assert h is not None
        assert not set(part.train_index.tolist()) & set(h.dataset_index.tolist())  # never trained on
        assert np.array_equal(h.given, whole.noisy_labels[h.position])
        assert np.array_equal(h.images, whole.train_images[h.position])
        assert len(part.noisy_labels) + len(h.given) == len(whole.noisy_labels)
        kept = part.noisy_labels != part.clean_labels
        assert part.noise.realised_rate == pytest.approx(kept.mean())
    # prepare_data reads the fold fields and gives the same split.
    fold_cfg = validate(replace(cfg, data=replace(cfg.data, folds=3, holdout_fold=2)), methods=method_names())
    prepared = prepare_data(fold_cfg)
    assert prepared.holdout is not None and held[1] is not None
    assert np.array_equal(prepared.holdout.position, held[1].position)


def test_plan_folds_checks_every_fold_before_any_trains(tmp_path: Path, digits_npz: Path) -> None:
    cfg = digits_config(digits_npz)
    runs = plan_folds(cfg, 4, workers=0, storage=tmp_path)
    assert [r.fold for r in runs] == [1, 2, 3, 4]
    assert all(r.cfg.data.folds == 4 and r.cfg.data.holdout_fold == r.fold for r in runs)
    assert all(r.directory.parent == tmp_path.resolve() for r in runs)
    assert not list(tmp_path.iterdir())  # planning writes nothing
    with pytest.raises(UserError, match="is itself fold 2 of 4"):
        plan_folds(runs[1].cfg, 4, workers=0, storage=tmp_path)
    (runs[2].directory).mkdir()
    (runs[2].directory / "config.json").write_text(make_config("tiny", {}).to_json())
    with pytest.raises(UserError, match="another config"):
        plan_folds(cfg, 4, workers=0, storage=tmp_path)
    # 400 digits hold a batch of 350; a fold run of 4 folds trains on 300: refused before any folder.
    big_batch = replace(cfg, batch_size=350)
    with pytest.raises(UserError, match="batch_size 350 is larger than the 300 training images"):
        plan_folds(big_batch, 4, workers=0, storage=tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_lanes_never_give_out_more_cpus_than_there_are() -> None:
    assert plan_lanes(5, cpus=2, where="here") == plan_lanes(5, cpus=2, jobs=2, where="here")
    lanes = plan_lanes(5, cpus=2, where="here")
    assert (lanes.jobs, lanes.threads) == (2, 1)
    assert plan_lanes(5, cpus=16, where="here").threads == 3  # 5 at once, 3 threads each: 15 ≤ 16
    assert plan_lanes(3, cpus=16, jobs=1, where="here").threads == 16
    assert plan_lanes(2, cpus=16, jobs=4, where="here").jobs == 2  # never more lanes than folds
    ray_train = plan_lanes(5, cpus=16, workers=4, where="here")
    assert (ray_train.jobs, ray_train.cpus_per_worker) == (4, 1.0)
    assert plan_lanes(5, cpus=16, workers=2, jobs=2, where="here").cpus_per_worker == 4.0
    with pytest.raises(UserError, match="--jobs 3 would run more fold runs at once than here's 2 CPUs"):
        plan_lanes(5, cpus=2, jobs=3, where="here")
    with pytest.raises(UserError, match="--workers 3 asks for more Ray workers"):
        plan_lanes(5, cpus=2, workers=3, where="here")
    with pytest.raises(UserError, match="--jobs 0"):
        plan_lanes(5, cpus=2, jobs=0, where="here")


def test_labels_folds_scores_each_sample_by_the_fold_run_that_never_trained_on_it(
    digits_npz: Path, tmp_path: Path
) -> None:
    """`noisylab labels RUN --folds 3` end to end: three fold runs beside RUN, each trained on the samples
    its own samples.parquet lists and none of those it holds out; every training sample of RUN gets exactly
    one out-of-fold row, from the run that held it out, in RUN's order; the same command resumes."""
    import polars as pl
    from typer.testing import CliRunner

    from noisylab.cli import app
    from noisylab.runner import execute

    cfg = digits_config(digits_npz, method="ce", seed=4)
    whole = execute(cfg, storage=tmp_path / "runs", progress=False, use_ray=False).directory
    samples = pl.read_parquet(whole / "samples.parquet")
    out = tmp_path / "oof.parquet"
    argv = ["labels", str(whole), "--folds", "3", "--ranking", "builtin", "--output", str(out)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert (
        "3 of 3 fold runs to train" in result.stderr and "label issues flagged by noisylab's" in result.stderr
    )

    table = pl.read_parquet(out)
    assert table["index"].to_list() == list(range(samples.height))
    for column in ("dataset_index", "given_label", "class_name", "clean_label"):
        assert table[column].to_list() == samples[column].to_list(), column
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if "-fold" in p.name)
    assert [p.name.split("-fold")[1][:4] for p in runs] == ["1of3", "2of3", "3of3"]
    assert table["fold"].to_list() == stratified_folds(samples["given_label"].to_numpy(), 3, seed=4).tolist()
    probs = np.asarray(table["pred_probs"].to_numpy())
    for k, run in enumerate(runs, start=1):
        trained = set(pl.read_parquet(run / "samples.parquet")["dataset_index"].to_list())
        held = pl.read_parquet(run / "heldout.parquet")
        assert not trained & set(held["dataset_index"].to_list())  # never trained on what it scores
        assert trained | set(held["dataset_index"].to_list()) == set(samples["dataset_index"].to_list())
        rows = held["index"].to_numpy()
        assert (table["fold"].to_numpy()[rows] == k).all()
        assert np.array_equal(probs[rows], np.asarray(held["pred_probs"].to_numpy()))
    assert not np.allclose(probs, np.asarray(samples["pred_probs"].to_numpy()))  # not the in-sample ones

    flagged = table["is_label_issue"].to_numpy()
    assert flagged.any() and sorted(table["issue_rank"].drop_nulls().to_list()) == list(
        range(1, int(flagged.sum()) + 1)
    )
    assert (table["predicted_label"].to_numpy() == probs.argmax(axis=1)).all()

    refused = CliRunner().invoke(app, argv)  # the export exists: kept, one line
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.output
    again = CliRunner().invoke(app, [*argv, "--overwrite"])
    assert again.exit_code == 0 and "all 3 fold runs had finished" in again.stderr, again.output
    assert pl.read_parquet(out).equals(table)
