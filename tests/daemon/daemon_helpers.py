"""Helpers of the daemon tests: configurations on free ports, small scans, waiting."""

from __future__ import annotations

import time

from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.config import DaemonConfig

SMALL = {"scene": "astronaut", "shape": [8, 10], "budget": 40, "t0": 0.005, "speedup": 30}
"""An adaptive scan of about 1.3 s of wall time (a loaded machine's hiccups, magnified by the
speedup, must not end its first pass)."""
SLOW = {**SMALL, "speedup": 20}
"""The same scan, about 2.5 s of wall time (room to pause and abort it)."""
FINAL = ("completed", "failed", "aborted", "interrupted")


def make_config(data_dir, **daemon) -> DaemonConfig:
    fields = {
        "control": "tcp://127.0.0.1:0",
        "events": "tcp://127.0.0.1:0",
        "documents": "tcp://127.0.0.1:0",
        "data_dir": data_dir,
        "status_interval": 0.5,
        **daemon,
    }
    return DaemonConfig().with_overrides(**fields)


def wait_state(client: ControlClient, job_id: str, states=FINAL, timeout: float = 30.0) -> dict:
    """Poll ``job`` until its state is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.call("job", job_id=job_id)
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")
        time.sleep(0.01)


def wait_idle(client: ControlClient, timeout: float = 30.0) -> None:
    """Wait until no job runs and none is queued."""
    deadline = time.monotonic() + timeout
    while True:
        st = client.call("status")
        if st["state"] == "idle" and st["queue_length"] == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon still {st['state']} after {timeout} s")
        time.sleep(0.02)
