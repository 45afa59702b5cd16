"""An interrupted scan goes on from its cube file: nothing lost, nothing measured twice."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from dwellwise.drivers.sim import sim_beamline
from dwellwise.planners import ScanRefused, adaptive_scan
from dwellwise.planners.plans import resume_scan

SHAPE = (8, 10)


def beamline(path):
    bl = sim_beamline("chelsea", shape=(12, 12), pixel_size=0.5, speedup=10, seed=3)
    bl.sdd.file_path = str(path)
    return bl


@pytest.mark.parametrize("stop_after_s", [0.3, 1.6])  # in pass 1, in pass 2
def test_resume_after_abort_completes_every_pixel_exactly_once(tmp_path, stop_after_s):
    path = tmp_path / "scan.h5"
    budget = 30.0
    bl = beamline(path)
    RE = RunEngine({})
    threading.Timer(stop_after_s, RE.request_pause, kwargs={"defer": True}).start()
    start = bl.clock.now()
    with pytest.raises(RunEngineInterrupted):
        RE(adaptive_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=0.5, budget=budget,
                         t0=0.005, policy="blindspot-sqrt"))
    RE.abort("simulated crash")
    used_first = bl.clock.now() - start
    with h5py.File(path) as f:
        recorded = float(f["entry/budget_used_s"][()])
        done_before = {n: f[f"entry/passes/{n}/rows_complete"][...].copy() for n in ("1", "2")}
    assert 0 < recorded <= used_first
    assert not done_before["2"].all()

    bl2 = beamline(path)  # a fresh process would build a fresh beamline
    RE2 = RunEngine({})
    start = bl2.clock.now()
    RE2(resume_scan(bl2.stage, bl2.sdd, cube_file=path))
    used_second = bl2.clock.now() - start
    assert recorded + used_second <= budget
    with h5py.File(path) as f:
        assert bytes(f["entry/scan_status"][()]).strip() == b"completed"
        for n in ("1", "2"):
            assert f[f"entry/passes/{n}/rows_complete"][...].all()
        real = f["entry/data/real_time"][...]
        planned = f["entry/passes/1/dwell_planned"][...] + f["entry/passes/2/dwell_planned"][...]
        # each pixel was visited once per pass: real time at least the plan, and far below
        # what a second visit of either pass would add
        assert np.all(real >= planned * (1 - 1e-9))
        assert np.all(real < planned + 0.005)


def test_a_finished_scan_cannot_be_resumed(tmp_path):
    path = tmp_path / "scan.h5"
    bl = beamline(path)
    RunEngine({})(adaptive_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=0.5, budget=30,
                                t0=0.005, policy="uniform"))
    with pytest.raises(ScanRefused, match="nothing to resume"):
        resume_scan(bl.stage, bl.sdd, cube_file=path)
