"""The runner's device-fault guard on its own: a fault where the row's status fails before the plan
waits for it, a fault while staging the detector, and errors that are not device faults."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from dwellwise.daemon.build import PreparedScan
from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.ledger import Ledger
from dwellwise.daemon.protocol import JobState, ScanRequest
from dwellwise.daemon.runner import Runner
from dwellwise.daemon.server import Daemon
from dwellwise.drivers.faults import DeviceFault, find_device_fault
from dwellwise.drivers.sim_sdd import BeamPosition, make_sim_sdd
from dwellwise.drivers.sim_stage import SimStage
from dwellwise.planners import raster_scan
from dwellwise.simulators.clock import ScaledClock
from dwellwise.simulators.scenes import load_scene
from hardware_helpers import epics_device, hardware_config, wait_state
from ophyd.status import Status

pytestmark = pytest.mark.timeout(60)
SHAPE = (4, 5)


class FaultyStage(SimStage):
    """A simulated stage whose ``set`` fails at once (an already failed status) for some rows."""

    def __init__(self, *args, fail: dict[tuple[int, int], Exception], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail = fail
        self.attempts: list[tuple[int, int]] = []

    def set(self, row):
        self.attempts.append(row.key)
        error = self.fail.pop(row.key, None)
        if error is None:
            return super().set(row)
        status = Status(obj=self)
        status.set_exception(error)
        return status


def job(tmp_path: Path, fail: dict) -> tuple[PreparedScan, FaultyStage]:
    clock = ScaledClock(50.0)
    scene = load_scene("astronaut", shape=SHAPE, seed=0)
    stage = FaultyStage("stage", clock=clock, fail=fail)
    sdd = make_sim_sdd(scene, BeamPosition(scene, 0.5), stage, name="sdd", clock=clock)
    cube = tmp_path / "job.h5"
    sdd.file_path = str(cube)
    plan = raster_scan(stage, sdd, shape=SHAPE, pixel_size=0.5, dwell=0.01)
    scan = PreparedScan(
        job_id="job",
        request=ScanRequest(budget=10, shape=SHAPE, mode="raster"),
        cube_file=cube,
        plan=plan,
        beamline=SimpleNamespace(clock=clock),
        passes=1,
        budget_s=10.0,
    )
    return scan, stage


def wait_for(ledger: Ledger, states, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        j = ledger.get("job")
        if j.state in states:
            return j
        assert time.monotonic() < deadline, j
        time.sleep(0.01)


@pytest.fixture
def runner(tmp_path):
    ledger = Ledger(tmp_path)
    r = Runner(ledger)
    r.start()
    yield r
    r.stop()
    ledger.close()


def test_a_row_that_fails_before_the_plan_waits_pauses_and_flies_again(tmp_path, runner):
    stall = DeviceFault("stage x: stalled", device="stage", part="x", cause="stalled")
    scan, stage = job(tmp_path, {(1, 2): stall})
    runner.enqueue(scan)
    paused = wait_for(runner.ledger, {JobState.PAUSED, JobState.FAILED, JobState.COMPLETED})
    assert paused.state == JobState.PAUSED and "device fault: stage x: stalled" in paused.error
    runner.resume("job")
    done = wait_for(runner.ledger, {JobState.COMPLETED, JobState.FAILED})
    assert done.state == JobState.COMPLETED and done.error is None, done
    assert stage.attempts.count((1, 2)) == 2 and len(stage.attempts) == SHAPE[0] + 1
    with h5py.File(scan.cube_file) as f:
        assert f["entry/passes/1/rows_complete"][...].all()
        np.testing.assert_allclose(
            f["entry/data/live_time"][...], f["entry/passes/1/live_time"][...], rtol=1e-12
        )


def test_an_error_that_is_no_device_fault_still_fails_the_job(tmp_path, runner):
    scan, _ = job(tmp_path, {(1, 1): RuntimeError("software bug")})
    runner.enqueue(scan)
    failed = wait_for(runner.ledger, {JobState.FAILED, JobState.COMPLETED, JobState.PAUSED})
    assert failed.state == JobState.FAILED and "software bug" in failed.error


def test_find_device_fault_looks_through_causes_and_contexts():
    fault = DeviceFault("sdd: gone", device="sdd", part="XRF:mca1.VAL", cause="gone")
    try:
        try:
            raise fault
        except DeviceFault as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as outer:
        assert find_device_fault(outer) is fault
    assert find_device_fault(ValueError("no")) is None
    assert fault.summary == "sdd XRF:mca1.VAL: gone"


def test_an_ioc_that_does_not_answer_when_the_job_starts_pauses_it(tmp_path, clean_ioc):
    ioc = clean_ioc
    config = hardware_config(tmp_path, sdd=epics_device(ioc))
    with Daemon(config, trainer=False) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        ioc.hang()
        job_id = client.call("submit", shape=[2, 3], budget=4.0, t0=0.01, mode="raster")["job_id"]
        paused = wait_state(client, job_id, ("paused", "failed", "completed"))
        assert paused["state"] == "paused" and "no reply" in paused["error"], paused
        assert paused["error"].startswith("device fault: SDD 'sdd': THW:mca1.")
        ioc.answer()
        assert client.request("resume", {"job_id": job_id})["success"]
        final = wait_state(client, job_id)
        assert final["state"] == "completed", final
        with h5py.File(final["cube_file"]) as f:
            assert f["entry/passes/1/rows_complete"][...].all()
