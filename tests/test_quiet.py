"""Known-harmless Ray messages are dropped on local runs; real errors still reach the terminal."""

from __future__ import annotations

import logging

import pytest

from noisylab import quiet

PREEMPTION = (
    "[2026-11-30 16:55:03,820 E 10434 10468] core_worker.cc:2465: Actor with class name: "
    "'PreemptionWatcher' and ID: 'b44e' has constructor arguments in the object store and max_restarts > 0."
)
REAL = "[2026-11-30 16:55:03,820 E 10434 10468] core_worker.cc:999: Worker crashed: out of memory"


def test_worker_output_keeps_real_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from ray._private import worker

    quiet.install()
    quiet.install()  # idempotent: one filter, not two
    worker.print_to_stdstream(
        {"lines": [PREEMPTION, REAL, "[1/6] pretrain 1/1  loss 4.1"], "pid": 1, "is_err": True, "ip": "x"},
        ignore_prefix=True,
    )
    err = capsys.readouterr().err
    assert "PreemptionWatcher" not in err
    assert "out of memory" in err and "pretrain 1/1" in err


def test_token_notice_is_dropped_other_warnings_kept(caplog: pytest.LogCaptureFixture) -> None:
    quiet.install()
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    with caplog.at_level(logging.WARNING, logger=log.name):
        log.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled")
        log.warning("could not read the token file")
    assert [r.getMessage() for r in caplog.records] == ["could not read the token file"]
