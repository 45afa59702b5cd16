"""ZaberStage over pyserial against the pty emulator: connection, moves, fly rows, and the
dwellwise plans (raster and adaptive) running unchanged with the simulated SDD."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import grid_scan
from bluesky.utils import RunEngineInterrupted
from dwellwise.drivers.fly import FlyRow
from dwellwise.drivers.sim import sim_beamline
from dwellwise.drivers.sim_sdd import BeamPosition, make_sim_sdd
from dwellwise.drivers.sim_stage import RowInterrupted
from dwellwise.drivers.zaber import ZaberStage
from dwellwise.drivers.zaber_protocol import ZaberPortError, ZaberWarningFault
from dwellwise.planners import adaptive_scan, raster_scan
from dwellwise.simulators.clock import ScaledClock
from dwellwise.simulators.kinematics import Kinematics, row_profiles
from dwellwise.simulators.zaber_emulator import ZaberEmulator
from ophyd.utils import LimitError

pytestmark = pytest.mark.timeout(60)
SPEEDUP = 20.0
PITCH = 0.5


class Gates:
    """A row listener that keeps what the stage told it."""

    def __init__(self) -> None:
        self.started, self.finished, self.aborted = [], [], []

    def row_started(self, g):
        self.started.append(g)

    def row_finished(self, g):
        self.finished.append(g)

    def row_aborted(self, g):
        self.aborted.append(g)


@pytest.fixture
def emu():
    with ZaberEmulator(clock=ScaledClock(SPEEDUP), homed=True) as e:
        yield e


@pytest.fixture
def stage(emu):
    st = ZaberStage("stage", emu.port, clock=emu.clock, timeout_s=0.3)
    yield st
    st.close()


def fly(stage, row, timeout=20):
    status = stage.set(row)
    status.wait(timeout)
    return status


def test_connect_reads_kinematics_limits_and_positions(stage, emu):
    assert stage.kinematics.v_max == pytest.approx(100.0, rel=1e-5)
    assert stage.kinematics.a_max == pytest.approx(1000.0, rel=5e-3)
    assert stage.velocity.get() == stage.kinematics.v_max
    (xl, xh), (yl, yh) = stage.limits
    assert xl == pytest.approx(-10.0) and xh == pytest.approx(310.0, abs=1e-3)
    assert stage.x.position == pytest.approx(emu.position_mm(1) - 10.0, abs=1e-3)
    assert stage.homed and stage.link.require_reply_checksums
    assert emu.devices[1].alerts and emu.devices[2].checksums


def test_constructor_errors_are_clear(emu):
    with pytest.raises(ZaberPortError, match="/dev/nonexistent-zaber.*cannot open"):
        ZaberStage("stage", "/dev/nonexistent-zaber")
    with pytest.raises(ValueError, match="must differ"):
        ZaberStage("stage", emu.port, x_axis=(1, 1), y_axis=(1, 1))
    with pytest.raises(ValueError, match="device 1-99"):
        ZaberStage("stage", emu.port, y_axis=(0, 1))


def test_kinematics_are_written_to_the_devices_and_read_back(emu):
    st = ZaberStage("stage", emu.port, clock=emu.clock, kinematics=Kinematics(50.0, 400.0, settle_s=0.01))
    try:
        assert st.kinematics.v_max == pytest.approx(50.0, rel=1e-5) and st.kinematics.v_max >= 50.0
        assert st.kinematics.a_max >= 400.0 and st.kinematics.settle_s == 0.01
        assert st.get_maxspeed()[1] == pytest.approx(50.0, rel=1e-5)
        faster = st.set_kinematics(Kinematics(80.0, 800.0))
        assert faster.v_max == pytest.approx(80.0, rel=1e-5) and st.get_accel()[0] >= 800.0
    finally:
        st.close()


def test_unhomed_stage_refuses_to_move_until_homed():
    with ZaberEmulator(clock=ScaledClock(SPEEDUP)) as emu:
        st = ZaberStage("stage", emu.port, clock=emu.clock)
        try:
            assert not st.homed
            with pytest.raises(ZaberWarningFault, match=r"stage x \(device 1 axis 1\).*\(WR\).*home"):
                st.x.move(5.0)
            st.home()
            assert st.homed and st.x.position == pytest.approx(-10.0)
            st.x.move(5.0)
            st.y.move(7.25)
            assert st.x.position == pytest.approx(5.0, abs=1e-3)
            assert emu.position_mm(2) == pytest.approx(17.25, abs=1e-3)
        finally:
            st.close()


def test_moves_check_soft_limits_and_read_positions_back(stage, emu):
    with pytest.raises(LimitError):
        stage.x.move(400.0)
    with pytest.raises(LimitError):
        stage.y.move(-11.0)
    stage.x.move(12.0)
    assert stage.x.read_position() == pytest.approx(12.0, abs=1e-3)
    stage.x.move_velocity(20.0)
    stage.x.stop()
    pos = stage.x.read_position()
    assert pos > 12.0
    assert stage.read()["stage_x"]["value"] == pytest.approx(pos)


def test_fly_rows_follow_the_time_model_with_a_bounded_number_of_commands(stage):
    gates = Gates()
    stage.subscribe_rows(gates)
    stage.x.move(0.0)
    rng = np.random.default_rng(0)
    commands = {}
    runs = [(8, "uniform"), (16, "uniform"), (64, "uniform"), (16, "adaptive"), (64, "adaptive")]
    for k, (width, kind) in enumerate(runs):  # the first row also sets the stream up
        dwell = np.full(width, 0.005) if kind == "uniform" else rng.uniform(0.005, 0.03, width)
        origin = 0.7 * k  # every row needs an approach and a y step, as in a scan
        row = FlyRow(1, k, 0.5 * k, origin + PITCH * np.arange(width), dwell, reverse=bool(k % 2))
        fly(stage, row)
        rec = stage.rows_log[-1]
        model = row_profiles(dwell, PITCH, stage.kinematics, reverse=row.reverse)
        assert rec.segments <= stage.max_segments
        assert rec.planned_s - rec.added_s >= model.duration_s[0] - 1e-9
        # the emulator moves exactly as planned; the host only adds timing noise (loaded CI)
        assert rec.measured_s == pytest.approx(rec.planned_s, rel=0.25, abs=0.1)
        g = gates.finished[-1]
        assert (g.pass_number, g.row) == (1, k)
        assert np.all(g.real_time >= dwell * (1 - 1e-9))
        # the plan is recorded: a re-plan now could differ (segment cost follows measured latency)
        assert stage.x.position == pytest.approx(rec.end_mm, abs=1e-3)
        last = row.x[0] if row.reverse else row.x[-1]
        assert (stage.x.position < last) if row.reverse else (stage.x.position > last)
        assert stage.y.position == pytest.approx(row.y, abs=1e-3)
        commands[(width, kind)] = rec.commands
    assert commands[(16, "uniform")] == commands[(64, "uniform")] <= 12  # independent of width
    assert commands[(64, "adaptive")] <= 2 * stage.max_segments + 12
    assert len(gates.started) == len(gates.finished) == 5 and not gates.aborted


def test_a_row_past_its_deadline_is_cut_and_the_next_row_flies(stage, emu):
    gates = Gates()
    stage.subscribe_rows(gates)
    row = FlyRow(1, 0, 0.0, PITCH * np.arange(32), np.full(32, 0.05), deadline=stage.clock.now() + 0.8)
    status = fly(stage, row)
    assert status.success and not gates.finished and len(gates.aborted) == 1
    assert not stage.rows_log  # nothing recorded
    fly(stage, FlyRow(1, 1, 0.5, PITCH * np.arange(8), np.full(8, 0.005)))
    assert [g.row for g in gates.finished] == [1]


def test_stop_interrupts_a_row_which_is_not_recorded(stage):
    gates = Gates()
    stage.subscribe_rows(gates)
    row = FlyRow(1, 0, 0.0, PITCH * np.arange(64), np.full(64, 0.05))
    status = stage.set(row)
    threading.Timer(0.05, stage.stop).start()
    with pytest.raises(RowInterrupted):
        status.wait(20)
    assert len(gates.aborted) == 1 and not gates.finished
    fly(stage, FlyRow(1, 1, 0.5, PITCH * np.arange(8), np.full(8, 0.005)))  # resyncs after the stop
    assert [g.row for g in gates.finished] == [1]


@pytest.fixture
def beamline(tmp_path):
    bl = sim_beamline("astronaut", shape=(16, 16), pixel_size=PITCH, speedup=SPEEDUP, seed=1)
    with ZaberEmulator(clock=bl.clock, homed=True) as emu:
        st = ZaberStage("stage", emu.port, clock=bl.clock, timeout_s=0.3)
        sdd = make_sim_sdd(bl.scene, BeamPosition(bl.scene, PITCH), st, name="sdd", clock=bl.clock, seed=1)
        sdd.file_path = str(tmp_path / "scan.h5")
        yield st, sdd, tmp_path / "scan.h5"
        st.close()


def pixel_events(docs):
    primary = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "primary"}
    out = []
    for name, doc in docs:
        if name == "event_page" and doc["descriptor"] in primary:
            d = doc["data"]
            out += list(zip(d["pass_number"], d["row"], d["col"], strict=True))
    return out


def test_raster_scan_runs_unchanged_on_the_zaber_stage(beamline):
    stage, sdd, path = beamline
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    RE(raster_scan(stage, sdd, shape=(6, 8), pixel_size=PITCH, dwell=0.006))
    assert docs[-1][1]["exit_status"] == "success"
    pixels = pixel_events(docs)
    assert len(pixels) == len(set(pixels)) == 48
    with h5py.File(path) as f:
        live = f["/entry/data/live_time"][...]
        assert live.shape == (6, 8) and np.all(live > 0.005)
    uniform = [r.commands for r in stage.rows_log]
    assert len(uniform) == 6 and max(uniform[1:]) <= 12 and uniform[0] <= 14  # the first sets up


def test_adaptive_scan_runs_unchanged_and_ends_inside_its_budget(beamline):
    stage, sdd, path = beamline
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    budget = 20.0  # the smallest budget that fits is ~11 s: room for a loaded machine's rows
    t0 = stage.clock.now()
    RE(adaptive_scan(stage, sdd, shape=(6, 8), pixel_size=PITCH, budget=budget, t0=0.006, policy="bilevel"))
    used = stage.clock.now() - t0
    assert docs[-1][1]["exit_status"] == "success"
    assert used <= budget
    pixels = pixel_events(docs)
    assert len(pixels) == len(set(pixels)) == 2 * 48
    with h5py.File(path) as f:
        for k in (1, 2):
            assert np.all(f[f"/entry/passes/{k}/live_time"][...] > 0)
        planned = f["/entry/passes/2/dwell_planned"][...]
    assert planned.std() > 0  # the second pass really is adaptive
    assert max(r.segments for r in stage.rows_log) > 1


def test_bluesky_grid_scan_in_step_mode(beamline):
    stage, sdd, _ = beamline
    sdd.preset_time.put(0.01)
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    RE(grid_scan([sdd], stage.y, 1.0, 2.0, 2, stage.x, 1.0, 2.5, 3))
    events = [d for n, d in docs if n == "event"]
    assert len(events) == 6
    xs = sorted({round(e["data"]["stage_x"], 3) for e in events})
    assert xs == [1.0, 1.75, 2.5]


def test_long_rows_stream_their_tail_while_the_stage_moves(stage):
    gates = Gates()
    stage.subscribe_rows(gates)
    stage.x.move(0.0)
    rng = np.random.default_rng(3)
    for k in range(4):  # the first rows measure how long a segment takes to send
        dwell = rng.uniform(0.005, 0.03, 128)
        row = FlyRow(1, k, 0.5 * k, PITCH * np.arange(128), dwell, reverse=bool(k % 2))
        fly(stage, row)
        assert np.all(gates.finished[-1].real_time >= dwell * (1 - 1e-9))
    rec = stage.rows_log[-1]
    assert rec.queued_first < rec.segments  # the rest went out while the stage moved
    assert rec.measured_s == pytest.approx(rec.planned_s, rel=0.25)


def test_hard_pause_mid_row_then_resume_measures_no_pixel_twice(beamline):
    stage, sdd, path = beamline
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda n, d: docs.append((n, d)))
    # pause while the third row flies (rows take ~0.5 s of instrument time)
    gates = Gates()
    stage.subscribe_rows(gates)
    started = []
    gates.row_started = lambda g: started.append(g) or (
        len(started) == 3 and threading.Thread(target=RE.request_pause, kwargs={"defer": False}).start()
    )
    with pytest.raises(RunEngineInterrupted):
        RE(raster_scan(stage, sdd, shape=(5, 8), pixel_size=PITCH, dwell=0.05))
    assert RE.state == "paused"
    assert [g.row for g in gates.aborted] == [2]  # the pause stopped the third row mid-flight
    RE.resume()
    assert docs[-1][1]["exit_status"] == "success"
    pixels = pixel_events(docs)
    assert len(pixels) == len(set(pixels)) == 40
    with h5py.File(path) as f:
        assert f["entry/passes/1/rows_complete"][...].all()
        real = f["entry/data/real_time"][...]
        assert np.all(real >= 0.05) and np.all(real < 2 * 0.05)
