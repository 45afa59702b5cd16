"""The unchanged ``adaptive_scan`` on the emulated Zaber stage and the caproto EPICS detector, both
at real time (the IOC counts in wall seconds): with a plain RunEngine, and through the daemon
configured with the emulator's port and the IOC's record."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.server import Daemon
from dwellwise.drivers.epics import EpicsSDD
from dwellwise.drivers.fly import FlyRow
from dwellwise.drivers.sim_stage import SimStage
from dwellwise.drivers.zaber import ZaberStage
from dwellwise.planners import adaptive_scan
from dwellwise.simulators.clock import ScaledClock
from hardware_helpers import (
    ELEMENTS,
    EPICS_FAST,
    ZABER_FAST,
    emulator,
    epics_device,
    hardware_config,
    wait_state,
    zaber_device,
)

pytestmark = pytest.mark.timeout(90)
SHAPE = (3, 4)
BUDGET_S = 3.5


def check_complete(path, budget: float) -> None:
    with h5py.File(path, "r") as f:
        assert bytes(f["entry/scan_status"][()]).strip() == b"completed"
        for k in (1, 2):
            assert f[f"entry/passes/{k}/rows_complete"][...].all()
            assert np.all(f[f"entry/passes/{k}/live_time"][...] > 0)
        assert f["entry/data/counts"][...].sum() > 0
        assert 0 < f["entry/budget_used_s"][()] <= budget
        assert f["entry/passes/2/dwell_planned"][...].std() > 0  # the second pass is adaptive


def test_adaptive_scan_on_zaber_and_epics_with_a_plain_run_engine(tmp_path, clean_ioc):
    import os

    os.environ.update(clean_ioc.client_env())
    emu = emulator(speedup=1.0)
    stage = ZaberStage("stage", emu.port, clock=emu.clock, **ZABER_FAST)
    try:
        sdd = EpicsSDD(clean_ioc.record_name, elements=ELEMENTS, name="sdd", stage=stage, **EPICS_FAST)
        sdd.file_path = str(tmp_path / "scan.h5")
        RE = RunEngine({})
        docs = []
        RE.subscribe(lambda name, doc: docs.append((name, doc)))
        before = clean_ioc.acquisitions
        RE(adaptive_scan(stage, sdd, shape=SHAPE, pixel_size=0.5, budget=BUDGET_S, t0=0.01, policy="bilevel"))
    finally:
        stage.close()
        emu.close()
    start, stop = docs[0][1], docs[-1][1]
    assert stop["exit_status"] == "success"
    # the budget covers the run, from its start to its end (staging the detector comes first);
    # at real time, wall seconds are instrument seconds
    assert stop["time"] - start["time"] <= BUDGET_S
    assert clean_ioc.acquisitions - before == 2 * SHAPE[0] * SHAPE[1]  # one per pixel and pass
    check_complete(tmp_path / "scan.h5", BUDGET_S)


def test_adaptive_scan_through_the_daemon_on_zaber_and_epics(tmp_path, clean_ioc):
    emu = emulator(speedup=1.0)
    try:
        config = hardware_config(tmp_path, stage=zaber_device(emu), sdd=epics_device(clean_ioc))
        with Daemon(config, trainer=False) as daemon:
            client = ControlClient(daemon.addresses["control"], timeout=10)
            devices = client.call("status")["devices"]
            assert devices["open"] and devices["stage"].startswith(f"Zaber X/Y stage on {emu.port}")
            job_id = client.call(
                "submit", shape=list(SHAPE), budget=BUDGET_S, t0=0.01, policy="bilevel"
            )["job_id"]
            job = wait_state(client, job_id)
            assert job["state"] == "completed", job
            assert job["rows_done_all"] == 2 * SHAPE[0] and job["used_s"] <= BUDGET_S
            check_complete(job["cube_file"], BUDGET_S)
            # the devices stay open for the next job
            again = client.call("submit", shape=[2, 2], budget=1.5, t0=0.01, mode="raster")
            assert wait_state(client, again["job_id"])["state"] == "completed"
        assert daemon.devices.stage is None  # closed at shutdown
    finally:
        emu.close()


class Gates:
    def __init__(self) -> None:
        self.finished = []

    def row_started(self, g) -> None:
        pass

    def row_aborted(self, g) -> None:
        pass

    def row_finished(self, g) -> None:
        self.finished.append(g)


def test_stages_report_the_travel_direction_of_each_row():
    """The EPICS detector measures pixel after pixel in the order the stage reports
    (``RowGates.reverse``), not from where the x readback happens to be."""
    emu = emulator()
    zaber = ZaberStage("stage", emu.port, clock=emu.clock, **ZABER_FAST)
    try:
        for stage in (SimStage("sim", clock=ScaledClock(50.0)), zaber):
            gates = Gates()
            stage.subscribe_rows(gates)
            for k, reverse in enumerate((False, True, False)):
                row = FlyRow(1, k, 0.5 * k, 0.5 * np.arange(6), np.full(6, 0.006), reverse=reverse)
                stage.set(row).wait(20)
            assert [g.reverse for g in gates.finished] == [False, True, False]
            stage.unsubscribe_rows(gates)
            stage.set(FlyRow(1, 3, 1.5, 0.5 * np.arange(6), np.full(6, 0.006))).wait(20)
            assert len(gates.finished) == 3  # no longer gated
    finally:
        zaber.close()
        emu.close()
