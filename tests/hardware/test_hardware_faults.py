"""A device fault during a daemon job pauses the job (naming the device and what happened),
keeps every completed row, and the job resumes to completion once the fault is cleared, with
every row recorded exactly once."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from dwellwise.daemon.client import ControlClient, EventStream
from dwellwise.daemon.server import Daemon
from hardware_helpers import (
    AfterRows,
    epics_device,
    finish,
    hardware_config,
    resume,
    wait_state,
    zaber_device,
)

pytestmark = pytest.mark.timeout(120)

EPICS_JOB = {"shape": [3, 4], "budget": 2.5, "t0": 0.01, "policy": "bilevel"}
"""A tiny adaptive scan on the real-time EPICS detector (each pixel is one acquisition)."""
ZABER_JOB = {"shape": [6, 8], "budget": 30.0, "t0": 0.006, "policy": "bilevel", "seed": 1}
"""An adaptive scan on the emulated Zaber stage (20x real time) with a simulated detector."""


def check_cube(job: dict, rows: int) -> None:
    """Every row the job recorded is in its cube once, and none is lost: the cube's complete rows
    are exactly the rows the timeline (the ledger's ``rows_done_all``) counted; every pass but
    the last is complete (the budget governor may leave out rows at the end of the last pass,
    which are then never recorded); the summed live time is exactly the passes' (a row written
    twice, or half of one, breaks that); every recorded pixel dwelt at least as planned."""
    with h5py.File(job["cube_file"], "r") as f:
        assert bytes(f["entry/scan_status"][()]).strip() == b"completed"
        assert f["entry/budget_used_s"][()] <= job["request"]["budget"]
        passes = job["passes"]
        live_sum, recorded = 0.0, 0
        for k in range(1, passes + 1):
            g = f[f"entry/passes/{k}"]
            done = g["rows_complete"][...].astype(bool)
            if k < passes:
                assert done.all(), f"pass {k}: rows {np.flatnonzero(~done)} missing"
            assert done.sum() >= rows // 2, f"pass {k}: only rows {np.flatnonzero(done)}"
            recorded += int(done.sum())
            live = g["live_time"][...]
            assert np.all(live[done] > 0) and np.all(live[~done] == 0)
            live_sum = live_sum + live
            real_planned = np.where(done[:, None], g["dwell_planned"][...], 0.0)
            assert np.all(f["entry/data/real_time"][...] >= real_planned * (1 - 1e-6))
        np.testing.assert_allclose(f["entry/data/live_time"][...], live_sum, rtol=1e-12)
        assert recorded == job["rows_done_all"], (recorded, job["rows_done_all"])


def pause_and_resume(client, job_id, clear, expect: tuple[str, ...]) -> dict:
    """Wait for the fault to pause the job, check its message, clear the fault, resume."""
    job = wait_state(client, job_id, ("paused", "completed", "failed", "aborted"))
    assert job["state"] == "paused", job
    for text in expect:
        assert text in job["error"], job["error"]
    clear()
    resume(client, job)  # the fault is gone: fly the row again
    return job


def test_an_ioc_stall_pauses_the_job_which_resumes_once_cleared(tmp_path, clean_ioc):
    ioc = clean_ioc
    config = hardware_config(tmp_path, sdd=epics_device(ioc))
    with Daemon(config, trainer=False) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        status = client.call("status")
        assert status["devices"]["beamline"] == "hardware" and status["devices"]["open"]
        assert "EPICS MCA record THW:mca1" in status["devices"]["detector"]
        daemon.devices.stage.subscribe_rows(AfterRows(2, lambda: setattr(ioc.faults, "stall", True)))
        with EventStream(daemon.addresses["events"], topics=("log", "job")) as events:
            job_id = client.call("submit", **EPICS_JOB)["job_id"]
            paused = pause_and_resume(
                client,
                job_id,
                ioc.faults.clear,
                ("device fault", "SDD 'sdd'", "THW:mca1.ACQG", "stalled", "row 2 of pass 1"),
            )
            assert paused["rows_done_all"] == 2  # the rows before the fault are in the file
            final, _ = finish(client, job_id)
            seen = []
            while (event := events.next(timeout=0.2)) is not None:
                seen.append(event)
        assert final["state"] == "completed" and final["error"] is None, final
        logs = [p["msg"] for t, p in seen if t == "log"]
        assert any("paused by a device fault" in m and "THW:mca1.ACQG" in m for m in logs), logs
        states = [p["state"] for t, p in seen if t == "job"]
        assert states[:4] == ["queued", "running", "paused", "running"], states
        transitions = daemon.ledger.transitions(job_id)
        assert any(s == "paused" and "stalled" in note for s, _, note in transitions)
        assert "scene" not in final["request"] and "speedup" not in final["request"]
        check_cube(final, rows=3)


def test_a_zaber_stall_mid_row_pauses_the_job_which_resumes_to_completion(tmp_path, zaber):
    config = hardware_config(tmp_path, stage=zaber_device(zaber))
    with Daemon(config, trainer=False) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        stage = daemon.devices.stage
        mid = stage.offset_mm[0] + 1.75  # device mm inside every row of the region
        stage.subscribe_rows(AfterRows(3, lambda: zaber.inject_stall(1, mid)))
        job_id = client.call("submit", **ZABER_JOB)["job_id"]
        pause_and_resume(
            client,
            job_id,
            lambda: None,  # a stall is one-shot in the emulator: the stage is free again
            ("device fault", "stage x (device 1 axis 1)", "stalled and stopped (FS)", "at 1.75"),
        )
        final, _ = finish(client, job_id)
        assert final["state"] == "completed", final
        check_cube(final, rows=6)


def test_a_fault_again_after_resume_pauses_again_and_abort_keeps_the_rows(tmp_path, zaber):
    config = hardware_config(tmp_path, stage=zaber_device(zaber))
    with Daemon(config, trainer=False) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        daemon.devices.stage.subscribe_rows(AfterRows(2, lambda: zaber.set_silent(True)))
        job_id = client.call("submit", **ZABER_JOB)["job_id"]
        first = wait_state(client, job_id, ("paused",) + ("completed", "failed"))
        assert first["state"] == "paused" and "no reply" in first["error"], first
        resume(client, first)  # still silent: the replayed row faults again
        again = wait_state(client, job_id, ("paused", "completed", "failed"))
        assert again["state"] == "paused" and "no reply" in again["error"], again
        client.call("abort", job_id=job_id)
        final = wait_state(client, job_id)
        assert final["state"] == "aborted" and final["rows_done_all"] == 2, final
        with h5py.File(final["cube_file"], "r") as f:
            assert list(np.flatnonzero(f["entry/passes/1/rows_complete"][...])) == [0, 1]
        zaber.set_silent(False)
        assert client.call("status")["state"] == "idle"  # the daemon goes on serving
