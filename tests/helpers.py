"""Config builders for fast tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisylab.config import RunConfig
from noisylab.profiles import make_config


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
