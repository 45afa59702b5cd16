"""The hard time budget of a scan and what the governor learns while it runs.

:class:`TimeBudget` reads the instrument clock: everything counts, motion, counting, compute and
the plan's own overhead. :class:`OverheadTracker` learns, row by row, how much longer a row really
takes than the time model predicts (messages, file writes, a slow controller), so that the
governor's predictions of what is still ahead stay honest and it can keep a safety margin.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from dwellwise.simulators.clock import Clock


class ScanClock:
    """Scan time: the instrument clock minus the time the RunEngine spent paused (an operator's
    pause is not the scan's time; ``paused_s`` comes from the stage, which the RunEngine tells)."""

    def __init__(self, clock: Clock, stage) -> None:
        self._clock = clock
        self._stage = stage
        self.speedup = getattr(clock, "speedup", 1.0)
        self._excluded = 0.0

    def paused_s(self) -> float:
        """Instrument seconds the RunEngine has kept the stage paused."""
        return float(getattr(self._stage, "paused_s", 0.0))

    def exclude(self, seconds: float) -> None:
        """Take ``seconds`` out of scan time (the RunEngine's own work around a pause)."""
        self._excluded += max(0.0, float(seconds))

    def now(self) -> float:
        return self._clock.now() - self.paused_s() - self._excluded


class TimeBudget:
    """A budget of ``total_s`` instrument seconds that starts at :meth:`start`."""

    def __init__(self, total_s: float, clock: Clock) -> None:
        if not np.isfinite(total_s) or total_s <= 0:
            raise ValueError(f"budget must be a finite number of seconds > 0, got {total_s}")
        self.total_s = float(total_s)
        self.clock = clock
        self._start: float | None = None

    def start(self, at: float | None = None) -> None:
        """Start counting (``at``: instrument time it started, default now); idempotent."""
        if self._start is None:
            self._start = self.clock.now() if at is None else float(at)

    @property
    def started(self) -> bool:
        return self._start is not None

    def used_s(self) -> float:
        """Instrument seconds spent since the start."""
        return 0.0 if self._start is None else self.clock.now() - self._start

    def left_s(self) -> float:
        """Instrument seconds left (negative once overrun)."""
        return self.total_s - self.used_s()


@dataclass
class OverheadTracker:
    """Learns the per-row time beyond the model (realized − predicted), seconds.

    ``prior_s`` is used until rows have been measured. Both estimates are robust: a stage stall
    or one slow row is an event, not the software's cost per row, and must not make the governor
    give up later passes (the row deadline, not this margin, is what keeps the budget hard).
    :meth:`mean_s` is the median; :meth:`margin_s` the median + 4 robust standard deviations
    (1.4826 · MAD), at least 1.5 × the median.
    """

    prior_s: float
    window: int = 32

    def __post_init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=self.window)

    def add(self, predicted_s: float, realized_s: float) -> None:
        self._recent.append(max(0.0, realized_s - predicted_s))

    @property
    def count(self) -> int:
        return len(self._recent)

    def mean_s(self) -> float:
        if not self._recent:
            return self.prior_s
        return float(np.median(self._recent))

    def margin_s(self) -> float:
        if not self._recent:
            return 2.0 * self.prior_s
        values = np.asarray(self._recent)
        median = float(np.median(values))
        spread = 1.4826 * float(np.median(np.abs(values - median)))
        return max(median + 4.0 * spread, 1.5 * median)
