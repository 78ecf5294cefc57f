"""The report's pipeline, in-process on real data (scikit-learn's digits in the MedMNIST .npz layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import PIPELINE_LEARNS, digits_config

from noisylab.config.run import RunConfig
from noisylab.runner import execute
from noisylab.trainables.paper import pipeline_schedule

# Enough training on 1,000 digits for the selection to mean something, in ~10 s on 2 cores.
LEARNS = PIPELINE_LEARNS


def test_schedule_is_the_reports() -> None:
    steps = pipeline_schedule(RunConfig())
    assert [s.phase for s in steps].count("pretrain") == 30
    assert [s.phase for s in steps].count("warmup") == 5
    refine = [s for s in steps if s.phase == "refine"]
    assert len(refine) == 4 + 7 * 3
    stages = [(s.iteration, s.epoch) for s in refine if s.stage is not None]
    assert stages == [(1, 2), (1, 3), (1, 4)] + [(i, e) for i in (2, 3, 4) for e in (2, 5, 7)]
    assert {s.iteration: s.lr for s in refine} == {1: 1e-4, 2: 1e-5, 3: 1e-5, 4: 1e-6}
    assert all(s.lr == 1e-4 and s.weight_decay == 0.03 for s in steps if s.phase == "warmup")
    no_pretrain = pipeline_schedule(RunConfig(pretrain=RunConfig().pretrain.__class__(method="none")))
    assert not any(s.phase == "pretrain" for s in no_pretrain)


@pytest.fixture(scope="module")
def paper_record(digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = digits_config(digits_npz, **LEARNS)
    return execute(cfg, storage=tmp_path_factory.mktemp("runs"), use_ray=False, progress=False).record


def test_selection_is_far_cleaner_than_the_noisy_labels(paper_record: dict[str, Any]) -> None:
    r = paper_record
    clean_fraction = 1 - r["realised_noise_rate"]
    assert 0.6 < clean_fraction < 0.8  # sym:0.3
    assert len(r["stages"]) == 4 and len(r["iterations"]) == 2
    for stage in r["stages"]:
        assert stage["selected_size"] >= 30
        assert stage["selected_precision"] > 0.9 > clean_fraction + 0.1
    for it in r["iterations"]:
        assert it["consensus_label_precision"] > 0.9


def test_report_scale_threshold_never_changes_a_label(paper_record: dict[str, Any]) -> None:
    # NCE + 2(1 − p_y) < 1 forces p_y > 1/2, so the arg-max of a selected sample is its own label:
    # at the report's scale and CIFAR threshold, consensus marks samples (for augmented copies) but
    # relabels none. Halving the MAE (the Active-Passive-Losses scale) lets predictions replace labels.
    assert all(it["relabelled"] == 0 for it in paper_record["iterations"])
    assert paper_record["final_label_acc"] == pytest.approx(1 - paper_record["realised_noise_rate"])


def test_apl_scale_relabels(digits_npz: Path, tmp_path: Path) -> None:
    cfg = digits_config(
        digits_npz,
        **(
            LEARNS
            | {
                "refine.mae_weight": 0.5,
                "refine.iterations": 1,
                "refine.epochs": (3,),
                "refine.stages": ((2, 3),),
                "refine.lrs": (1e-3,),
            }
        ),
    )
    r = execute(cfg, storage=tmp_path, use_ray=False, progress=False).record
    assert r["iterations"][0]["relabelled"] > 0
    assert r["final_label_acc"] != pytest.approx(1 - r["realised_noise_rate"])


def test_the_pipeline_learns_and_records_every_phase(paper_record: dict[str, Any]) -> None:
    r = paper_record
    assert r["test_acc"] > 0.5 and r["test_f1"] > 0.4  # ten classes: chance is 0.1
    assert r["warmup_test_acc"] is not None
    phases = [(p["phase"], p["iteration"]) for p in r["phases"]]
    assert phases == [("warmup", 0), ("refine", 1), ("refine", 2)]  # eval_every=phase in the tiny profile
    history = json.loads(r["history_json"])
    assert [h["phase"] for h in history][:2] == ["pretrain", "pretrain"]
    pretrain_losses = [h["train_loss"] for h in history if h["phase"] == "pretrain"]
    assert all(loss > 0 for loss in pretrain_losses)
    assert r["profile"] == "tiny" and r["method"] == "paper" and r["num_train"] == 1000
    assert len(r["transition"]) == 10 and all(abs(sum(row) - 1) < 1e-9 for row in r["transition"])


def test_augmented_copies_enlarge_batches_of_pseudo_labelled_samples(paper_record: dict[str, Any]) -> None:
    history = json.loads(paper_record["history_json"])
    first_it2 = next(h for h in history if h["phase"] == "refine" and h["iteration"] == 2)
    consensus_1 = paper_record["iterations"][0]["consensus_size"]
    # images seen = 1,000 originals + 2 copies of every pseudo-labelled sample (last batch may drop one)
    seen = first_it2["images_per_s"] * first_it2["seconds"]
    assert seen == pytest.approx(1000 + 2 * consensus_1, abs=3)


def test_ce_baseline_gets_the_supervised_budget(digits_npz: Path, tmp_path: Path) -> None:
    cfg = digits_config(digits_npz, **(LEARNS | {"method": "ce", "baseline.epochs": None}))
    r = execute(cfg, storage=tmp_path, use_ray=False, progress=False).record
    history = json.loads(r["history_json"])
    assert len(history) == 6 + 3 + 3  # warm-up + refinement epochs
    assert {h["phase"] for h in history} == {"train"}
    assert r["test_acc"] > 0.3 and r["stages"] == [] and r["iterations"] == []


def test_samples_of_a_run_and_their_export(digits_npz: Path, tmp_path: Path) -> None:
    """The run keeps one row per training sample; `noisylab labels` exports it in cleanlab's layout."""
    import numpy as np
    import polars as pl
    from typer.testing import CliRunner

    from noisylab.cli import app
    from noisylab.runner import LABELS_FILE, execute

    cfg = digits_config(digits_npz, **{"refine.threshold": 1.5})
    outcome = execute(cfg, storage=tmp_path / "runs", progress=False, use_ray=False)
    samples = pl.read_parquet(outcome.directory / "samples.parquet")
    n = outcome.record["num_train"]
    probs = np.asarray(samples["pred_probs"].to_numpy())
    assert probs.shape == (n, outcome.record["num_classes"])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert samples["final_label"].to_list() == np.load(outcome.directory / LABELS_FILE).tolist()
    changed = samples.filter(pl.col("relabelled"))
    assert (changed["relabelled_iteration"] >= 1).all()  # a changed label says when it changed
    assert not samples.filter(pl.col("relabelled_iteration") == -1)["relabelled"].any()
    stages = len(outcome.record["stages"])
    times = samples["times_selected"].to_numpy()
    assert times.max() <= stages and times.sum() == sum(s["selected_size"] for s in outcome.record["stages"])
    assert samples["last_score"].is_not_nan().all()
    kept = samples["dataset_index"].to_numpy()  # the class-balanced subset of the 1,400 training digits
    assert len(set(kept)) == n and kept.max() < 1400 and (np.diff(kept) > 0).all()
    # The given label's class name (an .npz names its classes by number) and no files: arrays have none.
    assert samples["class_name"].to_list() == [str(y) for y in samples["given_label"].to_list()]
    assert "file" not in samples.columns

    out = tmp_path / "suspects.parquet"
    result = CliRunner().invoke(app, ["labels", str(outcome.directory), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "suspects.pred_probs.npy"), probs)
    assert pl.read_parquet(out)["given_label"].to_list() == samples["given_label"].to_list()
