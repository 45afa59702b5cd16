"""The X/Y raster stage on Zaber controllers over a serial line, behind the simulated stage's
interface, so ``raster_scan`` and ``adaptive_scan`` run on it unchanged.

>>> stage = ZaberStage("stage", "/dev/ttyUSB0", x_axis=(1, 1), y_axis=(2, 1), home=True)
>>> stage.x.move(12.5)                 # mm, soft limits checked, 'move abs' in microsteps
>>> stage.set(FlyRow(...)).wait()      # one fly row as Zaber streamed motion

Coordinates are stage mm: ``device position (mm from home) = stage position + offset_mm``.
``stage.x`` and ``stage.y`` are Ophyd positioners (``move abs``, readback from ``get pos``), so
Bluesky's step plans work too. ``stage.set(FlyRow)`` flies a row as one live stream on the x
device (:mod:`~dwellwise.drivers.zaber_rows`): the approach at full speed, a ``wait`` until the
y step (a ``move abs`` on the y device, sent first) is done, then the row's segments, each under
its own ``stream N set maxspeed``. The start is queued while the stream is corked and released
at once; once the time a command takes is known, only the segments the stage reaches before the
rest could be sent go first and the rest follow while it moves, always ahead of its braking
distance (so the stage never has to slow down for them). Commands are pipelined with message ids
(:class:`~dwellwise.drivers.zaber_link.ZaberLink`). While the row flies the host reads the x
position a few times; the completion alert ends it. Each pixel's real time is the planned one
unless those measurements (release, samples, end) disagree with the plan by more than the host's
timing noise, in which case the plan is stretched through them; it goes to the row listeners as
:class:`~dwellwise.drivers.fly.RowGates`: ``row_started`` with the planned times when the motion
is released, ``row_finished`` with the measured times at the end, ``row_aborted`` if the row does
not complete — as the simulated stage does. :attr:`ZaberStage.rows_log` records what each row
cost (commands, segments, planned and measured time).

Deadlines, stop, pause and resume behave as in :class:`~dwellwise.drivers.sim_stage.SimStage`.
Faults raise :class:`~dwellwise.drivers.zaber_protocol.ZaberFault` subclasses that name the
device, the axis and the cause (e.g. ``stage x (device 1 axis 1): unexpected limit switch hit
(WL) at 12.3 mm; ...``), through the row's or the move's status; nothing waits without a limit.

Streams need firmware 7 (``stream N fifo cork``/``uncork``, ``comm.checksum``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from dwellwise.drivers.fly import FlyRow, RowGates
from dwellwise.drivers.sim_stage import RowCut, RowInterrupted, RowListener
from dwellwise.drivers.zaber_link import Received, ZaberLink
from dwellwise.drivers.zaber_protocol import (
    Units,
    ZaberFault,
    ZaberGarbled,
    ZaberPortError,
    ZaberRejected,
    ZaberTimeout,
    describe_flag,
    fault_for_flag,
    parse_warnings,
)
from dwellwise.drivers.zaber_rows import RowPlan, measured_pixel_times, plan_row, planned_time_at
from dwellwise.simulators.clock import Clock, ScaledClock
from dwellwise.simulators.kinematics import Kinematics
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.positioner import PositionerBase, SoftPositioner
from ophyd.status import Status
from ophyd.utils import LimitError

__all__ = [
    "DEFAULT_MICROSTEP_MM",
    "RowRecord",
    "ZaberAxis",
    "ZaberFault",
    "ZaberStage",
]

log = logging.getLogger(__name__)

DEFAULT_MICROSTEP_MM = 0.49609375e-3
"""Microstep of Zaber's X-LSQ lead-screw stages, mm."""
DEFAULT_OFFSET_MM = (10.0, 10.0)
"""Device position (mm from home) of stage coordinate 0, per axis: leaves 10 mm of run-up room
below the origin, like the simulated stage's default limits."""
POLL_S = 0.02
"""Wall seconds between status polls when a completion alert is overdue."""
TAIL_CHUNK = 16
"""Commands per batch when a row's tail is queued while it flies (a stop or the deadline is
acted on between batches)."""

HOST_STALL_S = 0.05
"""Wall seconds the host may be descheduled while it queues a row's tail (a busy machine):
the tail is planned to arrive this much earlier than the stage needs it."""


class StreamStarved(ZaberFault):
    """A row stopped short of its end: the stream ran out of queued motion (its tail reached the
    controller late) or something else stopped the stage."""


class _Rebuild(Exception):
    """A communication fault while queueing a row, or a starved stream: fly it again from the
    start."""

    def __init__(self, fault: ZaberFault) -> None:
        super().__init__(str(fault))
        self.fault = fault


@dataclass(frozen=True)
class RowRecord:
    """What one fly row cost on the serial line and how its timing came out."""

    pass_number: int
    row: int
    width: int
    """Pixels in the row."""
    segments: int
    """Stream segments over the pixels."""
    queued_first: int
    """Segments queued before the stream was released (the rest followed while it moved)."""
    commands: int
    """Serial commands spent on the row, all included (y step, stream, samples, readback)."""
    planned_s: float
    """Planned motion from the stream's release to rest: approach, wait, run-up, pixels,
    run-out, s."""
    measured_s: float
    """The same, as measured by the host, s."""
    deviation_s: float
    """Largest difference between a measured instant (release, position samples, end) and the
    plan, s; beyond the host's timing noise the pixel times follow the measurements."""
    added_s: float
    """Time the segment merging and speed rounding added to the row's time model, s."""
    rebuilds: int
    """Times the stream had to be built again after a lost or garbled reply."""
    end_mm: float
    """Planned end of the run-out, stage mm; the readback after the row was within two
    microsteps of it."""


class ZaberAxis(SoftPositioner):
    """One stage axis on a Zaber device: soft limits, ``move abs``, readback from ``get pos``."""

    def __init__(self, *, stage: ZaberStage, label: str, address: tuple[int, int], **kwargs) -> None:
        self._stage = stage
        self.label = label
        """``x`` or ``y``."""
        self.device, self.axis_number = address
        super().__init__(**kwargs)

    @property
    def where(self) -> str:
        return f"{self._stage.name} {self.label} (device {self.device} axis {self.axis_number})"

    def move(self, position, wait: bool = True, timeout: float | None = None, moved_cb=None):
        """Move to ``position`` mm; with ``wait``, a failure raises the device's own fault
        (e.g. :class:`~dwellwise.drivers.zaber_protocol.ZaberLimitHit`), not a generic error."""
        status = PositionerBase.move(self, position, moved_cb=moved_cb, timeout=timeout)
        self._setup_move(position, status)
        if wait:
            status.wait()
        return status

    def _setup_move(self, position: float, status) -> None:
        self._run_subs(sub_type=self.SUB_START, timestamp=time.time())
        self._started_moving = True
        self._moving = True
        try:
            received = self._stage._start_move(self, float(position))
        except Exception as exc:  # noqa: BLE001 - reported through the status
            self._moving = False
            self._reset_sub(self._SUB_REQ_DONE)
            status.set_exception(exc)
            return
        threading.Thread(
            target=self._stage._finish_move,
            args=(self, float(position), received, status),
            name=f"{self.name}-move",
            daemon=True,
        ).start()

    def stop(self, *, success: bool = False) -> None:
        self._stage._stop_axes([self])

    def move_velocity(self, speed_mm_s: float) -> None:
        """Move at ``speed_mm_s`` (sign: direction) until :meth:`stop` or a limit (``move vel``);
        the readback is updated by the next :meth:`read_position`."""
        self._stage._move_velocity(self, float(speed_mm_s))

    def read_position(self) -> float:
        """Ask the device where the axis is (``get pos``), update the readback, return mm."""
        position = self._stage._read_position(self)
        self.place(position)
        return position

    def place(self, position: float) -> None:
        """Set the readback (from a position the device reported)."""
        self._set_position(float(position))

    def done(self, success: bool = True) -> None:
        self._moving = False
        self._done_moving(success=success)


class ZaberStage(Device):
    """X/Y raster stage on Zaber controllers (see the module docstring)."""

    velocity = Cpt(Signal, value=0.0, kind="config")
    """Maximum speed of the fly scans and moves, mm/s (as set on the devices)."""
    acceleration = Cpt(Signal, value=0.0, kind="config")
    """Acceleration of the fly scans and moves, mm/s²."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        x_axis: tuple[int, int] = (1, 1),
        y_axis: tuple[int, int] = (2, 1),
        baudrate: int = 115200,
        microstep_mm: float | tuple[float, float] = DEFAULT_MICROSTEP_MM,
        offset_mm: tuple[float, float] = DEFAULT_OFFSET_MM,
        limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
        kinematics: Kinematics | None = None,
        clock: Clock | None = None,
        timeout_s: float = 0.5,
        retries: int = 2,
        checksums: bool = True,
        home: bool = False,
        max_segments: int = 64,
        position_samples: int = 2,
        stream_number: int = 1,
        move_timeout_s: float = 120.0,
        **kwargs,
    ) -> None:
        """Connect to the devices on ``port`` and configure them.

        ``x_axis``/``y_axis``: ``(device address, axis number)``. ``microstep_mm``: one value or
        one per axis. ``limits``: soft limits ``((x_lo, x_hi), (y_lo, y_hi))`` in stage mm,
        intersected with the devices' own ``limit.min``/``limit.max``. ``kinematics``: written
        to the devices (``maxspeed``, ``accel``) when given, else read from them; either way
        :attr:`kinematics` holds what the devices really use. ``clock``: the instrument clock
        (real time by default). ``timeout_s``: per reply, wall seconds; ``retries``: resends of
        idempotent commands after a timeout (with the port reopened) or a garbled reply.
        ``home``: home both axes now if they have no reference position. ``max_segments``: most
        stream segments per fly row (a row queues up to ``2 · max_segments + 3`` actions, which
        must fit the device's stream queue). ``position_samples``: position reads per fly row.
        ``move_timeout_s``: longest a move or homing may take, instrument seconds."""
        super().__init__(name=name, **kwargs)
        for label, (dev, ax) in (("x_axis", x_axis), ("y_axis", y_axis)):
            if not (1 <= int(dev) <= 99 and 1 <= int(ax) <= 9):
                raise ValueError(f"{label} must be (device 1-99, axis 1-9), got {(dev, ax)}")
        if tuple(x_axis) == tuple(y_axis):
            raise ValueError(f"x_axis and y_axis must differ, both are {tuple(x_axis)}")
        if max_segments < 1:
            raise ValueError(f"max_segments must be ≥ 1, got {max_segments}")
        if position_samples < 0:
            raise ValueError(f"position_samples must be ≥ 0, got {position_samples}")
        steps = microstep_mm if isinstance(microstep_mm, tuple | list) else (microstep_mm, microstep_mm)
        self.units = (Units(float(steps[0])), Units(float(steps[1])))
        """Microstep conversions of x and y."""
        self.offset_mm = (float(offset_mm[0]), float(offset_mm[1]))
        self.port = str(port)
        self.clock = clock or ScaledClock(1.0)
        self.max_segments = int(max_segments)
        self.position_samples = int(position_samples)
        self.stream_number = int(stream_number)
        self.move_timeout_s = float(move_timeout_s)
        self.homed = False
        """Both axes have a reference position."""
        self.x = ZaberAxis(stage=self, label="x", address=tuple(x_axis), name=f"{name}_x", parent=self, egu="mm", limits=(0, 0))
        self.y = ZaberAxis(stage=self, label="y", address=tuple(y_axis), name=f"{name}_y", parent=self, egu="mm", limits=(0, 0))
        self.rows_log: deque[RowRecord] = deque(maxlen=100_000)
        """One :class:`RowRecord` per fly row flown (recorded or not)."""
        self.last_row: RowGates | None = None
        """The measured gates of the last row recorded."""
        self._listeners: list[RowListener] = []
        self._stop = threading.Event()
        self._flights: set[threading.Event] = set()
        self._flown: set[tuple[int, int]] = set()
        self._busy = threading.Lock()
        self._stop_success = False
        self._paused_since: float | None = None
        self._paused_total = 0.0
        self._stream_live = False
        self._stale = False  # positions may be out of date (after a stop or a fault)
        self._flags: dict[int, str | None] = {}
        self.link = ZaberLink(
            self.port, baudrate, timeout_s=timeout_s, retries=retries, checksums=checksums, clock=self.clock
        )
        try:
            self._connect(limits, kinematics, home)
        except BaseException:
            self.link.close()
            raise

    # -- connection ---------------------------------------------------------------------------
    def _axes(self) -> tuple[ZaberAxis, ZaberAxis]:
        return (self.x, self.y)

    def _units(self, axis: ZaberAxis) -> Units:
        return self.units[0 if axis is self.x else 1]

    def _offset(self, axis: ZaberAxis) -> float:
        return self.offset_mm[0 if axis is self.x else 1]

    def _to_steps(self, axis: ZaberAxis, mm: float) -> int:
        return self._units(axis).steps(mm + self._offset(axis))

    def _to_mm(self, axis: ZaberAxis, steps: float) -> float:
        return self._units(axis).mm(steps) - self._offset(axis)

    def _request(self, axis: ZaberAxis, text: str, *, device_level: bool = False, **kw) -> Received:
        got = self.link.request(axis.device, 0 if device_level else axis.axis_number, text, where=axis.where, **kw)
        if not device_level:
            self._flags[axis.device] = got.reply.warning
        return got

    def _connect(self, limits, kinematics: Kinematics | None, home: bool) -> None:
        for dev in sorted({self.x.device, self.y.device}):
            axis = self.x if self.x.device == dev else self.y
            self._request(axis, "set comm.alert 1", device_level=True)
            if self.link.checksums:
                self._request(axis, "set comm.checksum 1", device_level=True)
        self.link.require_reply_checksums = self.link.checksums
        speeds, accels, flags = [], [], {}
        for axis in self._axes():
            u = self._units(axis)
            if kinematics is not None:
                self._request(axis, f"set maxspeed {u.speed_data(kinematics.v_max, at_least=True)}")
                self._request(axis, f"set accel {u.accel_data(kinematics.a_max, at_least=True)}")
            speeds.append(u.speed_mm_s(self._request(axis, "get maxspeed").reply.number()))
            accels.append(u.accel_mm_s2(self._request(axis, "get accel").reply.number()))
            lo = self._to_mm(axis, self._request(axis, "get limit.min").reply.number())
            hi = self._to_mm(axis, self._request(axis, "get limit.max").reply.number())
            axis._limits = (lo, hi)
            axis.place(self._to_mm(axis, self._request(axis, "get pos").reply.number()))
            flags[axis.label] = parse_warnings(self._request(axis, "warnings").reply)
        self.kinematics = Kinematics(
            v_max=min(speeds), a_max=min(accels), settle_s=kinematics.settle_s if kinematics else 0.0
        )
        """Speed and acceleration the devices use (the slower axis), and the settling time."""
        self.velocity.put(self.kinematics.v_max)
        self.acceleration.put(self.kinematics.a_max)
        if limits is not None:
            for axis, (lo, hi) in zip(self._axes(), limits, strict=True):
                dlo, dhi = axis.limits
                if not lo < hi:
                    raise ValueError(f"{axis.where}: limits must be (low, high), got {(lo, hi)}")
                axis._limits = (max(lo, dlo), min(hi, dhi))
                if axis._limits[0] >= axis._limits[1]:
                    raise ValueError(
                        f"{axis.where}: limits {(lo, hi)} mm do not overlap the device's travel "
                        f"{(dlo, dhi)} mm (stage coordinates, offset {self._offset(axis)} mm)"
                    )
        unhomed = [a for a in self._axes() if {"WR", "WH"} & set(flags[a.label])]
        self.homed = not unhomed
        if unhomed and home:
            self.home()
        elif unhomed:
            log.warning("%s: %s not homed; call home() before moving", self.name, ", ".join(a.where for a in unhomed))

    def close(self) -> None:
        """Close the serial port."""
        self.link.close()

    def get_maxspeed(self) -> tuple[float, float]:
        """``maxspeed`` of x and y as the devices report it, mm/s."""
        return tuple(self._units(a).speed_mm_s(self._request(a, "get maxspeed").reply.number()) for a in self._axes())

    def get_accel(self) -> tuple[float, float]:
        """``accel`` of x and y as the devices report it, mm/s²."""
        return tuple(self._units(a).accel_mm_s2(self._request(a, "get accel").reply.number()) for a in self._axes())

    def set_kinematics(self, kinematics: Kinematics) -> Kinematics:
        """Write ``maxspeed`` and ``accel`` to both axes (``set maxspeed``, ``set accel``; at
        least the values asked for, in device units) and return the kinematics the devices now
        use. Not while a row is flying."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"{self.name}: cannot change speeds while a fly row is running")
        try:
            for axis in self._axes():
                u = self._units(axis)
                self._request(axis, f"set maxspeed {u.speed_data(kinematics.v_max, at_least=True)}")
                self._request(axis, f"set accel {u.accel_data(kinematics.a_max, at_least=True)}")
            self.kinematics = Kinematics(
                v_max=min(self.get_maxspeed()), a_max=min(self.get_accel()), settle_s=kinematics.settle_s
            )
            self.velocity.put(self.kinematics.v_max)
            self.acceleration.put(self.kinematics.a_max)
            self._stream_live = False  # the stream's acceleration follows at the next row
            return self.kinematics
        finally:
            self._busy.release()

    def home(self, timeout_s: float | None = None) -> None:
        """Home both axes (``home``) and wait until they are at rest; raises on a fault."""
        if self._stream_live:
            self._disable_stream()
        started = []
        for axis in self._axes():
            self._request(axis, "warnings clear")
            started.append((axis, self._request(axis, "home")))
        for axis, got in started:
            self._wait_idle(axis, got, timeout_s or self.move_timeout_s, what="homing")
            axis.place(self._read_position(axis))
        self.homed = True

    # -- Bluesky protocols --------------------------------------------------------------------
    def read(self) -> dict:
        return {**self.x.read(), **self.y.read()}

    def describe(self) -> dict:
        return {**self.x.describe(), **self.y.describe()}

    @property
    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (self.x.limits, self.y.limits)

    def set(self, row: FlyRow) -> Status:
        """Fly one row; the status finishes when the stage has come to rest after it."""
        if not isinstance(row, FlyRow):
            raise TypeError(f"{self.name}.set() takes a FlyRow, got {type(row).__name__}")
        self.check_row(row)
        status = Status(obj=self)
        if row.key in self._flown:  # replayed after a pause: never measure a row twice
            status.set_finished()
            return status
        stop = threading.Event()
        self._flights.add(stop)
        threading.Thread(target=self._fly, args=(row, status, stop), name=f"{self.name}-row", daemon=True).start()
        return status

    def stop(self, *, success: bool = False) -> None:
        """Stop any motion. An interrupted row is not recorded; with ``success=True`` (a pause)
        its status still finishes cleanly, so the RunEngine can replay the row on resume."""
        self._stop_success = success
        self._stale = True
        for flight in list(self._flights):
            flight.set()
        self._stop_axes(self._axes())

    def pause(self) -> None:
        """Called by the RunEngine when it pauses: the time until resume is not scan time."""
        if self._paused_since is None:
            self._paused_since = self.clock.now()

    def resume(self) -> None:
        """Called by the RunEngine when it resumes."""
        if self._paused_since is not None:
            self._paused_total += self.clock.now() - self._paused_since
            self._paused_since = None

    @property
    def paused_s(self) -> float:
        """Instrument seconds spent paused by the RunEngine since the stage was made."""
        open_pause = 0.0 if self._paused_since is None else self.clock.now() - self._paused_since
        return self._paused_total + open_pause

    def subscribe_rows(self, listener: RowListener) -> None:
        """Gate ``listener`` (a detector) with every fly row."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def unsubscribe_rows(self, listener: RowListener) -> None:
        """Stop gating ``listener`` (a detector that is done; unknown listeners are ignored)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def forget_rows(self, keys: Iterable[tuple[int, int]] | None = None) -> None:
        """Forget which (pass, row) were flown (a new scan starts; ``None`` forgets all)."""
        if keys is None:
            self._flown.clear()
        else:
            self._flown.difference_update(keys)

    # -- moves ----------------------------------------------------------------------------------
    def _require_homed(self, axis: ZaberAxis) -> None:
        if not self.homed:
            raise fault_for_flag("WR", axis.where)

    def _quantize(self, axis: ZaberAxis):
        u = self._units(axis)
        return lambda mm_s: u.speed_mm_s(u.speed_data(mm_s))

    def _clear_flags(self, axis: ZaberAxis) -> None:
        """Clear latched warnings (a past stop's NI, an old fault) so new ones stand out."""
        if self._flags.get(axis.device):
            self._request(axis, "warnings clear")
            self._flags[axis.device] = None

    def _disable_stream(self) -> None:
        try:
            self._request(self.x, f"stream {self.stream_number} setup disable", device_level=True)
        except ZaberRejected as exc:  # a stream still moving: stop it, then disable
            if exc.reason != "STATUSBUSY":
                raise
            self._request(self.x, "stop")
            self._wait_idle(self.x, None, self.move_timeout_s, what="stopping the stream")
            self._request(self.x, f"stream {self.stream_number} setup disable", device_level=True)
        self._stream_live = False

    def _start_move(self, axis: ZaberAxis, position: float) -> Received:
        self._require_homed(axis)
        if axis is self.x and self._stream_live:
            self._disable_stream()
        self._clear_flags(axis)
        return self._request(axis, f"move abs {self._to_steps(axis, position)}")

    def _finish_move(self, axis: ZaberAxis, position: float, got: Received, status) -> None:
        try:
            distance = abs(position - float(axis.position if axis.position is not None else position))
            expected = float(self.kinematics.move_time(distance))
            self._wait_idle(axis, got, min(self.move_timeout_s, 3 * expected + 2.0), what="move")
            axis.place(self._read_position(axis))
            axis.done(success=True)
        except Exception as exc:  # noqa: BLE001 - reported through the status
            axis._moving = False
            axis._reset_sub(axis._SUB_REQ_DONE)
            status.set_exception(exc)

    def _move_velocity(self, axis: ZaberAxis, speed_mm_s: float) -> None:
        self._require_homed(axis)
        if axis is self.x and self._stream_live:
            self._disable_stream()
        self._clear_flags(axis)
        data = self._units(axis).speed_data(abs(speed_mm_s))
        self._request(axis, f"move vel {int(math.copysign(data, speed_mm_s)) if speed_mm_s else 0}")
        self._stale = True

    def _read_position(self, axis: ZaberAxis) -> float:
        got = self._request(axis, "get pos")
        return self._to_mm(axis, got.reply.number())

    def _stop_axes(self, axes) -> None:
        for axis in axes:
            try:
                self._request(axis, "stop")
            except ZaberFault as exc:
                log.warning("%s: stop failed: %s", axis.where, exc)

    def _wait_idle(
        self, axis: ZaberAxis, got: Received | None, timeout_s: float, *, what: str,
        stop: threading.Event | None = None,
    ) -> tuple[float, str | None]:
        """Wait until ``axis`` is at rest after the command answered by ``got`` (its completion
        alert, or status polls when the alert is overdue); returns ``(instrument time it came
        to rest, warning flag)`` and raises the fault if the flag says the motion failed."""
        if got is None:
            got = self._request(axis, "get pos")
        if not got.reply.busy:
            return got.received, self._check_flag(axis, got.reply.warning)
        after = got.seq
        speed = float(getattr(self.clock, "speedup", 1.0))
        limit = self.clock.now() + timeout_s
        while True:
            left_wall = (limit - self.clock.now()) / speed
            hit = self.link.wait_alert(axis.device, after_seq=after, timeout_s=min(max(left_wall, 0.0), 0.25), stop=stop)
            if hit is not None:
                at, alert = hit
                if alert.status.value == "IDLE":
                    return at, self._check_flag(axis, alert.warning)
                continue
            if stop is not None and stop.is_set():
                raise RowInterrupted(f"{axis.where}: {what} stopped")
            poll = self._request(axis, "get pos")
            if not poll.reply.busy:
                return poll.received, self._check_flag(axis, poll.reply.warning)
            if self.clock.now() > limit:
                raise ZaberTimeout(axis.where, f"{what} did not finish within {timeout_s:.3g} s", "check what blocks the stage; stop it and home it again")

    def _check_flag(self, axis: ZaberAxis, flag: str | None) -> str | None:
        """Raise the fault a warning flag stands for (with the axis's position), if it stops
        motion; return the flag otherwise."""
        self._flags[axis.device] = flag
        if flag is None or not describe_flag(flag).stops_motion:
            return flag
        try:
            pos = self._read_position(axis)
        except (ValueError, ZaberFault):
            pos = None
        if axis is self.x:
            self._stream_live = False
        raise fault_for_flag(flag, axis.where, position_mm=pos)

    # -- fly rows -------------------------------------------------------------------------------
    def plan(self, row: FlyRow) -> RowPlan:
        """How ``row`` will be streamed (segments, planned edge times)."""
        return plan_row(
            row, self.kinematics, max_segments=self.max_segments, quantize=self._quantize(self.x),
            segment_cost_s=self.segment_cost_s(),
        )

    def segment_cost_s(self) -> float:
        """Instrument seconds one more stream segment costs: its two commands (``set maxspeed``
        and ``line abs``) at the measured pipelined time per command, or at the wire time of
        ~55 bytes per command before anything was measured."""
        per = self.link.stats.pipelined_s
        if per:
            return 2.0 * float(np.median(per)) * float(getattr(self.clock, "speedup", 1.0))
        return 2.0 * 55 * 10.0 / self.link.baudrate

    def check_row(self, row: FlyRow) -> None:
        """Raise ``LimitError`` if the row, with its run-up and run-out, leaves the limits."""
        plan = self.plan(row)
        lo, hi = sorted((plan.start_mm, plan.end_mm))
        (xl, xh), (yl, yh) = self.limits
        if lo < xl or hi > xh or not yl <= row.y <= yh:
            raise LimitError(
                f"row {row.row} needs x in [{lo:.3f}, {hi:.3f}] mm and y = {row.y:.3f} mm, "
                f"outside the stage limits x [{xl:.4g}, {xh:.4g}] mm, y [{yl:.4g}, {yh:.4g}] mm"
            )

    def _fly(self, row: FlyRow, status: Status, stop: threading.Event) -> None:
        with self._busy:
            self._stop = stop
            try:
                if row.key in self._flown:
                    status.set_finished()
                    return
                self._fly_row(row, status, stop)
            except RowCut:
                self._stale = True
                if not status.done:
                    status.set_finished()
            except RowInterrupted as exc:
                self._stale = True
                if not status.done:
                    if self._stop_success:
                        status.set_finished()
                    else:
                        status.set_exception(exc)
            except Exception as exc:  # noqa: BLE001 - surfaced through the status
                self._stale = True
                if not status.done:
                    status.set_exception(exc)
            finally:
                self._flights.discard(stop)

    def _one_way_s(self) -> float:
        """Half the median round trip, instrument seconds."""
        rtts = self.link.stats.round_trips_s
        wall = float(np.median(rtts)) / 2 if rtts else 0.0
        return wall * float(getattr(self.clock, "speedup", 1.0))

    def _stream_commands(
        self, plan: RowPlan, x_from: float, wait_s: float
    ) -> tuple[list[str], list[list[str]]]:
        """The commands that queue a row: the head (stream set-up, cork, approach, wait) and,
        per segment, its ``set maxspeed`` (when the speed changes) and ``line abs``."""
        n = self.stream_number
        ux = self._units(self.x)
        head = []
        if not self._stream_live:
            head += [f"stream {n} setup live {self.x.axis_number}",
                     f"stream {n} set tanaccel {ux.accel_data(self.kinematics.a_max)}"]
        head.append(f"stream {n} fifo cork")
        start = self._to_steps(self.x, plan.start_mm)
        approach = start != self._to_steps(self.x, x_from)
        if approach:
            head += [f"stream {n} set maxspeed {ux.speed_data(self.kinematics.v_max)}",
                     f"stream {n} line abs {start}"]
        if approach or wait_s > 0:  # the row starts from rest at its run-up point
            head.append(f"stream {n} wait {math.ceil(wait_s * 1000.0)}")
        segments, speed = [], None
        for seg in plan.segments:
            cmds = []
            data = ux.speed_data(seg.speed_mm_s)
            if data != speed:
                cmds.append(f"stream {n} set maxspeed {data}")
                speed = data
            cmds.append(f"stream {n} line abs {self._to_steps(self.x, seg.end_mm)}")
            segments.append(cmds)
        return head, segments

    def segments_before_release(self, plan: RowPlan, lead_s: float) -> int:
        """How many segments must be queued before the stream is released so that the rest,
        sent while the stage moves, always reach the device before the stage is within braking
        distance (at full speed) of them, even if the host stalls for ``HOST_STALL_S``. The time
        to send a segment is taken as twice the 90th percentile of the measured pipelined
        command time (two commands); until a few batches were measured, the whole row is queued
        first."""
        per = self.link.stats.pipelined_s
        n = len(plan.segments)
        if len(per) < 3:
            return n
        speedup = float(getattr(self.clock, "speedup", 1.0))
        cost = 2.0 * 2.0 * float(np.percentile(per, 90)) * speedup
        kin = self.kinematics
        brake = kin.v_max**2 / (2.0 * kin.a_max)
        starts = [plan.start_mm] + [seg.end_mm for seg in plan.segments[:-1]]
        stall = HOST_STALL_S * speedup
        need = [lead_s + planned_time_at(plan, x - plan.travel_sign * brake) - stall for x in starts]
        for n0 in range(1, n + 1):
            if all((i - n0 + 1) * cost <= need[i] for i in range(n0, n)):
                return n0
        return n

    def _resync(self) -> None:
        """After a stop or a fault (already reported): clear the latched warnings, wait until
        both axes rest and read where they are."""
        for axis in self._axes():
            self._clear_flags(axis)
            self._wait_idle(axis, None, self.move_timeout_s, what="stopping")
            axis.place(self._read_position(axis))
        self._stale = False

    def _fly_row(self, row: FlyRow, status: Status, stop: threading.Event) -> None:
        """Fly the row; a lost or garbled reply or a starved stream costs one new attempt (the
        first attempt is stopped and not recorded), a second one raises."""
        n0 = self.link.stats.commands
        rebuilds = 0
        while True:
            try:
                measured, plan, planned_total, t_go, deviation, n_first = self._try_row(row, stop)
                break
            except _Rebuild as again:
                if rebuilds >= 1:
                    raise again.fault from None
                log.warning("%s: row %d of pass %d flown again from its start: %s", self.name, row.row, row.pass_number, again)
                rebuilds += 1
        self.rows_log.append(
            RowRecord(
                pass_number=row.pass_number, row=row.row, width=row.width, segments=len(plan.segments),
                queued_first=n_first, commands=self.link.stats.commands - n0, planned_s=planned_total,
                measured_s=measured.finished - t_go, deviation_s=deviation, added_s=plan.added_s,
                rebuilds=rebuilds, end_mm=plan.end_mm,
            )
        )
        for listener in self._listeners:
            listener.row_finished(measured)
        self.last_row = measured
        self._flown.add(row.key)
        status.set_finished()

    def _try_row(self, row: FlyRow, stop: threading.Event):
        kin, clock = self.kinematics, self.clock
        plan = self.plan(row)
        started = clock.now()
        resynced = self._stale
        if resynced:
            self._resync()
        x_now = float(self.x.position)
        y_now = float(self.y.position)
        t_xa = float(kin.move_time(abs(plan.start_mm - x_now)))
        dy = row.y - y_now
        t_y = float(kin.move_time(abs(dy))) + (kin.settle_s if dy else 0.0)
        wait_s = max(0.0, t_y - t_xa - float(plan.profile.run_up_s[0]))
        lead = t_xa + math.ceil(wait_s * 1000.0) / 1000.0
        deadline = math.inf if row.deadline is None else float(row.deadline) + self.paused_s
        if started + lead > deadline:
            clock.sleep_until(deadline, stop)
            raise RowCut(f"row {row.row} of pass {row.pass_number} cut by its deadline")
        for axis in self._axes():
            self._require_homed(axis)
            self._clear_flags(axis)
        y_target = self._to_steps(self.y, row.y)
        y_moves = y_target != self._to_steps(self.y, y_now)
        head, segments = self._stream_commands(plan, x_now, wait_s)
        # after a stop or a fault the host is busy resuming (ledger, events, the RunEngine's
        # replay) just when the tail would be sent: queue the whole row before releasing it
        n_first = len(segments) if resynced else self.segments_before_release(plan, lead)
        batch = [(self.x.device, 0, c) for c in head + sum(segments[:n_first], [])]
        if y_moves:  # the row step goes first, so it has the approach to settle
            batch.insert(0, (self.y.device, self.y.axis_number, f"move abs {y_target}"))
        try:
            sent = self.link.request_batch(batch, where=self.x.where, idempotent=False)
            self._stream_live = True
            go = self._request(self.x, f"stream {self.stream_number} fifo uncork", device_level=True)
        except (ZaberTimeout, ZaberGarbled, ZaberPortError) as exc:
            # nothing moved yet (corked): throw the queue away and start over
            self._stream_live = False
            self._stale = True
            self._disable_stream()
            raise _Rebuild(exc) from exc
        y_got = sent[0] if y_moves else None
        t_go = 0.5 * (go.sent + go.received)
        t_run_up = t_go + lead
        planned_total = lead + plan.duration_s
        gates = RowGates(
            pass_number=row.pass_number,
            row=row.row,
            x=row.x,
            y=row.y,
            real_time=plan.pixel_time_s,
            planned_dwell=row.dwell,
            started=started,
            finished=t_go + planned_total,
            reverse=row.reverse,
        )
        for listener in self._listeners:
            listener.row_started(gates)
        try:
            tail = [(self.x.device, 0, c) for c in sum(segments[n_first:], [])]
            for k in range(0, len(tail), TAIL_CHUNK):  # the rest, queued while the stage moves
                if stop.is_set():
                    raise RowInterrupted(f"row {row.row} of pass {row.pass_number} stopped; not recorded")
                if clock.now() >= deadline:
                    raise RowCut(f"row {row.row} of pass {row.pass_number} cut by its deadline")
                try:
                    self.link.request_batch(tail[k : k + TAIL_CHUNK], where=self.x.where, idempotent=False)
                except (ZaberTimeout, ZaberGarbled, ZaberPortError) as exc:
                    self._stop_axes(self._axes())
                    self._stream_live = False
                    self._stale = True
                    raise _Rebuild(exc) from exc
            anchors, t_end = self._follow_row(plan, go, t_run_up, deadline, stop, planned_total)
            try:
                x_end, y_end = self._row_readback(plan, y_got, stop)
            except StreamStarved as exc:  # the second attempt queues the whole row first
                self._stop_axes(self._axes())
                self._disable_stream()
                self._stale = True
                raise _Rebuild(exc) from exc
        except RowCut:
            self._stop_axes(self._axes())
            self._stream_live = False
            self._abort(gates)
            raise
        except BaseException:
            self._abort(gates)
            raise
        self.x.place(x_end)
        self.y.place(y_end)
        real, _, deviation = measured_pixel_times(
            plan, [(-lead, t_go), *anchors, (plan.duration_s, t_end)], t_run_up, self._timing_noise_s()
        )
        measured = RowGates(
            pass_number=row.pass_number,
            row=row.row,
            x=row.x,
            y=row.y,
            real_time=real,
            planned_dwell=row.dwell,
            started=started,
            finished=t_end,
            reverse=row.reverse,
        )
        return measured, plan, planned_total, t_go, deviation, n_first

    def _row_readback(self, plan: RowPlan, y_got: Received | None, stop: threading.Event) -> tuple[float, float]:
        """Where x and y are after the row (one pipelined ``get pos`` each); the row step must
        be over and x must be at the run-out end."""
        row = plan.row
        x_pos, y_pos = self.link.request_batch(
            [(a.device, a.axis_number, "get pos") for a in self._axes()], where=self.x.where
        )
        x_end = self._to_mm(self.x, x_pos.reply.number())
        if abs(x_end - plan.end_mm) > 2 * self._units(self.x).microstep_mm:
            what = f"row {row.row} of pass {row.pass_number}"
            if (plan.end_mm - x_end) * plan.travel_sign > 0:
                raise StreamStarved(
                    self.x.where,
                    f"{what} stopped at {x_end:.4f} mm, short of its end at {plan.end_mm:.4f} mm",
                    "the stream ran out of queued motion (its tail reached the controller late: "
                    "a busy host or a slow serial line) or something else stopped the stage; "
                    "resume to fly the row again",
                )
            raise ZaberFault(
                self.x.where,
                f"{what} ended at {x_end:.4f} mm instead of {plan.end_mm:.4f} mm",
                "check the stream settings and that nothing else moves the stage",
            )
        if y_got is not None:
            self._wait_idle(self.y, y_got, self.move_timeout_s, what="row step", stop=stop)
            if y_pos.reply.busy:
                y_pos = self._request(self.y, "get pos")
        return x_end, self._to_mm(self.y, y_pos.reply.number())

    def _timing_noise_s(self) -> float:
        """How far a host timestamp may be off the device's motion, instrument seconds: the
        95th percentile round trip (latency plus jitter) of recent requests, at least 1 ms."""
        rtts = self.link.stats.round_trips_s
        wall = float(np.percentile(rtts, 95)) if rtts else 0.0
        return max(1e-3, wall * float(getattr(self.clock, "speedup", 1.0)))

    def _abort(self, gates: RowGates) -> None:
        for listener in self._listeners:
            listener.row_aborted(gates)

    def _follow_row(
        self, plan: RowPlan, go: Received, t_run_up: float, deadline: float,
        stop: threading.Event, planned_total: float,
    ) -> tuple[list[tuple[float, float]], float]:
        """Watch the released row until the x axis is at rest: position samples at planned
        instants inside the pixels, then the completion alert (or polls if it is overdue).
        Returns the ``(planned s from run-up start, instrument time)`` anchors and the end."""
        clock = self.clock
        speed = float(getattr(clock, "speedup", 1.0))
        anchors: list[tuple[float, float]] = []
        row = plan.row
        first, last = plan.edge_s[0], plan.edge_s[-1]
        taus = [first + (last - first) * (i + 1) / (self.position_samples + 1) for i in range(self.position_samples)]
        after = go.seq
        expected_end = t_run_up + plan.duration_s
        grace = max(0.25 * planned_total, 0.05 * speed)
        for tau in [*taus, None]:
            until = expected_end + grace if tau is None else t_run_up + tau
            while True:
                wall = (min(until, deadline) - clock.now()) / speed
                hit = self.link.wait_alert(self.x.device, after_seq=after, timeout_s=max(0.0, wall), stop=stop)
                if stop.is_set():
                    raise RowInterrupted(f"row {row.row} of pass {row.pass_number} stopped; not recorded")
                if hit is not None:
                    at, alert = hit
                    if alert.status.value != "IDLE":
                        continue
                    self._check_flag(self.x, alert.warning)
                    return anchors, at - self._one_way_s()
                if clock.now() >= deadline:
                    raise RowCut(f"row {row.row} of pass {row.pass_number} cut by its deadline")
                if clock.now() >= until:
                    break
            if tau is not None:
                got = self._request(self.x, "get pos")
                if not got.reply.busy:  # at rest already: the alert is on its way or was lost
                    self._check_flag(self.x, got.reply.warning)
                    continue
                pos = self._to_mm(self.x, got.reply.number())
                anchors.append((planned_time_at(plan, pos), 0.5 * (got.sent + got.received)))
        # the completion alert is overdue: poll until the axis is at rest
        hard = expected_end + max(planned_total, 1.0) + grace
        while True:
            got = self._request(self.x, "get pos")
            if not got.reply.busy:
                self._check_flag(self.x, got.reply.warning)
                return anchors, 0.5 * (got.sent + got.received)
            if clock.now() >= deadline:
                raise RowCut(f"row {row.row} of pass {row.pass_number} cut by its deadline")
            if clock.now() > hard:
                raise ZaberTimeout(
                    self.x.where,
                    f"row {row.row} of pass {row.pass_number} still moving {clock.now() - expected_end:.3g} s after its planned end",
                    "stop the stage and check what slows it down",
                )
            hit = self.link.wait_alert(self.x.device, after_seq=got.seq, timeout_s=POLL_S, stop=stop)
            if stop.is_set():
                raise RowInterrupted(f"row {row.row} of pass {row.pass_number} stopped; not recorded")
            if hit is not None and hit[1].status.value == "IDLE":
                self._check_flag(self.x, hit[1].warning)
                return anchors, hit[0] - self._one_way_s()
