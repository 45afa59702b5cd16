"""The Zaber emulator on its pty, spoken to with plain pyserial: replies, rejections, checksums,
alerts, motion in time and streams."""

from __future__ import annotations

import pytest
import serial
from dwellwise.drivers.zaber_protocol import Alert, Reply, checksum, parse_message
from dwellwise.simulators.clock import ScaledClock
from dwellwise.simulators.zaber_emulator import ZaberEmulator

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def port():
    with ZaberEmulator(clock=ScaledClock(50.0)) as emu:
        with serial.Serial(emu.port, 115200, timeout=1.0) as ser:
            yield emu, ser


def ask(ser, text: str):
    ser.write(text.encode() + b"\n")
    return parse_message(ser.readline())


def test_replies_ids_and_broadcast(port):
    emu, ser = port
    r = ask(ser, "/1 1 12 get pos")
    assert isinstance(r, Reply) and (r.device, r.axis, r.message_id, r.warning) == (1, 1, 12, "WR")
    assert r.number() == pytest.approx(10.0 / emu.microstep_mm, abs=1)
    ser.write(b"/0 0 get system.axiscount\n")
    both = [parse_message(ser.readline()) for _ in range(2)]
    assert [b.device for b in both] == [1, 2] and all(b.data == "1" for b in both)
    assert ask(ser, "/1 1").data == "0"  # an empty command asks for the status
    assert ask(ser, "/1 1 warnings").data == "01 WR"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("/1 1 jump", "BADCOMMAND"),
        ("/1 1 get nothing.here", "BADCOMMAND"),
        ("/1 2 get pos", "BADAXIS"),
        ("/1 1 stream 1 setup live 1", "DEVICEONLY"),
        ("/1 0 stream 1 setup live 2", "BADAXIS"),
        ("/1 1 move abs 999999999", "BADDATA"),
        ("/1 1 set maxspeed -5", "BADDATA"),
    ],
)
def test_rejections(port, command, reason):
    _, ser = port
    r = ask(ser, command)
    assert not r.ok and r.data == reason


def test_checksums_both_ways_and_corrupt_commands_are_dropped(port):
    emu, ser = port
    body = "1 0 set comm.checksum 1"
    r = ask(ser, f"/{body}:{checksum(body):02X}")
    assert r.ok and emu.devices[1].checksums
    assert parse_message(_line(ser, "/1 1 get pos"), require_checksum=True).ok
    ser.timeout = 0.2
    ser.write(f"/{body}:{(checksum(body) + 1) % 256:02X}\n".encode())
    assert ser.readline() == b""  # no reply to a corrupted command


def _line(ser, text):
    ser.write(text.encode() + b"\n")
    return ser.readline()


def test_moves_take_their_time_and_end_with_an_alert(port):
    emu, ser = port
    assert ask(ser, "/1 0 set comm.alert 1").ok
    assert ask(ser, "/1 1 home").busy
    alert = parse_message(ser.readline())
    assert isinstance(alert, Alert) and alert.device == 1 and alert.warning is None
    target = round(20.0 / emu.microstep_mm)
    assert ask(ser, f"/1 1 move abs {target}").busy
    assert isinstance(parse_message(ser.readline()), Alert)
    assert ask(ser, "/1 1 get pos").number() == target


def test_a_stream_runs_only_when_uncorked_and_rejects_moves_while_it_runs(port):
    emu, ser = port
    for cmd in ("/1 1 home", "/1 0 set comm.alert 1"):
        assert ask(ser, cmd).ok
    ser.timeout = 2.0
    parse_message(ser.readline())  # homing done
    for cmd in ("stream 1 setup live 1", "stream 1 fifo cork", "stream 1 set maxspeed 20000",
                "stream 1 line abs 20000", "stream 1 set maxspeed 5000", "stream 1 line abs 30000"):
        assert ask(ser, f"/1 0 {cmd}").ok
    assert not ask(ser, "/1 1").busy  # corked: nothing moves
    assert ask(ser, "/1 0 stream 1 fifo uncork").busy
    r = ask(ser, "/1 1 move abs 100")
    assert not r.ok and r.data == "STATUSBUSY"
    assert isinstance(parse_message(ser.readline()), Alert)
    assert ask(ser, "/1 1 get pos").number() == 30000
