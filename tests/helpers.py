"""Config builders for fast tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisylab.config.profiles import make_config
from noisylab.config.run import RunConfig
from noisylab.train.engine import BatchPlace, Step
from noisylab.train.runtime import Context

# The place of a batch function called outside an epoch: the first (and only) batch of a 1-epoch phase.
FIRST_BATCH = BatchPlace(Step("train", 1, 1, 1e-3, 0.0), index=0, batches=1)


def digits_config(npz: Path, **overrides: Any) -> RunConfig:
    """The tiny profile on the digits .npz: a full pipeline run takes a few seconds."""
    base: dict[str, Any] = {
        "data.dataset": "npz",
        "data.root": str(npz),
        "data.noise": "sym:0.3",
        "data.train_subset": 400,
        "data.test_subset": 200,
        "model.width": 8,
        "data.crop_padding": 1,  # 16-px digits: a 4-px crop and mirrored digits make the task too hard
        "data.flip": False,
        "workers": 0,
    }
    return make_config("tiny", base | overrides)


def digits_context(cfg: RunConfig) -> Context:
    """The worker-side `Context` of `cfg` in this process (rank 0 of 1, CPU, no progress output)."""
    from noisylab.data.prepare import prepare_data
    from noisylab.train.engine import World
    from noisylab.train.worker import WorkerSpec, build_context

    bundle = prepare_data(cfg)
    spec = WorkerSpec(cfg=cfg, data=bundle, fingerprint=cfg.fingerprint(), progress=False)
    ctx = build_context(spec, bundle, World(), in_ray=False)
    ctx.log = None
    return ctx


# A pipeline schedule short enough for tests and long enough to learn the digits (every phase kept).
PIPELINE_LEARNS: dict[str, Any] = {
    "data.train_subset": 1000,
    "pretrain.epochs": 2,
    "warmup.epochs": 6,
    "warmup.lr": 3e-3,
    "refine.iterations": 2,
    "refine.epochs": (3, 3),
    "refine.stages": ((2, 3), (2, 3)),
    "refine.lrs": (1e-3, 3e-4),
    "batch_size": 64,
}
