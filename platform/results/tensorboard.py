"""TensorBoard for one run (`noisylab run --logger tensorboard`), written by rank 0 after every epoch.

Written with tensorboardX's own writer rather than Ray Tune's logger callback, which a run without Tune
would only imitate: its tags all began `ray/tune/`, its steps counted reports from 1, and its
hyper-parameters listed all 95 config fields, `lsl.*` and `mentornet.*` on a `paper` run. Here:

* tags by meaning: `train/loss`, `test/acc`, `test/f1`, `test/class_acc/<class>`, `selection/precision`,
  `consensus/label_precision`, `labels/acc`, ...; a method's own diagnostics under its name
  (`dividemix/lambda_u`, `mentornet/weight_mean`);
* the step of every point is the epoch's `step` in `metrics.jsonl` (0 for the first epoch), so a point in
  TensorBoard and a line of the file name the same epoch;
* hyper-parameters: the run's own settings and the sections its method reads (`sections.sections_read`),
  with the final test accuracy and macro-F1 as the metrics of the hparams panel.

Sweeps keep Ray Tune's callback (`trackers.ray_callbacks`): there Tune is what reports.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from noisylab.config.run import RunConfig

# Bookkeeping of an epoch's row (where it sits in the schedule, when), not a measurement.
_POSITION = frozenset({"step", "phase", "iteration", "epoch", "stage", "time", "pretrain_cached"})
_EXACT = {
    "train_loss": "train/loss",
    "images_per_s": "train/images_per_s",
    "seconds": "train/seconds",
    "label_acc": "labels/acc",
    "relabelled": "consensus/relabelled",
}
_PREFIXES = (
    ("test_", "test/"),
    ("train_", "train/"),
    ("loss_", "train/loss_"),  # a method's loss terms (DivideMix's loss_x and loss_u, LSL's loss_st)
    ("selected_", "selection/"),  # the pipeline's stages
    ("selection_", "selection/"),  # other methods' selected sets
    ("consensus_", "consensus/"),
    ("division_", "division/"),  # DivideMix's GMM division, per network
    ("structural_", "structural/"),  # LSL's structural labels
)
HPARAM_METRICS = ("test/acc", "test/f1")  # the hparams panel's columns: the run's final figures


def tag(key: str, method: str) -> str:
    """The TensorBoard tag of a metrics key: `train_loss` → `train/loss`, `selected_precision` →
    `selection/precision`, a method's own diagnostic `lambda_u` → `dividemix/lambda_u`."""
    if key in _EXACT:
        return _EXACT[key]
    for prefix, group in _PREFIXES:
        if key.startswith(prefix):
            return group + key.removeprefix(prefix)
    if key.endswith("label_acc"):  # the training labels' accuracy, as the method sees them
        return "labels/" + key
    return f"{method}/{key}"


def scalars(metrics: dict[str, Any], method: str, class_names: Sequence[str]) -> dict[str, float]:
    """{tag: value} of one epoch's metrics: finite numbers only (an empty selection's precision is
    None), and the per-class test accuracies one tag per class."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in _POSITION:
            continue
        if key == "test_class_acc" and isinstance(value, list | tuple):
            for i, acc in enumerate(value):
                name = class_names[i] if i < len(class_names) else str(i)
                if isinstance(acc, int | float) and math.isfinite(acc):
                    out[f"test/class_acc/{name}"] = float(acc)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        out[tag(key, method)] = float(value)
    return out


def hyperparameters(cfg: RunConfig) -> dict[str, bool | int | float | str]:
    """The run's own settings and the fields of the sections its method reads, flat by dotted path;
    lists as JSON text and None as 'none' (the hparams panel takes numbers, booleans and text)."""
    from noisylab.config.diff import flatten
    from noisylab.config.sections import sections_read
    from noisylab.config.variants import base_method

    read = sections_read(base_method(cfg.method))
    flat = flatten(cfg.to_dict())
    kept = {k: v for k, v in flat.items() if "." not in k or k.split(".")[0] in read}
    kept.pop("resolved", None)
    out: dict[str, bool | int | float | str] = {}
    for key, value in kept.items():
        if value is None:
            out[key] = "none"
        elif isinstance(value, bool | int | float | str):
            out[key] = value
        else:
            out[key] = json.dumps(value)
    return out


class TensorBoardLog:
    """An `on_step` callback writing each epoch's scalars to an event file in `run_dir`."""

    def __init__(self, run_dir: Path, cfg: RunConfig, class_names: Sequence[str]) -> None:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams

        from noisylab.config.variants import base_method

        self.method = base_method(cfg.method)
        self.class_names = tuple(class_names)
        self.writer = SummaryWriter(logdir=str(run_dir), flush_secs=30)
        # Written first, in the run's own file: the panel shows the run while it trains.
        for summary in hparams(hyperparameters(cfg), dict.fromkeys(HPARAM_METRICS, 0.0)):
            self.writer.file_writer.add_summary(summary)

    def __call__(self, index: int, step: Any, metrics: dict[str, Any]) -> None:
        at = int(metrics.get("step", index))
        for name, value in scalars(metrics, self.method, self.class_names).items():
            self.writer.add_scalar(name, value, global_step=at)
        self.writer.flush()  # an epoch takes seconds to minutes: a reader sees it when it ends

    def close(self) -> None:
        self.writer.close()


# ---- reading an event file back (tests, BENCHMARKS.md), without TensorBoard itself ----------------------


def _events(path: Path) -> Iterator[Any]:
    """The Event records of a file: TFRecord framing, each record an 8-byte little-endian length, its
    4-byte CRC, the serialised Event and the data's 4-byte CRC (not checked here: a reader for tests)."""
    from tensorboardX.proto import event_pb2

    data = path.read_bytes()
    at = 0
    while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        at += 12
        yield event_pb2.Event.FromString(data[at : at + length])
        at += length + 4


def read_scalars(path: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in the event file, in the order written."""
    return [
        (value.tag, event.step, value.simple_value)
        for event in _events(path)
        for value in event.summary.value
        if value.HasField("simple_value")
    ]


def read_hparams(path: Path) -> dict[str, Any]:
    """The hyper-parameters the file's hparams session starts with, by name."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    for event in _events(path):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name != "hparams":
                continue
            content = HParamsPluginData.FromString(value.metadata.plugin_data.content)
            if content.HasField("session_start_info"):
                found = content.session_start_info.hparams
                return {k: getattr(v, v.WhichOneof("kind")) for k, v in found.items()}
    return {}
