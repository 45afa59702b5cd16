"""Injected faults on the emulated Zaber chain: each gives a clear exception naming the device,
the axis and the cause, transient ones are recovered, and nothing hangs."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from dwellwise.drivers.fly import FlyRow
from dwellwise.drivers.sim import sim_beamline
from dwellwise.drivers.sim_sdd import BeamPosition, make_sim_sdd
from dwellwise.drivers.zaber import ZaberStage
from dwellwise.drivers.zaber_protocol import (
    ZaberFault,
    ZaberGarbled,
    ZaberLimitHit,
    ZaberRejected,
    ZaberStall,
    ZaberTimeout,
)
from dwellwise.planners import raster_scan
from dwellwise.simulators.clock import ScaledClock
from dwellwise.simulators.zaber_emulator import ZaberEmulator

pytestmark = pytest.mark.timeout(60)
SPEEDUP = 20.0
PITCH = 0.5
OFFSET = 10.0  # device mm of stage coordinate 0 (the stage's default offset)


class Gates:
    def __init__(self, on_finished=None) -> None:
        self.started, self.finished, self.aborted = [], [], []
        self.on_finished = on_finished

    def row_started(self, g):
        self.started.append(g)

    def row_finished(self, g):
        self.finished.append(g)
        if self.on_finished:
            self.on_finished(len(self.finished))

    def row_aborted(self, g):
        self.aborted.append(g)


@pytest.fixture
def emu():
    with ZaberEmulator(clock=ScaledClock(SPEEDUP), homed=True) as e:
        yield e


@pytest.fixture
def stage(emu):
    st = ZaberStage("stage", emu.port, clock=emu.clock, timeout_s=0.15, retries=2)
    yield st
    st.close()


def a_row(k=0, width=32, dwell=0.01) -> FlyRow:
    return FlyRow(1, k, 0.5 * k, PITCH * np.arange(width), np.full(width, dwell))


def test_a_lost_reply_is_recovered_by_reopening_and_resending(stage, emu):
    reopens = stage.link.stats.reopens
    emu.inject_no_reply(1, match="get pos")
    assert stage.x.read_position() == pytest.approx(emu.position_mm(1) - OFFSET, abs=1e-3)
    stats = stage.link.stats
    assert stats.timeouts == 1 and stats.retries == 1 and stats.reopens == reopens + 1


def test_a_silent_controller_times_out_naming_the_axis(stage, emu):
    emu.set_silent()
    t0 = time.monotonic()
    with pytest.raises(ZaberTimeout) as err:
        stage.y.read_position()
    text = str(err.value)
    assert text.startswith("stage y (device 2 axis 1): no reply to 'get pos' within 0.15 s")
    assert "after 3 tries" in text and "powered" in text
    assert time.monotonic() - t0 < 5
    emu.set_silent(False)
    assert stage.y.read_position() == pytest.approx(emu.position_mm(2) - OFFSET, abs=1e-3)


def test_a_garbled_reply_is_detected_and_resent(stage, emu):
    emu.inject_garbled(1, match="get pos")
    assert stage.x.read_position() == pytest.approx(emu.position_mm(1) - OFFSET, abs=1e-3)
    assert stage.link.stats.garbled >= 1 and stage.link.stats.retries >= 1
    emu.inject_garbled(10, match="get pos")
    with pytest.raises(ZaberGarbled, match=r"stage x \(device 1 axis 1\): garbled reply to 'get pos'.*cable"):
        stage.x.read_position()


@pytest.mark.parametrize("fault", ["no reply", "garbled"])
def test_a_communication_fault_while_queueing_a_row_rebuilds_its_stream(stage, emu, fault):
    gates = Gates()
    stage.subscribe_rows(gates)
    (emu.inject_no_reply if fault == "no reply" else emu.inject_garbled)(1, match="line abs")
    stage.set(a_row()).wait(20)
    assert stage.rows_log[-1].rebuilds == 1
    assert len(gates.finished) == 1 and not gates.aborted
    assert stage.x.position == pytest.approx(stage.rows_log[-1].end_mm, abs=1e-3)
    assert stage.x.position > a_row().x[-1]  # past the last pixel: the row was flown in full


def test_the_first_row_after_a_fault_is_queued_whole_before_it_is_released(stage, emu):
    """Resuming after a fault keeps the host busy just when a row's tail would be streamed; a
    tail sent late starves the stream and the stage stops short, so that row goes whole."""
    rng = np.random.default_rng(3)

    def adaptive_row(k: int) -> FlyRow:
        return FlyRow(1, k, 0.5 * k, PITCH * np.arange(48), rng.uniform(0.02, 0.1, 48))

    for k in range(4):  # enough rows for the measured command times to be trusted
        stage.set(adaptive_row(k)).wait(30)
    normal = stage.rows_log[-1]
    assert normal.queued_first < normal.segments  # the tail is streamed while the stage moves
    emu.inject_garbled(1_000_000)
    with pytest.raises(ZaberFault, match="garbled reply"):
        stage.set(adaptive_row(4)).wait(30)
    emu.inject_garbled(0)
    stage.set(adaptive_row(4)).wait(30)
    after = stage.rows_log[-1]
    assert after.queued_first == after.segments
    assert stage.x.position == pytest.approx(after.end_mm, abs=1e-3)


def test_a_row_whose_tail_comes_too_late_is_flown_again_whole(stage, emu, monkeypatch):
    """A tail held back until the stage has stopped at the end of the queued motion: the row
    is stopped, not recorded, and flown again, queued whole (so it cannot starve again)."""
    rng = np.random.default_rng(4)

    def adaptive_row(k: int) -> FlyRow:
        return FlyRow(1, k, 0.5 * k, PITCH * np.arange(48), rng.uniform(0.02, 0.1, 48))

    gates = Gates()
    stage.subscribe_rows(gates)
    for k in range(4):
        stage.set(adaptive_row(k)).wait(30)
    assert stage.rows_log[-1].queued_first < stage.rows_log[-1].segments
    batch = stage.link.request_batch
    held = []

    def late_tail(commands, **kw):
        first = commands[0][2]
        if first.startswith("stream 1 set maxspeed") or first.startswith("stream 1 line"):
            if not held and kw.get("idempotent") is False and "cork" not in str(commands):
                held.append(first)
                time.sleep(0.5)  # 10 s of instrument time: the queued motion runs out
        return batch(commands, **kw)

    monkeypatch.setattr(stage.link, "request_batch", late_tail)
    stage.set(adaptive_row(4)).wait(30)
    record = stage.rows_log[-1]
    assert held and record.rebuilds == 1 and record.queued_first == record.segments
    assert stage.x.position == pytest.approx(record.end_mm, abs=1e-3)
    assert len(gates.aborted) == 1 and gates.finished[-1].row == 4


def test_rejections_say_the_reason_and_what_to_do(stage, emu):
    emu.inject_rejection("move abs", "PARKED")
    with pytest.raises(ZaberRejected) as err:
        stage.y.move(3.0)
    assert err.value.reason == "PARKED"
    assert str(err.value).startswith("stage y (device 2 axis 1): rejected 'move abs ")
    assert "PARKED: the axis is parked" in str(err.value) and "unpark" in str(err.value)
    gates = Gates()
    stage.subscribe_rows(gates)
    emu.inject_rejection("line abs", "BADDATA")
    with pytest.raises(ZaberRejected, match=r"stage x \(device 1 axis 1\): rejected 'stream 1 line abs \d+' \(BADDATA"):
        stage.set(a_row()).wait(20)
    assert not gates.finished


@pytest.mark.parametrize(
    ("inject", "error", "text"),
    [
        ("inject_limit_hit", ZaberLimitHit, "unexpected limit switch hit (WL) at 8"),
        ("inject_stall", ZaberStall, "stalled and stopped (FS) at 8"),
    ],
)
def test_a_limit_hit_or_stall_mid_row_ends_the_row_with_a_clear_fault(stage, emu, inject, error, text):
    gates = Gates()
    stage.subscribe_rows(gates)
    stage.set(a_row(0, width=8)).wait(20)
    getattr(emu, inject)(1, 8.0 + OFFSET)  # inside the next row (x from -0.25 to 15.75 mm)
    status = stage.set(a_row(1))
    with pytest.raises(error) as err:
        status.wait(20)
    message = str(err.value)
    assert message.startswith("stage x (device 1 axis 1): ") and text in message
    assert err.value.position_mm == pytest.approx(8.0, abs=0.01)
    assert [g.row for g in gates.aborted] == [1] and [g.row for g in gates.finished] == [0]
    stage.set(a_row(2, width=8)).wait(20)  # the next row resyncs and flies
    assert [g.row for g in gates.finished] == [0, 2]


def test_a_replugged_usb_adapter_is_reopened_under_its_name(tmp_path):
    with ZaberEmulator(clock=ScaledClock(SPEEDUP), homed=True, link_path=tmp_path / "ttyZaber") as emu:
        st = ZaberStage("stage", emu.port, clock=emu.clock, timeout_s=0.15)
        try:
            emu.replug()
            assert st.x.read_position() == pytest.approx(emu.position_mm(1) - OFFSET, abs=1e-3)
            assert st.link.stats.reopens >= 1
            st.set(a_row(width=8)).wait(20)
        finally:
            st.close()


def test_a_fault_during_a_scan_fails_the_plan_with_its_cause_and_keeps_completed_rows(tmp_path):
    bl = sim_beamline("astronaut", shape=(16, 16), pixel_size=PITCH, speedup=SPEEDUP, seed=1)
    with ZaberEmulator(clock=bl.clock, homed=True) as emu:
        st = ZaberStage("stage", emu.port, clock=bl.clock, timeout_s=0.15)
        try:
            sdd = make_sim_sdd(bl.scene, BeamPosition(bl.scene, PITCH), st, name="sdd", clock=bl.clock)
            sdd.file_path = str(tmp_path / "scan.h5")
            # after two rows, the x axis stalls in the middle of the region
            st.subscribe_rows(Gates(lambda n: n == 2 and emu.inject_stall(1, 1.5 + OFFSET)))
            RE = RunEngine({})
            docs = []
            RE.subscribe(lambda n, d: docs.append((n, d)))
            with pytest.raises(Exception) as err:  # noqa: B017 - the RunEngine wraps it
                RE(raster_scan(st, sdd, shape=(6, 8), pixel_size=PITCH, dwell=0.006))
            chain, exc = [], err.value
            while exc is not None:
                chain.append(exc)
                exc = exc.__cause__ or exc.__context__
            stall = next(e for e in chain if isinstance(e, ZaberFault))
            assert isinstance(stall, ZaberStall) and "stage x (device 1 axis 1)" in str(stall)
            assert docs[-1][1]["exit_status"] == "fail"
            with h5py.File(tmp_path / "scan.h5") as f:
                done = f["/entry/passes/1/rows_complete"][...]
                live = f["/entry/passes/1/live_time"][...]
            assert list(np.flatnonzero(done)) == [0, 1]
            assert np.all(live[:2] > 0) and np.all(live[2:] == 0)
        finally:
            st.close()


def test_a_lost_reply_in_a_rows_streamed_tail_flies_the_row_again():
    rng = np.random.default_rng(4)

    def adaptive(k):
        dwell = rng.uniform(0.01, 0.06, 64)
        return FlyRow(1, k, 0.5 * k, PITCH * np.arange(64), dwell, reverse=bool(k % 2))

    # a slower clock than the other tests: the host must be fast compared with the motion
    with ZaberEmulator(clock=ScaledClock(4.0), homed=True) as emu:
        stage = ZaberStage("stage", emu.port, clock=emu.clock, timeout_s=0.15)
        try:
            gates = Gates()
            stage.subscribe_rows(gates)
            for k in range(4):  # measure the command time, so that later rows stream their tail
                stage.set(adaptive(k)).wait(30)
            last = stage.rows_log[-1]
            assert last.queued_first + 20 < last.segments  # most of the row is its tail
            emu.inject_no_reply(1, match="line abs", after=last.queued_first + 12)
            stage.set(adaptive(4)).wait(30)
            rec = stage.rows_log[-1]
            assert rec.row == 4 and rec.rebuilds == 1
            assert [g.row for g in gates.aborted] == [4]
            assert [g.row for g in gates.finished] == [0, 1, 2, 3, 4]
        finally:
            stage.close()
