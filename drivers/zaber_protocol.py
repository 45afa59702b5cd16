"""Zaber's ASCII protocol, without any I/O: commands out, replies in, faults explained.

A command is ``/<device> <axis> [<id>] <text>[:<checksum>]`` and a newline. Devices answer every
command with one reply and may send info and alert messages:

* reply ``@01 1 12 OK IDLE -- 12345``: device, axis, message id (when the command had one), flag
  ``OK``/``RJ``, status ``BUSY``/``IDLE``, the most important warning flag (``--`` for none) and
  the data (the value asked for, or the reason of a rejection); a trailing ``\\`` says that
  ``#.. cont`` info messages carry the rest;
* info ``#01 1 12 some text``: extra lines after a reply (help text, continuations);
* alert ``!01 1 IDLE FS``: sent unprompted (when ``comm.alert`` is 1), e.g. when an axis stops.

The checksum is the longitudinal redundancy check of the bytes between the leading character and
the ``:``: the two's complement of their sum modulo 256, two upper-case hex digits.

Positions are in microsteps. Speeds (``maxspeed``, ``stream N set maxspeed``) are in units of
1/1.6384 microsteps/s, accelerations (``accel``) in units of 10000/1.6384 microsteps/s²
(:class:`Units` converts from and to mm).

Errors are :class:`ZaberFault` subclasses that name the device and the axis, say what happened
and what a person should do about it. Parsing alone raises :class:`ZaberParseError` (a
``ValueError``: a line that is not a valid message), which the I/O layer turns into
:class:`ZaberGarbled` with the device's name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from dwellwise.drivers.faults import DeviceFault

__all__ = [
    "ACCEL_DATA_PER_USTEP_S2",
    "SPEED_DATA_PER_USTEP_S",
    "Alert",
    "Command",
    "Flag",
    "Info",
    "RejectionReason",
    "Reply",
    "Severity",
    "Status",
    "Units",
    "WarningFlag",
    "ZaberFault",
    "ZaberGarbled",
    "ZaberLimitHit",
    "ZaberParseError",
    "ZaberPortError",
    "ZaberRejected",
    "ZaberStall",
    "ZaberTimeout",
    "ZaberWarningFault",
    "checksum",
    "describe_flag",
    "describe_rejection",
    "fault_for_flag",
    "parse_message",
    "parse_warnings",
    "rejection",
    "rejection_fault",
]

SPEED_DATA_PER_USTEP_S = 1.6384
"""Speed setting units per microstep/s (``maxspeed = µsteps/s × 1.6384``)."""
ACCEL_DATA_PER_USTEP_S2 = 1.6384 / 10000.0
"""Acceleration setting units per microstep/s² (``accel = µsteps/s² × 1.6384 / 10000``)."""
MAX_MESSAGE_ID = 99
"""Message ids run from 0 to 99."""


# -- faults ---------------------------------------------------------------------------------
class ZaberParseError(ValueError):
    """A line from the serial port is not a valid Zaber ASCII message."""

    def __init__(self, line: str, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"not a Zaber ASCII message ({problem}): {line!r}")


class ZaberFault(DeviceFault):
    """Something went wrong with a Zaber device; the message names it, the cause and the fix.

    As a :class:`~dwellwise.drivers.faults.DeviceFault`: ``device`` is the stage's name and
    ``part`` the axis (``where = "stage x (device 1 axis 1)"`` gives ``stage`` and ``x (device 1
    axis 1)``); a ``where`` that names no axis (``serial port /dev/ttyUSB0``) is the device."""

    def __init__(
        self, where: str, cause: str, advice: str = "", *, position_mm: float | None = None
    ) -> None:
        self.where = where
        """Which device and axis, e.g. ``stage x (device 1 axis 1)``."""
        self.position_mm = position_mm
        """Where the axis was when it happened, mm (stage coordinates), if known."""
        text = f"{where}: {cause}"
        if position_mm is not None:
            text += f" at {position_mm:.4g} mm"
        if advice:
            text += f"; {advice}"
        m = _AXIS_WHERE.fullmatch(where)
        device, part = (m["device"], m["part"]) if m else (where, "")
        super().__init__(text, device=device, part=part, cause=cause, advice=advice)


_AXIS_WHERE = re.compile(r"(?P<device>\S+) (?P<part>\S+ \(device \d+ axis \d+\))")


class ZaberPortError(ZaberFault):
    """The serial port cannot be opened or has gone away for good."""


class ZaberTimeout(ZaberFault):
    """The device did not answer in time (after retries and reopening the port)."""


class ZaberGarbled(ZaberFault):
    """The device answered with something that is not a valid reply (noise, a bad checksum)."""


class ZaberRejected(ZaberFault):
    """The device rejected a command (``RJ``); :attr:`reason` is its rejection reason."""

    def __init__(self, where: str, reason: str, command: str) -> None:
        self.reason = reason
        self.command = command
        meaning, advice = describe_rejection(reason)
        super().__init__(where, f"rejected {command!r} ({reason}: {meaning})", advice)


class ZaberWarningFault(ZaberFault):
    """An axis reports a fault or warning flag that stops the motion (:attr:`flag`)."""

    def __init__(self, where: str, flag: str, *, position_mm: float | None = None) -> None:
        self.flag = flag
        info = describe_flag(flag)
        super().__init__(where, f"{info.meaning} ({flag})", info.advice, position_mm=position_mm)


class ZaberLimitHit(ZaberWarningFault):
    """The axis ran into a limit switch it did not expect (``WL``) or a limit error (``FE``)."""


class ZaberStall(ZaberWarningFault):
    """The axis stalled and stopped (``FS``): something blocks it or the load is too high."""


# -- warning flags --------------------------------------------------------------------------
class Severity(StrEnum):
    """How bad a warning flag is, from its first letter."""

    FAULT = "fault"
    """``F.``: the axis stopped or cannot move; it needs a person."""
    WARNING = "warning"
    """``W.``: something is wrong but the device can go on."""
    NOTICE = "notice"
    """``N.``: information (a command interrupted a motion, a value was rounded)."""


@dataclass(frozen=True)
class WarningFlag:
    """One of the two-letter warning flags a device reports in replies, alerts and
    ``warnings``."""

    code: str
    """Two upper-case letters, e.g. ``FS``."""
    severity: Severity
    """Fault, warning or notice."""
    meaning: str
    """What the flag says, in words."""
    advice: str
    """What a person should do."""

    @property
    def stops_motion(self) -> bool:
        """Whether a motion that ends with this flag did not do what was asked."""
        return self.severity is Severity.FAULT or self.code in _MOTION_STOPPERS


_MOTION_STOPPERS = frozenset({"WL", "WR", "WH", "WS"})

_FLAGS: dict[str, tuple[str, str]] = {
    "FF": ("critical system error", "power-cycle the controller and contact Zaber support if it returns"),
    "FN": ("peripheral not supported", "connect a stage this controller supports or update its firmware"),
    "FZ": ("peripheral inactive (no stage connected or it was disconnected)", "check the stage cable, then activate the peripheral ('activate')"),
    "FH": ("hardware emergency stop: driver disabled", "release the emergency stop, then send 'driver enable'"),
    "FV": ("supply voltage out of range: driver disabled", "check the power supply voltage, then send 'driver enable'"),
    "FO": ("driver disabled (at start-up or by command)", "send 'driver enable'"),
    "FC": ("current inrush error", "check the motor cable and the power supply"),
    "FM": ("motor temperature error", "let the motor cool down and reduce the duty cycle or current"),
    "FD": ("driver disabled (over-temperature or over-current)", "let the driver cool down and check the motor wiring; it re-enables itself"),
    "FQ": ("encoder error", "check the encoder cable; home the axis again"),
    "FI": ("index error (encoder index not found)", "check the encoder; home the axis again"),
    "FA": ("analog encoder sync error", "home the axis again"),
    "FR": ("overdrive limit exceeded", "reduce the load or speed"),
    "FS": ("stalled and stopped", "remove what blocks the stage or lower the load/speed, then home or move it again"),
    "FB": ("stream bounds error (a streamed move left the travel range)", "keep the scan region inside the stage limits"),
    "FP": ("interpolated path deviation", "lower the stream speed or acceleration"),
    "FE": ("limit error (a limit sensor did not behave as expected)", "check the limit sensors and home the axis"),
    "FT": ("excessive twist (lockstep axes out of line)", "realign the lockstep axes and home them"),
    "WL": ("unexpected limit switch hit", "check that the region and offsets are right and nothing shifted the stage, then home it"),
    "WV": ("supply voltage out of range", "check the power supply"),
    "WT": ("controller temperature high", "improve the controller's cooling"),
    "WS": ("stalled (recovered)", "check what blocks the stage; lower the load or speed"),
    "WM": ("displaced while stationary", "check for collisions; home if positions are doubtful"),
    "WP": ("invalid calibration type", "re-run or clear the calibration"),
    "WR": ("no reference position (not homed)", "home the stage (stage.home()) before moving it"),
    "WH": ("device not homed", "home the stage (stage.home()) before moving it"),
    "NC": ("manual control (knob or joystick) in use", "leave the manual controls alone during a scan"),
    "NI": ("movement interrupted by a command or a stop", "none needed when the stop was intended"),
    "ND": ("stream discontinuity (the stream ran empty and stopped)", "send stream segments faster or cork the stream"),
    "NR": ("value rounded", "none"),
    "NT": ("value truncated", "none"),
    "NU": ("setting update pending (needs a restart)", "reset the device when convenient"),
    "NJ": ("joystick calibrating", "finish the joystick calibration"),
    "NB": ("device in firmware update mode", "finish or cancel the firmware update"),
}


def describe_flag(code: str) -> WarningFlag:
    """What a warning flag means and what to do; unknown codes get a generic description
    (by their first letter)."""
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise ValueError(f"a warning flag is two upper-case letters, got {code!r}")
    severity = {"F": Severity.FAULT, "W": Severity.WARNING}.get(code[0], Severity.NOTICE)
    meaning, advice = _FLAGS.get(
        code, (f"flag {code} (not known to this driver)", "look it up in Zaber's protocol manual")
    )
    return WarningFlag(code=code, severity=severity, meaning=meaning, advice=advice)


def fault_for_flag(flag: str, where: str, *, position_mm: float | None = None) -> ZaberFault:
    """The exception for an axis that stopped with warning flag ``flag``."""
    if flag in ("WL", "FE"):
        return ZaberLimitHit(where, flag, position_mm=position_mm)
    if flag in ("FS", "WS"):
        return ZaberStall(where, flag, position_mm=position_mm)
    return ZaberWarningFault(where, flag, position_mm=position_mm)


# -- rejection reasons ----------------------------------------------------------------------
@dataclass(frozen=True)
class RejectionReason:
    """Why a device rejected a command (the data of an ``RJ`` reply)."""

    code: str
    """The reason as the device sends it, e.g. ``BADDATA``."""
    meaning: str
    """What it means."""
    advice: str
    """What to do."""
    transient: bool = False
    """Sending the same command again later may succeed."""


_REASONS: dict[str, tuple[str, str, bool]] = {
    "AGAIN": ("the device cannot take the command right now", "send it again", True),
    "BADAXIS": ("the command went to an axis number the device does not have", "check the (device, axis) pairs of x_axis and y_axis", False),
    "BADCOMMAND": ("the device does not know this command", "check the firmware version (streams need firmware 7)", False),
    "BADDATA": ("a parameter is malformed or out of range", "check positions, speeds and the stage limits", False),
    "BADMESSAGEID": ("the message id is not a number from 0 to 99", "report this driver bug", False),
    "BADSPLIT": ("a split (continued) command was malformed", "report this driver bug", False),
    "DEVICEONLY": ("the command is for the whole device (axis 0), not one axis", "send it to axis 0", False),
    "DRIVERDISABLED": ("the motor driver is disabled", "check power and temperature, then send 'driver enable'", False),
    "FULL": ("the stream's action queue is full", "lower max_segments so that a row (2 commands per segment) fits the device's stream queue", True),
    "INACTIVE": ("the peripheral (stage) is inactive", "connect the stage and activate it", False),
    "LOCKSTEP": ("the axis belongs to a lockstep group", "address the lockstep group instead", False),
    "NOACCESS": ("the command needs a higher access level", "raise the access level or do not change this setting", False),
    "NOTSUPPORTED": ("the device does not support this", "check the device's protocol manual", False),
    "PARKED": ("the axis is parked", "unpark it ('tools parking unpark')", False),
    "REMOTE": ("the axis is under remote (another host's) control", "release the other connection", False),
    "STATUSBUSY": ("the axis is busy (moving or streaming)", "wait until it is IDLE or stop it first", True),
    "SYSTEMERROR": ("the device has a system error", "power-cycle the controller", False),
}


def describe_rejection(reason: str) -> tuple[str, str]:
    """``(meaning, advice)`` of a rejection reason; unknown reasons are described generically."""
    known = _REASONS.get(reason)
    if known is None:
        return (f"reason {reason!r} not known to this driver", "look it up in Zaber's protocol manual")
    return known[0], known[1]


def rejection(reason: str) -> RejectionReason:
    """The :class:`RejectionReason` for a reason code."""
    meaning, advice = describe_rejection(reason)
    return RejectionReason(reason, meaning, advice, transient=_REASONS.get(reason, ("", "", False))[2])


def rejection_fault(reply: Reply, where: str, command: str) -> ZaberRejected:
    """The exception for an ``RJ`` reply to ``command``."""
    return ZaberRejected(where, reply.data or "no reason given", command)


# -- commands -------------------------------------------------------------------------------
def checksum(body: str | bytes) -> int:
    """Longitudinal redundancy check of ``body``: the byte that makes the sum 0 modulo 256."""
    data = body.encode("ascii") if isinstance(body, str) else body
    return (-sum(data)) & 0xFF


_COMMAND_TEXT = re.compile(r"[ -~]*")


@dataclass(frozen=True)
class Command:
    """One command to one device and axis (axis 0: the whole device; device 0: all devices)."""

    device: int
    """Device address, 0 to 99 (0 addresses every device on the chain)."""
    axis: int
    """Axis number, 0 for the whole device."""
    text: str
    """The command and its parameters, e.g. ``move abs 1000``; empty to ask for the status."""
    message_id: int | None = None
    """Id 0-99 that the reply will carry, to match replies to commands."""
    with_checksum: bool = False
    """Append the LRC checksum, so a corrupted command is dropped by the device."""

    def __post_init__(self) -> None:
        if not 0 <= self.device <= 99:
            raise ValueError(f"device address must be 0-99, got {self.device}")
        if not 0 <= self.axis <= 9:
            raise ValueError(f"axis number must be 0-9, got {self.axis}")
        if self.message_id is not None and not 0 <= self.message_id <= MAX_MESSAGE_ID:
            raise ValueError(f"message id must be 0-{MAX_MESSAGE_ID}, got {self.message_id}")
        if not _COMMAND_TEXT.fullmatch(self.text) or any(c in self.text for c in "/:\\@#!"):
            raise ValueError(f"command text must be printable ASCII without / : \\ @ # !, got {self.text!r}")

    def body(self) -> str:
        """Everything between ``/`` and the checksum."""
        parts = [str(self.device), str(self.axis)]
        if self.message_id is not None:
            parts.append(f"{self.message_id:02d}")
        if self.text:
            parts.append(self.text)
        return " ".join(parts)

    def encode(self) -> bytes:
        """The bytes to write to the serial port."""
        body = self.body()
        tail = f":{checksum(body):02X}" if self.with_checksum else ""
        return f"/{body}{tail}\n".encode("ascii")

    def __str__(self) -> str:
        return "/" + self.body()


# -- replies --------------------------------------------------------------------------------
class Flag(StrEnum):
    """Whether a command was accepted."""

    OK = "OK"
    RJ = "RJ"


class Status(StrEnum):
    """Whether the axis (or any axis of the device, for axis 0) is moving."""

    BUSY = "BUSY"
    IDLE = "IDLE"


@dataclass(frozen=True)
class Reply:
    """``@`` message: the answer to one command."""

    device: int
    """Address of the device that answers."""
    axis: int
    """Axis the reply is about (0: the whole device)."""
    message_id: int | None
    """The command's message id, if it had one."""
    flag: Flag
    """``OK`` or ``RJ`` (rejected)."""
    status: Status
    """``BUSY`` or ``IDLE``."""
    warning: str | None
    """Highest-priority warning flag, or ``None`` for ``--``."""
    data: str
    """The value asked for, ``0`` when there is none, or the rejection reason."""
    continued: bool = False
    """The data goes on in ``#.. cont`` info messages (the reply ended with ``\\``)."""

    @property
    def ok(self) -> bool:
        return self.flag is Flag.OK

    @property
    def busy(self) -> bool:
        return self.status is Status.BUSY

    def values(self) -> list[int]:
        """The data as integers (``get`` of one or more axes); ``ValueError`` if it is not."""
        try:
            return [int(v) for v in self.data.split()]
        except ValueError:
            raise ValueError(f"reply data {self.data!r} is not a list of integers") from None

    def number(self) -> float:
        """The data as one number (``get pos``, ``get maxspeed``)."""
        try:
            return float(self.data)
        except ValueError:
            raise ValueError(f"reply data {self.data!r} is not a number") from None


@dataclass(frozen=True)
class Info:
    """``#`` message: extra text after a reply."""

    device: int
    """Address of the device."""
    axis: int
    """Axis (0: the whole device)."""
    message_id: int | None
    """The command's message id, if ids are in use."""
    data: str
    """The text."""

    @property
    def is_continuation(self) -> bool:
        """A ``cont`` line carrying the rest of a reply's data."""
        return self.data == "cont" or self.data.startswith("cont ")


@dataclass(frozen=True)
class Alert:
    """``!`` message: sent by a device on its own (an axis came to rest, a fault)."""

    device: int
    """Address of the device."""
    axis: int
    """Axis the alert is about (0: the whole device)."""
    status: Status
    """``BUSY`` or ``IDLE``."""
    warning: str | None
    """Highest-priority warning flag, or ``None`` for ``--``."""
    data: str = ""
    """Further data, if any."""


Message = Reply | Info | Alert

_HEAD = r"(?P<dev>\d{2}) (?P<axis>\d)"
_ID = r"(?: (?P<id>\d{1,2}))"
_FLAGS_RE = r"(?P<flag>OK|RJ) (?P<status>BUSY|IDLE) (?P<warn>[A-Z]{2}|--)"
_REPLY = re.compile(rf"{_HEAD}{_ID}? {_FLAGS_RE}(?: (?P<data>\S(?:.*\S)?))?")
_ALERT = re.compile(rf"{_HEAD} (?P<status>BUSY|IDLE) (?P<warn>[A-Z]{{2}}|--)(?: (?P<data>\S(?:.*\S)?))?")
_INFO_ID = re.compile(rf"{_HEAD}{_ID}(?: (?P<data>.*))?")
_INFO = re.compile(rf"{_HEAD}(?: (?P<data>.*))?")


def parse_message(
    line: str | bytes, *, require_checksum: bool = False, info_ids: bool = False
) -> Message:
    """Parse one line from a device into a :class:`Reply`, :class:`Info` or :class:`Alert`.

    Strict: anything that does not follow the protocol exactly (unknown message type, bad
    fields, a wrong checksum, a missing checksum when ``require_checksum``) raises
    :class:`ZaberParseError`. ``info_ids``: info messages carry a message id (the commands were
    sent with ids), which cannot be told from the text otherwise.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError:
            raise ZaberParseError(repr(line), "bytes that are not ASCII") from None
    text = line.rstrip("\r\n")
    if not text:
        raise ZaberParseError(line, "empty line")
    if any(not (" " <= c <= "~") for c in text):
        raise ZaberParseError(line, "control or non-printable characters")
    kind, rest = text[0], text[1:]
    if kind not in "@#!":
        raise ZaberParseError(line, f"unknown message type {kind!r} (expected @, # or !)")
    if ":" in rest:
        rest, _, tail = rest.rpartition(":")
        if not re.fullmatch(r"[0-9A-F]{2}", tail):
            raise ZaberParseError(line, f"checksum {tail!r} is not two upper-case hex digits")
        if (sum(rest.encode("ascii")) + int(tail, 16)) & 0xFF:
            raise ZaberParseError(line, f"checksum mismatch (expected {checksum(rest):02X})")
    elif require_checksum:
        raise ZaberParseError(line, "no checksum")
    if kind == "@":
        m = _REPLY.fullmatch(rest)
        if m is None:
            raise ZaberParseError(line, "malformed reply (expected '@NN A [ID] OK|RJ BUSY|IDLE FLAG DATA')")
        data = m["data"] or ""
        continued = data.endswith("\\")
        if continued:
            data = data[:-1].rstrip()
        if m["flag"] == "RJ" and not data:
            raise ZaberParseError(line, "rejection without a reason")
        return Reply(
            device=int(m["dev"]),
            axis=int(m["axis"]),
            message_id=None if m["id"] is None else int(m["id"]),
            flag=Flag(m["flag"]),
            status=Status(m["status"]),
            warning=None if m["warn"] == "--" else m["warn"],
            data=data,
            continued=continued,
        )
    if kind == "!":
        m = _ALERT.fullmatch(rest)
        if m is None:
            raise ZaberParseError(line, "malformed alert (expected '!NN A BUSY|IDLE FLAG [DATA]')")
        return Alert(
            device=int(m["dev"]),
            axis=int(m["axis"]),
            status=Status(m["status"]),
            warning=None if m["warn"] == "--" else m["warn"],
            data=m["data"] or "",
        )
    m = (_INFO_ID if info_ids else _INFO).fullmatch(rest)
    if m is None:
        raise ZaberParseError(line, "malformed info (expected '#NN A [ID] TEXT')")
    return Info(
        device=int(m["dev"]),
        axis=int(m["axis"]),
        message_id=int(m["id"]) if info_ids else None,
        data=(m["data"] or "").strip(),
    )


def parse_warnings(reply: Reply) -> tuple[str, ...]:
    """The flags listed by a ``warnings`` reply (data ``NN F1 F2 ...``)."""
    parts = reply.data.split()
    if not parts or not parts[0].isdigit() or int(parts[0]) != len(parts) - 1:
        raise ValueError(f"'warnings' reply data {reply.data!r} is not 'count flag ...'")
    flags = tuple(parts[1:])
    for flag in flags:
        describe_flag(flag)  # validates the form
    return flags


# -- units ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Units:
    """Conversions between mm and a device's data units (microsteps of ``microstep_mm``)."""

    microstep_mm: float
    """Length of one microstep, mm."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.microstep_mm) and self.microstep_mm > 0):
            raise ValueError(f"microstep_mm must be a length > 0 mm, got {self.microstep_mm!r}")

    def steps(self, mm: float) -> int:
        """Nearest microstep to ``mm``."""
        return int(round(mm / self.microstep_mm))

    def mm(self, steps: float) -> float:
        return float(steps) * self.microstep_mm

    def speed_data(self, mm_s: float, *, at_least: bool = False) -> int:
        """``maxspeed`` data for a speed of at most ``mm_s`` mm/s (rounded down, at least 1), or
        of at least ``mm_s`` (rounded up) with ``at_least``."""
        value = mm_s / self.microstep_mm * SPEED_DATA_PER_USTEP_S
        return max(1, int(math.ceil(value - 1e-9) if at_least else math.floor(value + 1e-9)))

    def speed_mm_s(self, data: float) -> float:
        return float(data) / SPEED_DATA_PER_USTEP_S * self.microstep_mm

    def accel_data(self, mm_s2: float, *, at_least: bool = False) -> int:
        """``accel`` data for an acceleration of at most ``mm_s2`` mm/s² (rounded down, ≥ 1),
        or of at least ``mm_s2`` (rounded up) with ``at_least``."""
        value = mm_s2 / self.microstep_mm * ACCEL_DATA_PER_USTEP_S2
        return max(1, int(math.ceil(value - 1e-9) if at_least else math.floor(value + 1e-9)))

    def accel_mm_s2(self, data: float) -> float:
        return float(data) / ACCEL_DATA_PER_USTEP_S2 * self.microstep_mm
