"""Instrument clocks: real time, or simulated time that runs ``speedup`` times faster.

A simulated beamline must spend instrument time the way a real one does, software included: the
simulated clock is the wall clock scaled by ``speedup``, so every second the software spends
(planning, training, writing files) costs ``speedup`` seconds of instrument time, exactly as it
would cost one second on the instrument at ``speedup = 1``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the stage, the detector and the budget governor read time from (seconds)."""

    speedup: float

    def now(self) -> float:
        """Instrument time, seconds since an arbitrary origin."""
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Let ``seconds`` of instrument time pass; ``False`` if ``stop`` was set first."""
        ...


class ScaledClock:
    """Instrument time = wall-clock time × ``speedup`` (``speedup=1``: real time)."""

    def __init__(self, speedup: float = 1.0) -> None:
        if not speedup > 0 or speedup == float("inf"):
            raise ValueError(f"speedup must be a finite number > 0, got {speedup}")
        self.speedup = float(speedup)
        self._origin = time.perf_counter()

    def now(self) -> float:
        return (time.perf_counter() - self._origin) * self.speedup

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        return self.sleep_until(self.now() + seconds, stop)

    def sleep_until(self, instant: float, stop: threading.Event | None = None) -> bool:
        """Wait until instrument time ``instant``; ``False`` if ``stop`` was set first."""
        while True:
            left = (instant - self.now()) / self.speedup
            if left <= 0:
                return True
            if stop is not None:
                if stop.wait(left):
                    return False
            else:
                time.sleep(left)

    def __repr__(self) -> str:
        return f"ScaledClock(speedup={self.speedup:g})"
