"""A lost node does not end a run: two-worker runs on a two-node Ray cluster on this machine, the way Ray
tests itself (`ray.cluster_utils.Cluster`).

1. Ray of its own (no cluster yet): a task runs at this process's niceness, not Ray's default 15.
2. A cluster of a head and one worker node (one CPU each) runs the pipeline with two Train workers,
   uninterrupted: the reference.
3. The same run again, in another folder; after a checkpoint the worker node is removed (its worker
   dies, as on a preempted instance) and a fresh node added; `--failures N` does it N times, at different
   epochs. Ray Train restarts the worker group from the newest checkpoint by itself (`max_failures`).
4. The two records compared: per-epoch history (clocks aside), final labels, per-sample class
   probabilities, and the weights of the newest checkpoint, exactly.

Prints one JSON object (and writes it with `--out`): what was compared, each failure's epoch and what it
cost in seconds (from the node's removal to the end of the epoch it interrupted, less a plain epoch), and
the two runs' wall times.

    .venv/bin/python benchmarks/preemption.py --failures 2 --out /tmp/preemption.json

It starts Ray itself, twice: run it in a process of its own (tests/test_preemption.py does), with
RAY_TMPDIR set to a folder of its own so that no other Ray on the machine finds this cluster.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from method_records import write_digits

CLOCKS = {"seconds", "images_per_s", "time"}
# The pipeline on 300 digits, two refinement iterations of 3 epochs: 8 epochs, room for failures.
OVERRIDES: dict[str, Any] = {
    "data.dataset": "npz",
    "data.noise": "sym:0.3",
    "data.train_subset": 300,
    "data.test_subset": 200,
    "data.crop_padding": 1,
    "data.flip": False,
    "refine.epochs": (3, 3),
    "refine.stages": ((1, 3), (1, 3)),
    "refine.threshold": 2.0,
    "workers": 2,
    "method": "paper",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def niceness_of_own_ray() -> dict[str, int]:
    """The niceness of a task on a Ray that noisylab starts for itself, and of this process."""
    import ray

    from noisylab.runner import init_ray

    init_ray(None)

    @ray.remote(num_cpus=0)
    def niceness() -> int:
        return os.nice(0)

    try:
        return {"driver": os.nice(0), "worker": int(ray.get(niceness.remote()))}
    finally:
        ray.shutdown()


def epochs_written(run_dir: Path) -> list[dict[str, Any]]:
    from noisylab.results.live import METRICS_FILE

    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the line being written
    return rows


class Preemptor(threading.Thread):
    """Removes the cluster's worker node once the run has written `after` epochs (one failure per entry,
    each after a later epoch), then adds a fresh node; records when."""

    def __init__(self, cluster: Any, node: Any, run_dir: Path, after: list[int]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.node, self.run_dir, self.after = cluster, node, run_dir, after
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for epochs in self.after:
                while len({r["step"] for r in epochs_written(self.run_dir)}) < epochs:
                    time.sleep(0.2)
                done = max(r["step"] for r in epochs_written(self.run_dir))
                removed = time.time()
                self.cluster.remove_node(self.node, allow_graceful=False)
                time.sleep(2.0)  # the instance is gone for a moment before its replacement boots
                # Off the main thread a node cannot install its SIGTERM hook (signal.signal raises), so
                # this one goes without it; cluster.shutdown() still stops it.
                self.cluster._shutdown_at_exit = False
                self.node = self.cluster.add_node(num_cpus=1, object_store_memory=100 * 1024**2)
                self.events.append({"after_step": done, "removed_at": removed, "added_at": time.time()})
        except BaseException as e:  # reported by the main thread too, which may wait for ever without it
            traceback.print_exc()
            self.error = e


def comparable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in CLOCKS} for row in history]


def newest_weights(run_dir: Path) -> dict[str, Any]:
    import torch

    from noisylab.train.runtime import newest_checkpoint

    path = newest_checkpoint(run_dir)
    assert path is not None, f"no checkpoint in {run_dir}"
    return dict(torch.load(path, map_location="cpu", weights_only=True)["model"])


def same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def failure_costs(events: list[dict[str, Any]], epochs: list[dict[str, Any]], plain: float) -> list[float]:
    """Per failure: seconds from the node's removal until the interrupted epoch (the one after the
    newest checkpoint) was written, less what that epoch takes without a failure."""
    costs = []
    for event in events:
        later = [
            r["time"]
            for r in epochs
            if r["step"] == event["after_step"] + 1 and r["time"] > event["removed_at"]
        ]
        costs.append(round(min(later) - event["removed_at"] - plain, 1) if later else float("nan"))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--failures", type=int, default=1, help="nodes removed in the second run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from noisylab.config.profiles import make_config
    from noisylab.runner import execute

    logging.getLogger("ray").setLevel(logging.WARNING)
    # A busy machine: a fresh node's workers may take more than Ray Train's 60 s to start, and a starved
    # raylet must not be taken for a lost one (a killed one still fails its first health check).
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600")
    os.environ.setdefault("RAY_health_check_timeout_ms", "30000")
    out: dict[str, Any] = {"niceness": niceness_of_own_ray()}
    with tempfile.TemporaryDirectory(prefix="nl-preempt-") as scratch:
        root = Path(scratch)
        npz = write_digits(root / "digits.npz")
        cfg = make_config("tiny", OVERRIDES | {"data.root": str(npz)})
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "object_store_memory": 150 * 1024**2,
                "gcs_server_port": free_port(),  # not 6379: another Ray on this machine may hold it
                "include_dashboard": False,
            },
        )
        worker_node = cluster.add_node(num_cpus=1, object_store_memory=100 * 1024**2)
        try:
            started = time.perf_counter()
            whole = execute(
                cfg, storage=root / "whole", progress=False, address=cluster.address, max_failures=0
            )
            out["uninterrupted_wall_s"] = round(time.perf_counter() - started, 1)
            plain = statistics.median(r["seconds"] for r in epochs_written(whole.directory))
            steps = len(json.loads(whole.record["history_json"]))
            # Failures spread over the run, each after a checkpoint (never before the first epoch).
            after = sorted(
                {max(1, round(steps * (i + 1) / (args.failures + 1))) for i in range(args.failures)}
            )
            run_dir = root / "preempted" / whole.name
            preemptor = Preemptor(cluster, worker_node, run_dir, after)
            preemptor.start()
            started = time.perf_counter()
            hit = execute(
                cfg,
                storage=root / "preempted",
                progress=False,
                address=cluster.address,
                max_failures=args.failures,
            )
            out["preempted_wall_s"] = round(time.perf_counter() - started, 1)
            preemptor.join(timeout=60)
            if preemptor.error is not None:
                raise preemptor.error
            epochs = epochs_written(hit.directory)
            out["failures"] = [
                {"after_step": e["after_step"], "cost_s": c}
                for e, c in zip(preemptor.events, failure_costs(preemptor.events, epochs, plain), strict=True)
            ]
            out["failures_survived"] = len(preemptor.events)
            out["epochs"] = steps
            out["plain_epoch_s"] = round(plain, 1)
            a, b = whole.record, hit.record
            out["same_history"] = comparable(json.loads(a["history_json"])) == comparable(
                json.loads(b["history_json"])
            )
            out["same_labels"] = a["final_labels_sha256"] == b["final_labels_sha256"]
            out["same_test_acc"] = a["test_acc"] == b["test_acc"]
            labels = [np.load(d / "final_labels.npy") for d in (whole.directory, hit.directory)]
            out["same_final_labels_file"] = bool(np.array_equal(*labels))
            import polars as pl

            samples = [pl.read_parquet(d / "samples.parquet") for d in (whole.directory, hit.directory)]
            out["same_pred_probs"] = samples[0]["pred_probs"].to_list() == samples[1]["pred_probs"].to_list()
            out["same_weights"] = same_weights(newest_weights(whole.directory), newest_weights(hit.directory))
            out["attempt_seconds"] = b["attempt_seconds"]
        finally:
            ray.shutdown()
            cluster.shutdown()
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
