"""A lost node during a two-worker run: Ray Train restarts it from the newest checkpoint by itself, and
the run ends with the record an uninterrupted run has (history, labels, class probabilities, weights).

The cluster (`ray.cluster_utils.Cluster`, two nodes on this machine) is started by
`benchmarks/preemption.py` in a process of its own, so it never meets the session's Ray (`ray_session`)
in this process; the `own_ray` mark makes this test run before any test starts that one, so the two never
share the machine's cores either. RAY_TMPDIR is a folder of its own: no other Ray on the machine (`ray.init
("auto")` reads /tmp/ray) can find the test's cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "preemption.py"


@pytest.mark.slow
@pytest.mark.own_ray
def test_a_removed_node_is_survived_and_the_record_is_the_uninterrupted_one(tmp_path: Path) -> None:
    import ray

    assert not ray.is_initialized(), "the session's Ray started first: this test must run before it"
    out = tmp_path / "preemption.json"
    with tempfile.TemporaryDirectory(prefix="nlr-") as ray_tmp:  # short: Ray's socket paths are bounded
        env = os.environ | {"RAY_TMPDIR": ray_tmp, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--failures", "1", "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["failures_survived"] == 1 and len(result["failures"]) == 1
    for same in ("same_history", "same_labels", "same_final_labels_file", "same_pred_probs", "same_weights"):
        assert result[same], (same, result)
    assert result["same_test_acc"]
    assert result["niceness"]["worker"] == result["niceness"]["driver"]  # not Ray's 15 above it
