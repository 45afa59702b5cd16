"""The simulated X/Y raster stage: two positioners for step scans and fly-scanned rows.

``stage.x`` and ``stage.y`` are Ophyd positioners with soft limits whose moves take the
point-to-point time of :class:`~dwellwise.simulators.kinematics.Kinematics`, so Bluesky's own step
plans (``grid_scan``) run on them. ``stage.set(FlyRow(...))`` flies one row: it moves to the row's
run-up point, then travels through the row under the velocity profile of
:func:`~dwellwise.simulators.kinematics.row_profiles`, and reports to every listening detector how
long the beam really spent in each pixel (:class:`~dwellwise.drivers.fly.RowGates`). Time passes
on the beamline's clock, so a speedup makes everything (software included) proportionally cheaper.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from dwellwise.drivers.fly import FlyRow, RowGates
from dwellwise.simulators.clock import Clock, ScaledClock
from dwellwise.simulators.kinematics import Kinematics, row_profiles
from dwellwise.simulators.moves import transition_time
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.positioner import SoftPositioner
from ophyd.status import Status
from ophyd.utils import LimitError

DEFAULT_LIMITS_MM = (-10.0, 310.0)
"""Default soft limits of each axis, mm (a 300 mm travel with room for run-ups)."""


class RowInterrupted(RuntimeError):
    """A fly row was stopped before its end; its pixels were not recorded."""


class RowCut(RowInterrupted):
    """A fly row reached its deadline before its end; its pixels were not recorded."""


class RowListener(Protocol):
    """A detector gated by the stage: told when a row starts, ends, or is abandoned."""

    def row_started(self, gates: RowGates) -> None: ...
    def row_finished(self, gates: RowGates) -> None: ...
    def row_aborted(self, gates: RowGates) -> None: ...


@dataclass
class StageFaults:
    """Faults to inject into a simulated stage (for budget tests and benchmarks)."""

    stall_s: dict[int, float] = field(default_factory=dict)
    """Extra seconds of standstill before the n-th fly row (0-based count of rows flown)."""
    slow_factor: dict[int, float] = field(default_factory=dict)
    """The n-th fly row runs this many times slower than planned (beam stays longer per pixel)."""


class SimAxis(SoftPositioner):
    """One simulated axis: soft limits, and moves that take their kinematic time."""

    def __init__(self, *, clock: Clock, kinematics: Kinematics, **kwargs) -> None:
        self._clock = clock
        self.kinematics = kinematics
        self._stop_event = threading.Event()
        super().__init__(**kwargs)

    def _setup_move(self, position: float, status) -> None:
        self._run_subs(sub_type=self.SUB_START)
        self._started_moving = True
        self._moving = True
        self._stop_event.clear()
        if self.position is None:  # initial position: placed, not moved
            self._set_position(float(position))
            self._moving = False
            self._done_moving()
            return
        duration = self.kinematics.move_time(abs(float(position) - float(self.position)))

        def run() -> None:
            finished = self._clock.sleep(duration, self._stop_event)
            self._moving = False
            if finished:
                self._set_position(float(position))
            self._done_moving(success=finished)

        threading.Thread(target=run, name=f"{self.name}-move", daemon=True).start()

    def stop(self, *, success: bool = False) -> None:
        self._stop_event.set()

    def place(self, position: float) -> None:
        """Set the readback without a move (the fly-row thread already spent the time)."""
        self._set_position(float(position))


class SimStage(Device):
    """Simulated raster stage with ``x`` and ``y`` positioners and fly-scanned rows."""

    velocity = Cpt(Signal, value=100.0, kind="config")
    """Maximum speed of each axis, mm/s (read-only view of the kinematics)."""
    acceleration = Cpt(Signal, value=1000.0, kind="config")
    """Maximum acceleration of each axis, mm/s²."""

    def __init__(
        self,
        name: str = "stage",
        *,
        kinematics: Kinematics | None = None,
        clock: Clock | None = None,
        limits: tuple[tuple[float, float], tuple[float, float]] = (
            DEFAULT_LIMITS_MM,
            DEFAULT_LIMITS_MM,
        ),
        faults: StageFaults | None = None,
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.kinematics = kinematics or Kinematics()
        self.clock = clock or ScaledClock(1.0)
        self.faults = faults or StageFaults()
        self.velocity.put(self.kinematics.v_max)
        self.acceleration.put(self.kinematics.a_max)
        common = {"clock": self.clock, "kinematics": self.kinematics, "egu": "mm"}
        self.x = SimAxis(name=f"{name}_x", limits=limits[0], init_pos=0.0, parent=self, **common)
        self.y = SimAxis(name=f"{name}_y", limits=limits[1], init_pos=0.0, parent=self, **common)
        self._listeners: list[RowListener] = []
        self._stop = threading.Event()  # the stop event of the flight in progress
        self._flights: set[threading.Event] = set()  # stop events of flights not yet ended
        self._flown: set[tuple[int, int]] = set()
        self._rows_flown = 0
        self._busy = threading.Lock()
        self._stop_success = False
        self._last_run_out_s = 0.0
        self._paused_since: float | None = None
        self._paused_total = 0.0

    # -- Bluesky protocols -------------------------------------------------------------
    def read(self) -> dict:
        return {**self.x.read(), **self.y.read()}

    def describe(self) -> dict:
        return {**self.x.describe(), **self.y.describe()}

    def set(self, row: FlyRow) -> Status:
        """Fly one row; the status finishes when the stage has come to rest after it."""
        if not isinstance(row, FlyRow):
            raise TypeError(f"{self.name}.set() takes a FlyRow, got {type(row).__name__}")
        self.check_row(row)
        status = Status(obj=self)
        if row.key in self._flown:  # replayed after a pause: never measure a row twice
            status.set_finished()
            return status
        stop = threading.Event()  # each flight has its own, so a late flight never misses a stop
        self._flights.add(stop)
        threading.Thread(
            target=self._fly, args=(row, status, stop), name=f"{self.name}-row", daemon=True
        ).start()
        return status

    def stop(self, *, success: bool = False) -> None:
        """Stop any motion. An interrupted row is not recorded; with ``success=True`` (a pause)
        its status still finishes cleanly, so the RunEngine can replay the row on resume."""
        self._stop_success = success
        for flight in list(self._flights):
            flight.set()
        self.x.stop()
        self.y.stop()

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

    # -- fly rows ----------------------------------------------------------------------
    @property
    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (self.x.limits, self.y.limits)

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
        self._last_run_out_s = 0.0
        if keys is None:
            self._flown.clear()
        else:
            self._flown.difference_update(keys)

    def check_row(self, row: FlyRow) -> None:
        """Raise ``LimitError`` if the row, with its run-up and run-out, leaves the limits."""
        prof = row_profiles(row.dwell, self._pitch(row), self.kinematics)
        lo = row.x[0] - row.pitch / 2 - (prof.run_out_mm[0] if row.reverse else prof.run_up_mm[0])
        hi = row.x[-1] + row.pitch / 2 + (prof.run_up_mm[0] if row.reverse else prof.run_out_mm[0])
        (xl, xh), (yl, yh) = self.limits
        if lo < xl or hi > xh or not yl <= row.y <= yh:
            raise LimitError(
                f"row {row.row} needs x in [{lo:.3f}, {hi:.3f}] mm and y = {row.y:.3f} mm, "
                f"outside the stage limits x [{xl}, {xh}] mm, y [{yl}, {yh}] mm"
            )

    def _pitch(self, row: FlyRow) -> float:
        return row.pitch if row.width > 1 else 1e-3

    def _fly(self, row: FlyRow, status: Status, stop: threading.Event) -> None:
        with self._busy:
            self._stop = stop
            try:
                if row.key in self._flown:  # an earlier flight of the same row got there first
                    status.set_finished()
                    return
                self._fly_row(row, status)
            except RowCut:
                if not status.done:
                    status.set_finished()  # the deadline did its job: not an error
            except RowInterrupted as exc:
                if not status.done:
                    if self._stop_success:
                        status.set_finished()
                    else:
                        status.set_exception(exc)
            except Exception as exc:  # surface any failure through the status
                if not status.done:
                    status.set_exception(exc)
            finally:
                self._flights.discard(stop)

    def _fly_row(self, row: FlyRow, status: Status) -> None:
        kin, clock = self.kinematics, self.clock
        pitch = self._pitch(row)
        prof = row_profiles(row.dwell, pitch, kin, reverse=row.reverse)
        n = self._rows_flown
        self._rows_flown += 1
        slow = float(self.faults.slow_factor.get(n, 1.0))
        pixel_time = prof.pixel_time[0] * slow
        half = pitch / 2
        if row.reverse:
            x_start = row.x[-1] + half + prof.run_up_mm[0]
            x_end = row.x[0] - half - prof.run_out_mm[0]
        else:
            x_start = row.x[0] - half - prof.run_up_mm[0]
            x_end = row.x[-1] + half + prof.run_out_mm[0]
        started = clock.now()
        approach = transition_time(
            x_start - float(self.x.position),
            row.y - float(self.y.position),
            kin,
            overlap_s=self._last_run_out_s + float(prof.run_up_s[0]),
        )
        self._last_run_out_s = 0.0
        approach += float(self.faults.stall_s.get(n, 0.0))
        deadline = np.inf if row.deadline is None else float(row.deadline) + self.paused_s
        if started + approach > deadline:
            clock.sleep_until(deadline, self._stop)
            raise RowCut(f"row {row.row} of pass {row.pass_number} cut by its deadline")
        if not clock.sleep(approach, self._stop):
            raise RowInterrupted(f"row {row.row} of pass {row.pass_number} stopped on approach")
        self.x.place(x_start)
        self.y.place(row.y)
        t0 = clock.now()
        duration = prof.run_up_s[0] + pixel_time.sum() + prof.run_out_s[0]
        gates = RowGates(
            pass_number=row.pass_number,
            row=row.row,
            x=row.x,
            y=row.y,
            real_time=pixel_time,
            planned_dwell=row.dwell,
            started=started,
            finished=t0 + duration,
            reverse=row.reverse,
        )
        for listener in self._listeners:
            listener.row_started(gates)
        end = min(t0 + duration, deadline)
        if not clock.sleep_until(end, self._stop) or end < t0 + duration:
            for listener in self._listeners:
                listener.row_aborted(gates)
            self.x.place(x_start + (x_end - x_start) * min(1.0, (clock.now() - t0) / duration))
            if end < t0 + duration and not self._stop.is_set():
                raise RowCut(f"row {row.row} of pass {row.pass_number} cut by its deadline")
            raise RowInterrupted(f"row {row.row} of pass {row.pass_number} stopped; not recorded")
        self.x.place(x_end)
        self._last_run_out_s = float(prof.run_out_s[0])
        for listener in self._listeners:
            listener.row_finished(gates)
        self._flown.add(row.key)
        status.set_finished()
