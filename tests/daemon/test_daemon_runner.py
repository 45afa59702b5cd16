"""The RunEngine host with stub plans: failures, the queue after a failure, the analysis hook."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import bluesky.plan_stubs as bps
import pytest
from dwellwise.daemon.build import PreparedScan
from dwellwise.daemon.ledger import Ledger
from dwellwise.daemon.protocol import JobState, ScanRequest
from dwellwise.daemon.runner import Runner, RunnerError


def scan(job_id: str, plan, tmp_path: Path, **request) -> PreparedScan:
    return PreparedScan(
        job_id=job_id,
        request=ScanRequest(budget=10, **request),
        cube_file=tmp_path / f"{job_id}.h5",
        plan=plan,
        beamline=SimpleNamespace(clock=SimpleNamespace(speedup=1.0)),
        passes=1,
        budget_s=10.0,
    )


def fails_in_run():
    yield from bps.open_run({"passes": 1, "shape": [2, 2]})
    yield from bps.checkpoint()
    raise RuntimeError("detector on fire")


def fails_before_run():
    raise ValueError("no beam")
    yield  # pragma: no cover


def fine():
    yield from bps.open_run({"passes": 1, "shape": [2, 2]})
    for _ in range(3):
        yield from bps.checkpoint()
        yield from bps.sleep(0.01)
    yield from bps.close_run()


def wait(ledger: Ledger, job_id: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        job = ledger.get(job_id)
        if job.state.finished or job.state == JobState.INTERRUPTED:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.01)


@pytest.fixture
def runner(tmp_path):
    ledger = Ledger(tmp_path)
    changes = []
    r = Runner(ledger, on_job=lambda job: changes.append((job.job_id, str(job.state))))
    r.changes = changes
    r.start()
    yield r
    r.stop()
    ledger.close()


def test_failed_plans_are_recorded_and_the_queue_goes_on(runner, tmp_path):
    runner.enqueue(scan("a", fails_in_run(), tmp_path))
    runner.enqueue(scan("b", fails_before_run(), tmp_path))
    runner.enqueue(scan("c", fine(), tmp_path))
    a, b, c = (wait(runner.ledger, j) for j in "abc")
    assert a.state == JobState.FAILED and "detector on fire" in a.error
    assert b.state == JobState.FAILED and "no beam" in b.error
    assert c.state == JobState.COMPLETED and c.error is None
    assert ("a", "running") in runner.changes and ("c", "completed") in runner.changes
    assert runner.snapshot()["state"] == "idle"


def test_analysis_hook_runs_after_completion(runner, tmp_path):
    done = threading.Event()
    runner.analysis = lambda job: done.set()
    runner.enqueue(scan("x", fine(), tmp_path, analysis=True))
    assert wait(runner.ledger, "x").state == JobState.COMPLETED
    assert done.wait(5)


def test_queue_limit(tmp_path):
    ledger = Ledger(tmp_path)
    r = Runner(ledger, max_queue=1)  # not started: nothing leaves the queue
    r.enqueue(scan("one", fine(), tmp_path))
    with pytest.raises(RunnerError, match="queue is full"):
        r.enqueue(scan("two", fine(), tmp_path))
    ledger.close()
