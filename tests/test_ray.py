"""Real Ray Train runs: the in-process local mode, two data-parallel workers, crash and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import digits_config

from noisylab.data.prepare import prepare_data
from noisylab.runner import execute
from noisylab.train.worker import WorkerSpec, run_local, train_loop

TIMING = {"seconds", "images_per_s"}
SHORT: dict[str, Any] = {"data.train_subset": 300, "refine.threshold": 2.0}


def comparable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def test_trainable_in_train_local_mode_matches_the_engine(digits_npz: Path, tmp_path: Path) -> None:
    """`ScalingConfig(num_workers=0)` runs the Ray Train loop in this process, through Ray's report API."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = digits_config(digits_npz, **SHORT)
    bundle = prepare_data(cfg)
    spec = WorkerSpec(cfg=cfg, data=bundle, fingerprint=cfg.fingerprint(), progress=False)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec},
        scaling_config=ScalingConfig(num_workers=0),
        run_config=RunConfig(name="local", storage_path=str(tmp_path / "ray")),
    )
    via_ray = trainer.fit().return_value  # type: ignore[attr-defined]  # Train V2's Result
    direct = run_local(spec, tmp_path / "direct")
    assert comparable(via_ray["history"]) == comparable(direct["history"])
    assert (via_ray["labels"] == direct["labels"]).all()


@pytest.mark.slow
def test_two_workers_crash_and_resume_like_an_uninterrupted_run(
    ray_session: None, digits_npz: Path, tmp_path: Path
) -> None:
    cfg = digits_config(digits_npz, **(SHORT | {"workers": 2}))
    whole = execute(cfg, storage=tmp_path / "a", progress=False)
    history = json.loads(whole.record["history_json"])
    assert whole.record["workers"] == 2 and len(history) == 6
    assert any(s["selected_size"] > 0 for s in whole.record["stages"])
    checkpoints = [p for p in whole.directory.glob("checkpoint_*") if p.is_dir()]
    assert 1 <= len(checkpoints) <= 2  # one per epoch, the newest two kept

    from ray.train import TrainingFailedError

    with pytest.raises(TrainingFailedError):
        execute(cfg, storage=tmp_path / "b", progress=False, fail_at_step=3)
    resumed = execute(cfg, storage=tmp_path / "b", progress=False)
    assert resumed.resumed
    assert comparable(json.loads(resumed.record["history_json"])) == comparable(history)
    assert resumed.record["final_labels_sha256"] == whole.record["final_labels_sha256"]


def test_without_an_address_runs_start_a_ray_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray's discovery (address None) scans this machine's clusters and prints a traceback when it finds
    # several ("Found multiple active Ray instances"); "local" always starts one of our own.
    import ray

    from noisylab.runner import init_ray

    seen: dict[str, Any] = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    init_ray(None)
    assert seen["address"] == "local"
    init_ray("auto")
    assert seen["address"] == "auto"
