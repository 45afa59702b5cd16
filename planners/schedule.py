"""The rows of a pass in travel order, their predicted times, and re-planning to fit a budget.

A pass flies its rows serpentine: each row starts at the end nearest to where the stage is.
Between rows the stage moves x from the previous row's run-out end to this row's run-up start
while y steps one pitch and settles; the y step may overlap the run-out and the run-up (a U-turn,
:func:`~dwellwise.simulators.moves.transition_time`). Then it flies the row (:func:`~dwellwise.simulators.kinematics.row_profiles`). This is the
same motion the simulated stage performs, so predicted and realized times differ only by what
the software adds, which the governor learns (:class:`~dwellwise.planners.budget.OverheadTracker`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dwellwise.drivers.fly import FlyRow
from dwellwise.planners.waterfill import fit_mean
from dwellwise.simulators.kinematics import Kinematics, row_profiles
from dwellwise.simulators.moves import transition_time


@dataclass(frozen=True)
class Geometry:
    """A scan region on the stage."""

    shape: tuple[int, int]
    """``(H, W)`` pixels."""
    pixel_size: float
    """Pitch, mm."""
    origin: tuple[float, float] = (0.0, 0.0)
    """Centre of pixel (0, 0), ``(x, y)`` mm."""

    @property
    def xs(self) -> np.ndarray:
        """``(W,)`` pixel centres, mm."""
        return self.origin[0] + self.pixel_size * np.arange(self.shape[1])

    @property
    def ys(self) -> np.ndarray:
        """``(H,)`` row positions, mm."""
        return self.origin[1] + self.pixel_size * np.arange(self.shape[0])


@dataclass(frozen=True)
class RowEnds:
    """Where rows start and end, and how long they fly (arrays over rows)."""

    start_x: np.ndarray
    """Run-up start, mm."""
    end_x: np.ndarray
    """Run-out end, mm."""
    flight_s: np.ndarray
    """Run-up + pixels + run-out, seconds."""
    run_up_s: np.ndarray
    """Run-up time, seconds."""
    run_out_s: np.ndarray
    """Run-out time, seconds."""


def row_ends(geom: Geometry, reverse: np.ndarray, dwell: np.ndarray, kin: Kinematics) -> RowEnds:
    """Ends and flight times of rows with dwell ``(n, W)`` flown in the given directions."""
    prof = row_profiles(dwell, geom.pixel_size, kin, reverse=reverse)
    half = geom.pixel_size / 2
    left, right = geom.xs[0] - half, geom.xs[-1] + half
    return RowEnds(
        start_x=np.where(reverse, right + prof.run_up_mm, left - prof.run_up_mm),
        end_x=np.where(reverse, left - prof.run_out_mm, right + prof.run_out_mm),
        flight_s=prof.duration_s,
        run_up_s=prof.run_up_s,
        run_out_s=prof.run_out_s,
    )


class PassSchedule:
    """One pass: rows in travel order, their dwell maps and predicted times (seconds)."""

    def __init__(
        self,
        pass_number: int,
        geom: Geometry,
        dwell: np.ndarray,
        kin: Kinematics,
        *,
        start_xy: tuple[float, float],
        min_dwell: float,
        skip_rows: np.ndarray | None = None,
    ) -> None:
        h, w = geom.shape
        self.pass_number = pass_number
        self.geom = geom
        self.kin = kin
        self.min_dwell = float(min_dwell)
        self.dwell = np.maximum(np.asarray(dwell, dtype=np.float64), self.min_dwell)
        """``(H, W)`` planned dwell per pixel, seconds (updated when rows are re-planned)."""
        self.base = self.dwell.copy()
        """The dwell map as first planned (re-planning rescales it, keeping its shape)."""
        y_start = float(start_xy[1])
        bottom_first = abs(y_start - geom.ys[0]) <= abs(y_start - geom.ys[-1])
        order = np.arange(h) if bottom_first else np.arange(h)[::-1]
        if skip_rows is not None:  # rows already recorded (resuming a pass)
            order = order[~np.asarray(skip_rows, dtype=bool)[order]]
        self.order = order
        """Row indices in travel order."""
        centre = (geom.xs[0] + geom.xs[-1]) / 2
        first_reverse = float(start_xy[0]) > centre
        self.reverse = (np.arange(order.size) % 2 == 1) ^ first_reverse
        """Direction of each row in travel order (True: from the last column to the first)."""
        self.start_xy = (float(start_xy[0]), float(start_xy[1]))

    @property
    def rows(self) -> int:
        return int(self.order.size)

    def fly_row(self, j: int, deadline: float | None = None) -> FlyRow:
        """The ``j``-th row in travel order, as the stage takes it (``deadline``: stage-clock
        instant by which it must be over)."""
        r = int(self.order[j])
        return FlyRow(
            pass_number=self.pass_number,
            row=r,
            y=float(self.geom.ys[r]),
            x=self.geom.xs,
            dwell=self.dwell[r],
            reverse=bool(self.reverse[j]),
            deadline=deadline,
        )

    def predicted_s(self, j0: int = 0, dwell: np.ndarray | None = None) -> np.ndarray:
        """Predicted time (s) of rows ``j0..`` in travel order, each including its approach from
        the previous row's end (from ``start_xy`` or the previous row for ``j0 > 0``)."""
        order = self.order[j0:]
        if order.size == 0:
            return np.zeros(0)
        d = self.dwell[order] if dwell is None else dwell
        ends = row_ends(self.geom, self.reverse[j0:], d, self.kin)
        ys = self.geom.ys[order]
        if j0 == 0:
            (prev_x, prev_y), prev_out = self.start_xy, 0.0
        else:
            p = self.order[j0 - 1 : j0]
            prev = row_ends(self.geom, self.reverse[j0 - 1 : j0], self.dwell[p], self.kin)
            prev_x, prev_y = float(prev.end_x[0]), float(self.geom.ys[p[0]])
            prev_out = float(prev.run_out_s[0])
        from_x = np.concatenate([[prev_x], ends.end_x[:-1]])
        from_y = np.concatenate([[prev_y], ys[:-1]])
        overlap = np.concatenate([[prev_out], ends.run_out_s[:-1]]) + ends.run_up_s
        return transition_time(ends.start_x - from_x, ys - from_y, self.kin, overlap) + ends.flight_s

    def end_xy(self) -> tuple[float, float]:
        """Where the stage rests after the last row, mm."""
        j = self.rows - 1
        p = self.order[j : j + 1]
        ends = row_ends(self.geom, self.reverse[j:], self.dwell[p], self.kin)
        return float(ends.end_x[0]), float(self.geom.ys[p[0]])

    def fit_remaining(
        self, j0: int, available_s: float, overhead_per_row_s: float, tol: float = 2e-3
    ) -> float | None:
        """Rescale the dwell of rows ``j0..`` (their planned shape kept) to the largest level
        whose predicted time plus overhead fits ``available_s``; returns the predicted time, or
        ``None`` if even the minimum dwell does not fit (nothing is changed then)."""
        order = self.order[j0:]
        n = order.size
        if n == 0:
            return 0.0
        base = self.base[order]

        def total(level: float) -> tuple[float, np.ndarray]:
            d = np.maximum(fit_mean(base, level, self.min_dwell), self.min_dwell)
            return float(self.predicted_s(j0, d).sum()) + n * overhead_per_row_s, d

        floor_total, floor_d = total(self.min_dwell)
        if floor_total > available_s:
            return None
        lo, hi = self.min_dwell, max(float(base.mean()), self.min_dwell)
        hi_total, hi_d = total(hi)
        while hi_total <= available_s:  # the level may also rise (ahead of schedule)
            lo, hi = hi, hi * 2
            hi_total, hi_d = total(hi)
        best_total, best_d = floor_total, floor_d
        if lo > self.min_dwell:
            best_total, best_d = total(lo)
        for _ in range(60):
            if hi - lo <= tol * lo:
                break
            mid = 0.5 * (lo + hi)
            t, d = total(mid)
            if t <= available_s:
                lo, best_total, best_d = mid, t, d
            else:
                hi = mid
        self.dwell[order] = best_d
        return best_total - n * overhead_per_row_s
