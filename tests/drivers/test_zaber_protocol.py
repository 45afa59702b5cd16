"""Zaber ASCII protocol: every reply form, flag, rejection reason and checksum, without I/O."""

from __future__ import annotations

import pytest
from dwellwise.drivers.zaber_protocol import (
    _FLAGS,
    _REASONS,
    Alert,
    Command,
    Flag,
    Info,
    Reply,
    Severity,
    Status,
    Units,
    ZaberFault,
    ZaberLimitHit,
    ZaberParseError,
    ZaberRejected,
    ZaberStall,
    ZaberWarningFault,
    checksum,
    describe_flag,
    describe_rejection,
    fault_for_flag,
    parse_message,
    parse_warnings,
    rejection,
    rejection_fault,
)


def with_checksum(line: str) -> str:
    return f"{line}:{checksum(line[1:]):02X}"


# -- commands -------------------------------------------------------------------------------
def test_commands_encode_address_axis_id_and_checksum():
    assert Command(1, 1, "get pos").encode() == b"/1 1 get pos\n"
    assert Command(2, 0, "home", message_id=7).encode() == b"/2 0 07 home\n"
    assert Command(1, 1, "").encode() == b"/1 1\n"
    raw = Command(1, 0, "stream 1 line abs 100", message_id=42, with_checksum=True).encode()
    body, _, cs = raw.decode().strip()[1:].rpartition(":")
    assert body == "1 0 42 stream 1 line abs 100"
    assert (sum(body.encode()) + int(cs, 16)) % 256 == 0
    assert str(Command(3, 1, "stop", 5)) == "/3 1 05 stop"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"device": 100, "axis": 1, "text": "home"},
        {"device": 1, "axis": 10, "text": "home"},
        {"device": 1, "axis": 1, "text": "home", "message_id": 100},
        {"device": 1, "axis": 1, "text": "get pos\nhome"},
        {"device": 1, "axis": 1, "text": "move abs 1:2"},
        {"device": 1, "axis": 1, "text": "/1 home"},
    ],
)
def test_bad_commands_are_refused_before_sending(kwargs):
    with pytest.raises(ValueError):
        Command(**kwargs)


def test_checksum_makes_the_byte_sum_zero():
    for body in ("1 1 get pos", "01 0 OK IDLE -- 0", ""):
        assert (sum(body.encode()) + checksum(body)) % 256 == 0
    assert checksum(b"\x01") == 0xFF


# -- replies --------------------------------------------------------------------------------
def test_reply_fields():
    r = parse_message("@01 1 OK IDLE -- 12345\r\n")
    assert r == Reply(1, 1, None, Flag.OK, Status.IDLE, None, "12345")
    assert r.ok and not r.busy and r.number() == 12345 and r.values() == [12345]
    r = parse_message(b"@02 0 07 OK BUSY WR 0")
    assert (r.device, r.axis, r.message_id, r.busy, r.warning) == (2, 0, 7, True, "WR")
    r = parse_message("@01 0 OK IDLE -- 100 -200")
    assert r.values() == [100, -200]
    r = parse_message("@01 1 OK IDLE NI")  # no data at all
    assert r.data == "" and r.warning == "NI"


def test_rejection_replies_carry_the_reason():
    r = parse_message("@01 1 13 RJ IDLE -- BADDATA")
    assert r.flag is Flag.RJ and not r.ok and r.data == "BADDATA" and r.message_id == 13
    fault = rejection_fault(r, "stage x (device 1 axis 1)", "move abs 99999999")
    assert isinstance(fault, ZaberRejected) and fault.reason == "BADDATA"
    text = str(fault)
    assert text.startswith("stage x (device 1 axis 1): rejected 'move abs 99999999' (BADDATA:")
    assert "limits" in text  # the advice


def test_continued_reply_and_its_info_lines():
    r = parse_message("@01 0 OK IDLE -- part one\\")
    assert r.continued and r.data == "part one"
    info = parse_message("#01 0 cont part two")
    assert isinstance(info, Info) and info.is_continuation and info.message_id is None
    info = parse_message("#01 0 12 cont more", info_ids=True)
    assert info.message_id == 12 and info.is_continuation
    plain = parse_message("#01 0 Some help text")
    assert plain.data == "Some help text" and not plain.is_continuation
    assert parse_message("#01 1").data == ""


def test_alerts_with_and_without_flags_and_data():
    a = parse_message("!01 1 IDLE --")
    assert a == Alert(1, 1, Status.IDLE, None, "")
    a = parse_message("!02 1 IDLE FS")
    assert a.warning == "FS" and a.device == 2
    a = parse_message("!01 0 BUSY -- trigger 1")
    assert a.status is Status.BUSY and a.data == "trigger 1"


def test_checksums_are_verified_and_can_be_required():
    good = with_checksum("@01 1 05 OK IDLE -- 250")
    assert parse_message(good, require_checksum=True).data == "250"
    assert parse_message(with_checksum("!01 1 IDLE WL")).warning == "WL"
    assert parse_message(with_checksum("#01 0 05 hello"), info_ids=True).data == "hello"
    corrupt = good.replace("250", "251")
    with pytest.raises(ZaberParseError, match="checksum mismatch"):
        parse_message(corrupt)
    with pytest.raises(ZaberParseError, match="no checksum"):
        parse_message("@01 1 OK IDLE -- 0", require_checksum=True)
    with pytest.raises(ZaberParseError, match="hex"):
        parse_message("@01 1 OK IDLE -- 0:zz")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", "empty"),
        ("\r\n", "empty"),
        ("$01 1 OK IDLE -- 0", "unknown message type"),
        ("@1 1 OK IDLE -- 0", "malformed reply"),
        ("@01 1 ok IDLE -- 0", "malformed reply"),
        ("@01 1 OK IDLY -- 0", "malformed reply"),
        ("@01 1 OK IDLE W 0", "malformed reply"),
        ("@01 1 OK IDLE -- ", "malformed reply"),
        ("@01 1 RJ IDLE --", "without a reason"),
        ("@01 1 0K~IDLE -- 0\x07", "non-printable"),
        ("!01 1 IDLE", "malformed alert"),
        ("!01 1 MOVING --", "malformed alert"),
        ("#1 0 text", "malformed info"),
        (b"@01 1 OK IDLE -- \xff", "not ASCII"),
    ],
)
def test_garbled_lines_raise_a_parse_error_naming_the_problem(line, problem):
    with pytest.raises(ZaberParseError, match=problem):
        parse_message(line)


def test_warnings_reply_lists_the_flags():
    assert parse_warnings(parse_message("@01 1 OK IDLE WL 02 WL NI")) == ("WL", "NI")
    assert parse_warnings(parse_message("@01 1 OK IDLE -- 00")) == ()
    with pytest.raises(ValueError, match="count"):
        parse_warnings(parse_message("@01 1 OK IDLE WL 03 WL NI"))


# -- warning flags and faults ---------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(_FLAGS))
def test_every_known_flag_says_what_it_means_and_what_to_do(code):
    flag = describe_flag(code)
    assert flag.code == code and flag.meaning and flag.advice
    assert flag.severity is {"F": Severity.FAULT, "W": Severity.WARNING}.get(code[0], Severity.NOTICE)
    fault = fault_for_flag(code, "stage y (device 2 axis 1)", position_mm=3.25)
    assert isinstance(fault, ZaberWarningFault) and fault.flag == code
    assert str(fault).startswith(f"stage y (device 2 axis 1): {flag.meaning} ({code}) at 3.25 mm; ")


def test_flags_that_stop_motion_and_their_exception_types():
    assert describe_flag("FS").stops_motion and describe_flag("FZ").stops_motion
    assert describe_flag("WL").stops_motion and describe_flag("WR").stops_motion
    assert not describe_flag("NI").stops_motion and not describe_flag("WT").stops_motion
    assert isinstance(fault_for_flag("WL", "x"), ZaberLimitHit)
    assert isinstance(fault_for_flag("FE", "x"), ZaberLimitHit)
    assert isinstance(fault_for_flag("FS", "x"), ZaberStall)
    hit = fault_for_flag("WL", "stage x (device 1 axis 1)", position_mm=12.3)
    assert "stage x (device 1 axis 1): unexpected limit switch hit (WL) at 12.3 mm" in str(hit)
    unknown = describe_flag("FX")
    assert unknown.severity is Severity.FAULT and "not known" in unknown.meaning
    with pytest.raises(ValueError):
        describe_flag("fs")


@pytest.mark.parametrize("reason", sorted(_REASONS))
def test_every_known_rejection_reason_is_explained(reason):
    meaning, advice = describe_rejection(reason)
    assert meaning and advice
    fault = ZaberRejected("stage x (device 1 axis 1)", reason, "home")
    assert isinstance(fault, ZaberFault) and meaning in str(fault) and advice in str(fault)


def test_transient_rejections_and_unknown_reasons():
    assert rejection("AGAIN").transient and rejection("FULL").transient
    assert not rejection("BADCOMMAND").transient
    meaning, _ = describe_rejection("WHATEVER")
    assert "not known" in meaning


# -- units ----------------------------------------------------------------------------------
def test_units_convert_positions_speeds_and_accelerations():
    u = Units(0.49609375e-3)
    assert u.steps(10.0) == 20157 and u.mm(20157) == pytest.approx(10.0, abs=u.microstep_mm)
    data = u.speed_data(100.0)
    assert u.speed_mm_s(data) <= 100.0 < u.speed_mm_s(data + 1)
    up = u.speed_data(100.0, at_least=True)
    assert u.speed_mm_s(up) >= 100.0 and up - data in (0, 1)
    acc = u.accel_data(1000.0)
    assert u.accel_mm_s2(acc) <= 1000.0 < u.accel_mm_s2(acc + 1)
    assert u.speed_data(1e-9) == 1  # never zero
    with pytest.raises(ValueError):
        Units(0.0)
