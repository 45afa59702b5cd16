"""The rows of a pass in travel order, their predicted times, and re-planning to fit a budget.

A pass flies its rows serpentine: each row starts at the end nearest to where the stage is.
Before a row the stage moves from the previous row's run-out end to this row's run-up start
(x and y together: the longer of the two point-to-point moves, plus the settle time after a y
step), then flies the row (:func:`~dwellwise.simulators.kinematics.row_profiles`). This is the
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


def row_endpoints(
    geom: Geometry, rows: np.ndarray, reverse: np.ndarray, dwell: np.ndarray, kin: Kinematics
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-up start x, run-out end x (mm) and flight time (s) of rows ``(n,)`` with their dwell
    ``(n, W)`` and directions."""
    prof = row_profiles(dwell, _pitch(geom), kin, reverse=reverse)
    half = geom.pixel_size / 2
    left, right = geom.xs[0] - half, geom.xs[-1] + half
    start = np.where(reverse, right + prof.run_up_mm, left - prof.run_up_mm)
    end = np.where(reverse, left - prof.run_out_mm, right + prof.run_out_mm)
    return start, end, prof.duration_s


def _pitch(geom: Geometry) -> float:
    return geom.pixel_size


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
        self.order = np.arange(h) if bottom_first else np.arange(h)[::-1]
        """Row indices in travel order."""
        centre = (geom.xs[0] + geom.xs[-1]) / 2
        first_reverse = float(start_xy[0]) > centre
        self.reverse = (np.arange(h) % 2 == 1) ^ first_reverse
        """Direction of each row in travel order (True: from the last column to the first)."""
        self.start_xy = (float(start_xy[0]), float(start_xy[1]))

    @property
    def rows(self) -> int:
        return int(self.order.size)

    def fly_row(self, j: int) -> FlyRow:
        """The ``j``-th row in travel order, as the stage takes it."""
        r = int(self.order[j])
        return FlyRow(
            pass_number=self.pass_number,
            row=r,
            y=float(self.geom.ys[r]),
            x=self.geom.xs,
            dwell=self.dwell[r],
            reverse=bool(self.reverse[j]),
        )

    def predicted_s(self, j0: int = 0, dwell: np.ndarray | None = None) -> np.ndarray:
        """Predicted time (s) of rows ``j0..`` in travel order, each including its approach from
        the previous row's end (from ``start_xy`` or the previous row for ``j0 > 0``)."""
        order = self.order[j0:]
        if order.size == 0:
            return np.zeros(0)
        d = self.dwell[order] if dwell is None else dwell
        reverse = self.reverse[j0:]
        start, end, flight = row_endpoints(self.geom, order, reverse, d, self.kin)
        ys = self.geom.ys[order]
        if j0 == 0:
            prev_x, prev_y = self.start_xy
        else:
            p = self.order[j0 - 1 : j0]
            _, prev_end, _ = row_endpoints(
                self.geom, p, self.reverse[j0 - 1 : j0], self.dwell[p], self.kin
            )
            prev_x, prev_y = float(prev_end[0]), float(self.geom.ys[p[0]])
        from_x = np.concatenate([[prev_x], end[:-1]])
        from_y = np.concatenate([[prev_y], ys[:-1]])
        return transition_time(start - from_x, ys - from_y, self.kin) + flight

    def end_xy(self) -> tuple[float, float]:
        """Where the stage rests after the last row, mm."""
        j = self.rows - 1
        p = self.order[j : j + 1]
        _, end, _ = row_endpoints(self.geom, p, self.reverse[j:], self.dwell[p], self.kin)
        return float(end[0]), float(self.geom.ys[p[0]])

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
