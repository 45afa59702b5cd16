"""A Zaber ASCII device emulator on a pseudo-terminal, for tests and benchmarks.

>>> with ZaberEmulator(clock=ScaledClock(20)) as emu:
...     port = serial.Serial(emu.port, 115200)   # exactly like a USB serial adapter
...     port.write(b"/1 1 get pos\\n")            # -> b"@01 1 OK IDLE WR 0\\r\\n"

It emulates ``devices`` single-axis controllers (addresses 1, 2, ...) daisy-chained on one port.
Positions are integers of microsteps; motion happens in time on ``clock`` (a
:class:`~dwellwise.simulators.clock.ScaledClock` runs it faster than real time), with trapezoidal
moves (``maxspeed``, ``accel``) and streamed motion: ``stream N setup live 1``, queued ``line
abs|rel`` segments each under the ``stream N set maxspeed`` in force when it was queued, ``wait``
actions, ``fifo cork``/``uncork``, planned with look-ahead over the whole queue (the axis never
exceeds a segment's speed, and brakes in time to stop at the end of what is queued). Replies
follow the protocol (``@``, ``!`` alerts when ``comm.alert`` is 1, checksums when
``comm.checksum`` is 1), including rejections and warning flags. Serial transmission time at
``wire_baud`` is spent on the clock.

Faults can be injected while it runs: no reply, a garbled reply, a rejected command, a limit
switch hit or a stall when an axis next crosses a position, a silent (unplugged) device, and a
USB adapter that disappears and comes back under the same name (:meth:`replug`).

The emulator's conventions where the real firmware may differ: an axis driven by a running stream
rejects ``move`` commands with ``STATUSBUSY``; stream commands must go to axis 0 (``DEVICEONLY``);
a full stream queue rejects with ``FULL``; a command with a wrong checksum gets no reply. Axes
start without a reference position (``WR``) until homed; homing moves to microstep 0.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import threading
import tty
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from dwellwise.simulators.clock import Clock, ScaledClock

DEFAULT_MICROSTEP_MM = 0.49609375e-3
"""Microstep of the emulated stages, mm (Zaber X-LSQ lead screw)."""
DEFAULT_TRAVEL_MM = 320.0
"""Travel of each emulated axis, mm."""
SPEED_UNITS = 1.6384
"""``maxspeed`` units per microstep/s."""
ACCEL_UNITS = 1.6384 / 10000.0
"""``accel`` units per microstep/s²."""
FIRMWARE = "7.38"
"""Reported by ``get version``."""

_FLAG_ORDER = (
    "FF FN FZ FH FV FO FC FM FD FQ FI FA FR FS FB FP FE FT "
    "WL WV WT WS WM WP WR WH NC NI ND NR NT NU NJ NB"
).split()


# -- motion ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Phase:
    """Constant acceleration from instrument time ``t0`` for ``dt`` seconds (µsteps, µsteps/s)."""

    t0: float
    x0: float
    v0: float
    a: float
    dt: float

    def at(self, t: float) -> tuple[float, float]:
        tau = min(max(t - self.t0, 0.0), self.dt)
        return self.x0 + self.v0 * tau + 0.5 * self.a * tau * tau, self.v0 + self.a * tau

    @property
    def end(self) -> tuple[float, float]:
        return self.at(self.t0 + self.dt)


@dataclass
class _Trajectory:
    """Where an axis is going: phases in time order, and when each queued action ends."""

    phases: list[_Phase]
    start: float
    end_x: float
    action_ends: list[float] = field(default_factory=list)
    stream: bool = False
    fault: str | None = None
    """Warning flag set when the trajectory ends (a stall or a limit cut it short)."""
    trigger: tuple[str, int] | None = None

    @property
    def end(self) -> float:
        if not self.phases:
            return self.start
        last = self.phases[-1]
        return last.t0 + last.dt

    def state(self, t: float) -> tuple[float, float]:
        """Position (µsteps) and velocity (µsteps/s) at instrument time ``t``."""
        if not self.phases or t >= self.end:
            return self.end_x, 0.0
        for ph in self.phases:
            if t < ph.t0 + ph.dt:
                return ph.at(t)
        return self.end_x, 0.0


def _segment_phases(t: float, x: float, direction: float, length: float, u: float, w: float,
                    cap: float, a: float) -> tuple[list[_Phase], float, float]:
    """Accelerate from ``u`` towards the cap, cruise, brake to ``w`` over ``length`` µsteps."""
    peak = min(cap, math.sqrt(max(0.0, (2.0 * a * length + u * u + w * w) / 2.0)))
    peak = max(peak, u, w)
    phases = []
    d1 = (peak * peak - u * u) / (2.0 * a)
    d3 = (peak * peak - w * w) / (2.0 * a)
    d2 = max(0.0, length - d1 - d3)
    for v_from, acc, dt in (
        (u, a, (peak - u) / a),
        (peak, 0.0, d2 / peak if peak > 0 else 0.0),
        (peak, -a, (peak - w) / a),
    ):
        if dt > 0:
            phases.append(_Phase(t, x, direction * v_from, direction * acc, dt))
            x, _ = phases[-1].end
            t += dt
    return phases, t, x


def plan_path(
    t: float, x: float, v: float, actions: list[tuple], accel: float
) -> tuple[list[_Phase], list[float], float]:
    """Phases for queued ``actions`` from position ``x`` and velocity ``v`` at time ``t``.

    ``actions``: ``("line", target_µsteps, cap_µsteps_per_s)`` or ``("wait", seconds)``. Lines
    between waits are one path: junction speeds are capped by both neighbouring segments (zero
    where the direction reverses), and the path ends at rest (look-ahead over the queue: the
    largest speeds with forward and backward passes under ``accel`` µsteps/s²). Returns the
    phases, the end time of every action, and the end position.
    """
    phases: list[_Phase] = []
    ends: list[float] = []
    i = 0
    while i < len(actions):
        if actions[i][0] == "wait":
            if abs(v) > 0:  # cannot happen from a consistent state; stop first
                dt = abs(v) / accel
                phases.append(_Phase(t, x, v, -math.copysign(accel, v), dt))
                x, _ = phases[-1].end
                t += dt
                v = 0.0
            if actions[i][1] > 0:
                phases.append(_Phase(t, x, 0.0, 0.0, float(actions[i][1])))
                t += float(actions[i][1])
            ends.append(t)
            i += 1
            continue
        j = i
        while j < len(actions) and actions[j][0] == "line":
            j += 1
        run = actions[i:j]
        pos = x
        segs = []  # (direction, length, cap)
        for _, target, cap in run:
            length = abs(target - pos)
            segs.append((1.0 if target >= pos else -1.0, length, float(cap)))
            pos = target
        n = len(segs)
        junction = [0.0] * (n + 1)
        junction[0] = abs(v)
        for k in range(1, n):
            same = segs[k - 1][0] == segs[k][0] and segs[k - 1][1] > 0 and segs[k][1] > 0
            junction[k] = min(segs[k - 1][2], segs[k][2]) if same else 0.0
        for k in range(1, n + 1):
            junction[k] = min(junction[k], math.sqrt(junction[k - 1] ** 2 + 2 * accel * segs[k - 1][1]))
        for k in range(n - 1, 0, -1):
            junction[k] = min(junction[k], math.sqrt(junction[k + 1] ** 2 + 2 * accel * segs[k][1]))
        for k, (direction, length, cap) in enumerate(segs):
            if length <= 0:
                ends.append(t)
                continue
            seg, t, x = _segment_phases(t, x, direction, length, junction[k], junction[k + 1], cap, accel)
            phases += seg
            ends.append(t)
        x = pos
        v = 0.0
        i = j
    return phases, ends, x


def crossing_time(phases: list[_Phase], at: float) -> float | None:
    """First instrument time at which the phases pass position ``at`` (µsteps), or None."""
    for ph in phases:
        x0, _ = ph.at(ph.t0)
        x1, _ = ph.end
        lo, hi = min(x0, x1), max(x0, x1)
        if not lo <= at <= hi or (x0 == x1):
            continue
        # solve x0 + v0 τ + a τ²/2 = at for the smallest τ in [0, dt]
        a, b, c = 0.5 * ph.a, ph.v0, x0 - at
        if abs(a) < 1e-12:
            tau = -c / b
        else:
            disc = max(0.0, b * b - 4 * a * c)
            roots = sorted(((-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)))
            tau = next((r for r in roots if -1e-12 <= r <= ph.dt + 1e-12), None)
            if tau is None:
                continue
        return ph.t0 + min(max(tau, 0.0), ph.dt)
    return None


# -- devices --------------------------------------------------------------------------------
@dataclass
class _Axis:
    pos: float
    maxspeed: int
    accel: int
    limit_min: int
    limit_max: int
    homed: bool = False
    flags: set[str] = field(default_factory=set)
    """Latched warning flags (``warnings clear`` clears them); ``WR`` is shown while not homed."""
    traj: _Trajectory | None = None

    def all_flags(self) -> set[str]:
        return self.flags | (set() if self.homed else {"WR"})


@dataclass
class _Stream:
    number: int
    axes: list[int]
    cap: int
    """Current ``stream N set maxspeed`` (data units)."""
    tanaccel: int
    corked: bool = False
    queued: list[tuple] = field(default_factory=list)
    """Actions not yet executed (the first may be in progress)."""
    planned: int = 0
    """How many of the queued actions the axis's trajectory covers."""


@dataclass
class _Device:
    address: int
    axis: _Axis
    alerts: bool = False
    checksums: bool = False
    streams: dict[int, _Stream] = field(default_factory=dict)


@dataclass
class EmulatorFaults:
    """Faults to inject (change them through :class:`ZaberEmulator`'s methods while it runs)."""

    drop_replies: int = 0
    """The next n replies (to commands containing :attr:`drop_match`) are not sent."""
    drop_match: str = ""
    garble_replies: int = 0
    """The next n replies (to commands containing :attr:`garble_match`) are corrupted."""
    garble_match: str = ""
    drop_after: int = 0
    """Matching commands to let through before dropping replies."""
    garble_after: int = 0
    """Matching commands to let through before garbling replies."""
    rejections: list[tuple[str, str, int]] = field(default_factory=list)
    """``(command text, reason, count)``: commands containing the text are rejected."""
    limit_at: dict[int, float] = field(default_factory=dict)
    """Device -> microstep position of a limit switch hit when the axis next crosses it."""
    stall_at: dict[int, float] = field(default_factory=dict)
    """Device -> microstep position where the axis next stalls (FS)."""
    silent: bool = False
    """No replies at all (an unplugged or powered-off chain)."""


class ZaberEmulator:
    """``devices`` single-axis Zaber controllers on a pseudo-terminal (see the module docstring)."""

    def __init__(
        self,
        devices: int = 2,
        *,
        clock: Clock | None = None,
        microstep_mm: float = DEFAULT_MICROSTEP_MM,
        travel_mm: float = DEFAULT_TRAVEL_MM,
        maxspeed_mm_s: float = 100.0,
        accel_mm_s2: float = 1000.0,
        homed: bool = False,
        start_mm: float = 10.0,
        wire_baud: float | None = 115200.0,
        stream_buffer: int = 256,
        link_path: str | Path | None = None,
    ) -> None:
        if devices < 1 or devices > 99:
            raise ValueError(f"devices must be 1-99, got {devices}")
        self.clock = clock or ScaledClock(1.0)
        self.microstep_mm = float(microstep_mm)
        self.wire_baud = wire_baud
        self.stream_buffer = int(stream_buffer)
        self.faults = EmulatorFaults()
        self.commands_received = 0
        """Commands received so far (all devices)."""
        self.log: deque[str] = deque(maxlen=200)
        """The last commands received, as text."""
        steps_max = int(round(travel_mm / microstep_mm))
        self.devices = {
            d: _Device(
                address=d,
                axis=_Axis(
                    pos=float(round(start_mm / microstep_mm)),
                    maxspeed=max(1, math.ceil(maxspeed_mm_s / microstep_mm * SPEED_UNITS - 1e-9)),
                    accel=max(1, math.ceil(accel_mm_s2 / microstep_mm * ACCEL_UNITS - 1e-9)),
                    limit_min=0,
                    limit_max=steps_max,
                    homed=homed,
                ),
            )
            for d in range(1, devices + 1)
        }
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rx = b""
        self._rx_done = 0.0
        self._link = Path(link_path) if link_path is not None else None
        self._open_pty()

    # -- life cycle ---------------------------------------------------------------------------
    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._slave_name = os.ttyname(self._slave)
        if self._link is not None:
            tmp = self._link.with_name(self._link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self._slave_name)
            tmp.replace(self._link)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def port(self) -> str:
        """Path to open with pyserial (the stable link if one was asked for)."""
        return str(self._link) if self._link is not None else self._slave_name

    def start(self) -> ZaberEmulator:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="zaber-emulator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._close_pty()
        if self._link is not None:
            self._link.unlink(missing_ok=True)

    def __enter__(self) -> ZaberEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def replug(self) -> None:
        """The USB adapter disappears and comes back: the old pty is closed (the host sees an
        I/O error) and a new one takes its place under :attr:`port` (needs ``link_path``)."""
        if self._link is None:
            raise RuntimeError("replug() needs an emulator made with link_path (a stable port name)")
        with self._lock:
            old = (self._master, self._slave)
            self._open_pty()
            self._rx = b""
        for fd in old:
            try:
                os.close(fd)
            except OSError:
                pass

    # -- fault injection ----------------------------------------------------------------------
    def inject_no_reply(self, count: int = 1, match: str = "", after: int = 0) -> None:
        """Do not answer ``count`` commands containing ``match``, after letting ``after`` of
        them through."""
        with self._lock:
            self.faults.drop_replies, self.faults.drop_match = int(count), match
            self.faults.drop_after = int(after)

    def inject_garbled(self, count: int = 1, match: str = "", after: int = 0) -> None:
        """Corrupt the replies to ``count`` commands containing ``match``, after letting
        ``after`` of them through."""
        with self._lock:
            self.faults.garble_replies, self.faults.garble_match = int(count), match
            self.faults.garble_after = int(after)

    def inject_rejection(self, match: str, reason: str = "BADDATA", count: int = 1) -> None:
        """Reject the next ``count`` commands containing ``match`` with ``reason``."""
        with self._lock:
            self.faults.rejections.append((match, reason, int(count)))

    def inject_limit_hit(self, device: int, position_mm: float) -> None:
        """A limit switch trips when ``device``'s axis next crosses ``position_mm`` (device mm)."""
        with self._lock:
            self.faults.limit_at[device] = position_mm / self.microstep_mm
            self._replan_triggers(device)

    def inject_stall(self, device: int, position_mm: float) -> None:
        """``device``'s axis stalls when it next crosses ``position_mm`` (device mm)."""
        with self._lock:
            self.faults.stall_at[device] = position_mm / self.microstep_mm
            self._replan_triggers(device)

    def set_silent(self, silent: bool = True) -> None:
        """Stop (or resume) answering anything."""
        with self._lock:
            self.faults.silent = bool(silent)

    def position_mm(self, device: int) -> float:
        """Where ``device``'s axis is now, mm from its home."""
        with self._lock:
            ax = self.devices[device].axis
            x = ax.traj.state(self.clock.now())[0] if ax.traj else ax.pos
            return x * self.microstep_mm

    # -- the serial loop ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                master = self._master
                wait = self._next_event_wall()
            try:
                ready, _, _ = select.select([master], [], [], wait)
            except (OSError, ValueError):  # replugged under our feet
                continue
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # nobody has the slave open (EIO) or the pty was replaced
                    self._stop.wait(0.005)
                    continue
                with self._lock:
                    if master != self._master:
                        continue
                    arrived = self.clock.now()
                    self._rx += data
                    while True:
                        cut = [i for i in (self._rx.find(b"\n"), self._rx.find(b"\r")) if i >= 0]
                        if not cut:
                            break
                        i = min(cut)
                        line, self._rx = self._rx[:i], self._rx[i + 1 :]
                        # full duplex: a command's bytes arrive while earlier replies go out
                        self._rx_done = max(arrived, self._rx_done) + self._wire_s(i + 1)
                        self.clock.sleep(max(0.0, self._rx_done - self.clock.now()))
                        if line.strip():
                            self._handle(line.decode("ascii", "replace").strip())
            with self._lock:
                self._update(self.clock.now())

    def _next_event_wall(self) -> float:
        now = self.clock.now()
        soonest = math.inf
        for dev in self.devices.values():
            if dev.axis.traj is not None:
                soonest = min(soonest, dev.axis.traj.end)
        if soonest == math.inf:
            return 0.05
        return min(0.05, max(0.0, (soonest - now) / self.clock.speedup))

    def _write(self, text: str, checksums: bool) -> None:
        if checksums:
            body = text[1:]
            text += f":{(-sum(body.encode('ascii'))) & 0xFF:02X}"
        try:
            os.write(self._master, (text + "\r\n").encode("ascii"))
        except OSError:
            pass

    def _wire_s(self, n_bytes: int) -> float:
        """Instrument seconds ``n_bytes`` take on the wire (10 bits a byte at ``wire_baud``)."""
        return 10.0 * n_bytes / self.wire_baud if self.wire_baud else 0.0

    def _wire_delay(self, n_bytes: int) -> None:
        if self.wire_baud:
            self.clock.sleep(self._wire_s(n_bytes))

    # -- motion bookkeeping -------------------------------------------------------------------
    def _update(self, now: float) -> None:
        for dev in self.devices.values():
            ax = dev.axis
            tr = ax.traj
            if tr is None or now < tr.end:
                continue
            ax.pos = tr.end_x
            ax.traj = None
            if tr.trigger is not None:
                kind, device = tr.trigger
                (self.faults.limit_at if kind == "WL" else self.faults.stall_at).pop(device, None)
            if tr.fault:
                ax.flags.add(tr.fault)
                for stream in dev.streams.values():
                    stream.queued.clear()
                    stream.planned = 0
            elif tr.stream:
                for stream in dev.streams.values():
                    del stream.queued[: stream.planned]
                    stream.planned = 0
                    self._run_stream(dev, stream)  # actions queued while corked
            if dev.alerts and ax.traj is None:
                self._write(f"!{dev.address:02d} 1 IDLE {self._flag(ax)}", dev.checksums)

    def _state(self, ax: _Axis, now: float) -> tuple[float, float]:
        return ax.traj.state(now) if ax.traj is not None else (ax.pos, 0.0)

    def _apply_triggers(self, dev: _Device, tr: _Trajectory) -> _Trajectory:
        """Cut the trajectory short where an injected limit switch or stall waits."""
        best: tuple[float, str] | None = None
        for kind, table in (("WL", self.faults.limit_at), ("FS", self.faults.stall_at)):
            at = table.get(dev.address)
            if at is None:
                continue
            t = crossing_time(tr.phases, at)
            if t is not None and (best is None or t < best[0]):
                best = (t, kind)
        if best is None:
            return tr
        t_cut, kind = best
        kept = [p for p in tr.phases if p.t0 < t_cut]
        if kept:
            last = kept[-1]
            kept[-1] = _Phase(last.t0, last.x0, last.v0, last.a, min(last.dt, t_cut - last.t0))
        end_x = kept[-1].end[0] if kept else tr.state(t_cut)[0]
        return _Trajectory(
            phases=kept, start=tr.start, end_x=end_x, action_ends=[], stream=tr.stream,
            fault=kind, trigger=(kind, dev.address),
        )

    def _replan_triggers(self, device: int) -> None:
        dev = self.devices[device]
        if dev.axis.traj is not None and dev.axis.traj.fault is None:
            dev.axis.traj = self._apply_triggers(dev, dev.axis.traj)

    def _start_move(self, dev: _Device, target: float, speed: float | None = None) -> None:
        """Point-to-point move (from the current state) to ``target`` µsteps."""
        ax = dev.axis
        now = self.clock.now()
        x, v = self._state(ax, now)
        cap = (speed if speed is not None else ax.maxspeed) / SPEED_UNITS
        accel = ax.accel / ACCEL_UNITS
        if ax.traj is not None and v != 0:
            ax.flags.add("NI")
        phases, _, end_x = plan_path(now, x, v, [("line", float(target), cap)], accel)
        if v != 0 and ((target - x) * v < 0 or v * v / (2 * accel) > abs(target - x)):
            # the other way, or too close to stop in time: brake first, then go
            brake, _, x_stop = plan_path(now, x, v, [("wait", 0.0)], accel)
            t1 = brake[-1].t0 + brake[-1].dt if brake else now
            more, _, end_x = plan_path(t1, x_stop, 0.0, [("line", float(target), cap)], accel)
            phases = brake + more
        ax.traj = self._apply_triggers(dev, _Trajectory(phases, now, end_x))

    def _stop_axis(self, dev: _Device) -> None:
        ax = dev.axis
        now = self.clock.now()
        x, v = self._state(ax, now)
        for stream in dev.streams.values():
            stream.queued.clear()
            stream.planned = 0
        if ax.traj is None:
            return
        ax.flags.add("NI")
        if v == 0:
            ax.traj, ax.pos = None, x
            return
        phases, _, end_x = plan_path(now, x, v, [("wait", 0.0)], ax.accel / ACCEL_UNITS)
        ax.traj = self._apply_triggers(dev, _Trajectory(phases, now, end_x))

    def _run_stream(self, dev: _Device, stream: _Stream) -> None:
        """(Re)plan the stream's queued actions from the axis's current state."""
        ax = dev.axis
        now = self.clock.now()
        tr = ax.traj
        if stream.corked or not stream.queued or (tr is not None and tr.fault):
            return
        wait_left = None
        if tr is not None and tr.stream:
            done = sum(1 for t in tr.action_ends if t <= now)
            if done < len(tr.action_ends):
                wait_left = max(0.0, tr.action_ends[done] - now)
            del stream.queued[:done]
        x, v = self._state(ax, now)
        actions = [
            ("line", act[1], act[2] / SPEED_UNITS) if act[0] == "line" else act
            for act in stream.queued
        ]
        if actions and actions[0][0] == "wait" and wait_left is not None:
            actions[0] = ("wait", wait_left)
        phases, ends, end_x = plan_path(now, x, v, actions, stream.tanaccel / ACCEL_UNITS)
        stream.planned = len(actions)
        ax.traj = self._apply_triggers(dev, _Trajectory(phases, now, end_x, ends, stream=True))

    # -- commands -----------------------------------------------------------------------------
    def _handle(self, line: str) -> None:
        self.commands_received += 1
        self.log.append(line)
        if not line.startswith("/"):
            return
        body = line[1:]
        if ":" in body:
            body, _, cs = body.rpartition(":")
            try:
                if (sum(body.encode("ascii")) + int(cs, 16)) & 0xFF:
                    return  # corrupted command: the device ignores it
            except ValueError:
                return
        tokens = body.split()
        device, axis, msg_id = 0, 0, None
        if tokens and tokens[0].isdigit():
            device = int(tokens.pop(0))
            if tokens and tokens[0].isdigit():
                axis = int(tokens.pop(0))
                if tokens and tokens[0].isdigit():
                    msg_id = int(tokens.pop(0))
        targets = sorted(self.devices) if device == 0 else ([device] if device in self.devices else [])
        self._update(self.clock.now())
        for address in targets:
            dev = self.devices[address]
            reply = self._execute(dev, axis, tokens, line)
            self._reply(dev, axis, msg_id, reply, line)

    def _reply(self, dev: _Device, axis: int, msg_id: int | None, reply: tuple, line: str) -> None:
        ok, data = reply
        f = self.faults
        if f.silent:
            return
        if f.drop_replies > 0 and f.drop_match in line and f.drop_after > 0:
            f.drop_after -= 1
        elif f.drop_replies > 0 and f.drop_match in line:
            f.drop_replies -= 1
            return
        ax = dev.axis
        status = "BUSY" if ax.traj is not None else "IDLE"
        head = f"@{dev.address:02d} {axis}" + (f" {msg_id:02d}" if msg_id is not None else "")
        text = f"{head} {'OK' if ok else 'RJ'} {status} {self._flag(ax)} {data}"
        if f.garble_replies > 0 and f.garble_match in line and f.garble_after > 0:
            f.garble_after -= 1
        elif f.garble_replies > 0 and f.garble_match in line:
            f.garble_replies -= 1
            text = text.replace(" OK ", " 0K~").replace(" RJ ", " R#") + "\x07"
            self._wire_delay(len(text) + 2)
            try:
                os.write(self._master, (text + "\r\n").encode("ascii"))
            except OSError:
                pass
            return
        self._wire_delay(len(text) + 2)
        self._write(text, dev.checksums)

    @staticmethod
    def _flag(ax: _Axis) -> str:
        flags = ax.all_flags()
        for code in _FLAG_ORDER:
            if code in flags:
                return code
        return "--"

    def _execute(self, dev: _Device, axis: int, tokens: list[str], line: str) -> tuple[bool, str]:
        for k, (match, reason, count) in enumerate(self.faults.rejections):
            if match in line and count > 0:
                self.faults.rejections[k] = (match, reason, count - 1)
                return False, reason
        if axis > 1:
            return False, "BADAXIS"
        if not tokens:
            return True, "0"
        cmd, args = tokens[0], tokens[1:]
        ax = dev.axis
        try:
            if cmd == "get":
                return self._get(dev, axis, args)
            if cmd == "set":
                return self._set(dev, axis, args)
            if cmd == "warnings":
                flags = sorted(ax.all_flags(), key=_FLAG_ORDER.index)
                if args == ["clear"]:
                    ax.flags.clear()
                elif args:
                    return False, "BADDATA"
                return True, " ".join([f"{len(flags):02d}", *flags])
            if cmd == "stream":
                if axis != 0:
                    return False, "DEVICEONLY"
                return self._stream(dev, args)
            if cmd == "home":
                if self._streaming(dev):
                    return False, "STATUSBUSY"
                ax.flags -= {"WL", "FS"}
                ax.homed = True
                self._start_move(dev, 0.0)
                return True, "0"
            if cmd == "move":
                return self._move(dev, args)
            if cmd == "stop":
                self._stop_axis(dev)
                return True, "0"
            if cmd == "estop":
                x, _ = self._state(ax, self.clock.now())
                if ax.traj is not None:
                    ax.flags.add("NI")
                ax.traj, ax.pos = None, x
                for stream in dev.streams.values():
                    stream.queued.clear()
                    stream.planned = 0
                return True, "0"
        except (ValueError, IndexError):
            return False, "BADDATA"
        return False, "BADCOMMAND"

    def _streaming(self, dev: _Device) -> bool:
        return dev.axis.traj is not None and dev.axis.traj.stream

    def _get(self, dev: _Device, axis: int, args: list[str]) -> tuple[bool, str]:
        if len(args) != 1:
            return False, "BADDATA"
        ax = dev.axis
        name = args[0]
        now = self.clock.now()
        values = {
            "pos": lambda: str(int(round(self._state(ax, now)[0]))),
            "maxspeed": lambda: str(ax.maxspeed),
            "accel": lambda: str(ax.accel),
            "limit.min": lambda: str(ax.limit_min),
            "limit.max": lambda: str(ax.limit_max),
            "comm.alert": lambda: str(int(dev.alerts)),
            "comm.checksum": lambda: str(int(dev.checksums)),
            "system.axiscount": lambda: "1",
            "version": lambda: FIRMWARE,
            "deviceid": lambda: "50081",
        }
        if name not in values:
            return False, "BADCOMMAND"
        return True, values[name]()

    def _set(self, dev: _Device, axis: int, args: list[str]) -> tuple[bool, str]:
        if len(args) != 2:
            return False, "BADDATA"
        name, value = args[0], int(args[1])
        ax = dev.axis
        if name in ("maxspeed", "accel"):
            if value <= 0:
                return False, "BADDATA"
            setattr(ax, name, value)
        elif name in ("limit.min", "limit.max"):
            setattr(ax, name.replace(".", "_"), value)
        elif name in ("comm.alert", "comm.checksum"):
            if value not in (0, 1):
                return False, "BADDATA"
            if name == "comm.alert":
                dev.alerts = bool(value)
            else:
                dev.checksums = bool(value)
        else:
            return False, "BADCOMMAND"
        return True, "0"

    def _move(self, dev: _Device, args: list[str]) -> tuple[bool, str]:
        ax = dev.axis
        if self._streaming(dev):
            return False, "STATUSBUSY"
        if not args:
            return False, "BADDATA"
        kind = args[0]
        x, _ = self._state(ax, self.clock.now())
        if kind in ("abs", "rel") and len(args) == 2:
            target = int(args[1]) + (round(x) if kind == "rel" else 0)
            if not ax.limit_min <= target <= ax.limit_max:
                return False, "BADDATA"
            self._start_move(dev, float(target))
            return True, "0"
        if kind in ("min", "max") and len(args) == 1:
            self._start_move(dev, float(ax.limit_min if kind == "min" else ax.limit_max))
            return True, "0"
        if kind == "vel" and len(args) == 2:
            speed = int(args[1])
            if abs(speed) > ax.maxspeed:
                return False, "BADDATA"
            if speed == 0:
                self._stop_axis(dev)
                return True, "0"
            self._start_move(dev, float(ax.limit_max if speed > 0 else ax.limit_min), abs(speed))
            return True, "0"
        return False, "BADDATA"

    def _stream(self, dev: _Device, args: list[str]) -> tuple[bool, str]:
        if len(args) < 2 or not args[0].isdigit():
            return False, "BADDATA"
        number, verb, rest = int(args[0]), args[1], args[2:]
        stream = dev.streams.get(number)
        ax = dev.axis
        if verb == "setup":
            if rest == ["disable"]:
                if stream is not None and self._streaming(dev):
                    return False, "STATUSBUSY"
                dev.streams.pop(number, None)
                return True, "0"
            if len(rest) >= 2 and rest[0] == "live":
                axes = [int(a) for a in rest[1:]]
                if any(a != 1 for a in axes) or len(axes) != 1:
                    return False, "BADAXIS"
                if self._streaming(dev):
                    return False, "STATUSBUSY"
                dev.streams[number] = _Stream(number, axes, cap=ax.maxspeed, tanaccel=ax.accel)
                return True, "0"
            return False, "BADDATA"
        if stream is None:
            return False, "BADDATA"
        if verb == "fifo" and rest in (["cork"], ["uncork"]):
            stream.corked = rest[0] == "cork"
            self._run_stream(dev, stream)
            return True, "0"
        if verb == "set" and len(rest) == 2 and rest[0] in ("maxspeed", "tanaccel"):
            value = int(rest[1])
            if value <= 0 or (rest[0] == "maxspeed" and value > ax.maxspeed):
                return False, "BADDATA"
            if rest[0] == "maxspeed":
                stream.cap = value
            else:
                stream.tanaccel = value
            return True, "0"
        if verb in ("line", "wait"):
            if len(stream.queued) >= self.stream_buffer:
                return False, "FULL"
            if verb == "wait":
                if len(rest) != 1 or int(rest[0]) < 0:
                    return False, "BADDATA"
                stream.queued.append(("wait", int(rest[0]) / 1000.0))
            else:
                if len(rest) != 2 or rest[0] not in ("abs", "rel"):
                    return False, "BADDATA"
                base = 0.0
                if rest[0] == "rel":
                    lines = [a for a in stream.queued if a[0] == "line"]
                    base = lines[-1][1] if lines else self._state(ax, self.clock.now())[0]
                target = base + int(rest[1])
                if not ax.limit_min <= target <= ax.limit_max:
                    return False, "BADDATA"
                stream.queued.append(("line", float(target), stream.cap))
            self._run_stream(dev, stream)
            return True, "0"
        return False, "BADCOMMAND"


def main(argv: list[str] | None = None) -> int:
    """``python -m dwellwise.simulators.zaber_emulator``: serve an emulator until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--homed", action="store_true", help="start with a reference position")
    parser.add_argument("--link", default=None, help="also make this symlink to the pty")
    parser.add_argument(
        "--wire-baud", type=float, default=115200.0, help="baud rate whose wire time is spent (0: none)"
    )
    args = parser.parse_args(argv)
    emu = ZaberEmulator(
        args.devices,
        clock=ScaledClock(args.speedup),
        homed=args.homed,
        link_path=args.link,
        wire_baud=args.wire_baud or None,
    )
    with emu:
        print(emu.port, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
