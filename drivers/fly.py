"""What a fly-scanned row is, and what the stage reports when it has been scanned.

A plan hands the stage a :class:`FlyRow` (``bps.abs_set(stage, row)``); the stage moves through the
row under its velocity profile and reports the time the beam spent in every pixel as
:class:`RowGates` to the detectors listening to it (the position-synchronised gates of a mapping
detector). Both are plain frozen data, shared by simulated and real devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FlyRow:
    """One row of one pass, in the order the plan asks for it."""

    pass_number: int
    """Pass number, 1-based."""
    row: int
    """Row index in the region, 0-based (``y = origin_y + row · pitch``)."""
    y: float
    """Row position, mm."""
    x: np.ndarray = field(repr=False)
    """``(W,)`` pixel centre positions by column, mm (increasing)."""
    dwell: np.ndarray = field(repr=False)
    """``(W,)`` planned dwell per pixel by column, seconds (time the beam spends in the pixel)."""
    reverse: bool = False
    """Travel from the last column to the first (serpentine)."""
    deadline: float | None = None
    """Instant (s) by which the row must be over, on the stage's clock less the time the
    RunEngine kept it paused (``stage.clock.now() - stage.paused_s``): a row that would end
    later is abandoned at that instant, unrecorded (the hard end of a time budget)."""

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float64)
        dwell = np.asarray(self.dwell, dtype=np.float64)
        if x.ndim != 1 or x.size == 0 or dwell.shape != x.shape:
            raise ValueError(f"a fly row needs (W,) x and dwell, got {x.shape} and {dwell.shape}")
        if not np.all(np.isfinite(dwell)) or dwell.min() <= 0:
            raise ValueError(f"row {self.row}: dwell must be finite and > 0 s")
        if x.size > 1 and not np.all(np.diff(x) > 0):
            raise ValueError(f"row {self.row}: x positions must increase by column")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "dwell", dwell)

    @property
    def width(self) -> int:
        return int(self.x.size)

    @property
    def pitch(self) -> float:
        """Pixel pitch along the row, mm."""
        return float(self.x[1] - self.x[0]) if self.width > 1 else 0.0

    @property
    def key(self) -> tuple[int, int]:
        return (self.pass_number, self.row)


@dataclass(frozen=True)
class RowGates:
    """The trajectory of a scanned row, as the detector sees it: per pixel, how long the beam was
    there and where."""

    pass_number: int
    """Pass number, 1-based."""
    row: int
    """Row index, 0-based."""
    x: np.ndarray = field(repr=False)
    """``(W,)`` pixel centre positions by column, mm."""
    y: float
    """Row position, mm."""
    real_time: np.ndarray = field(repr=False)
    """``(W,)`` seconds the beam spent in each pixel, by column."""
    planned_dwell: np.ndarray = field(repr=False)
    """``(W,)`` planned dwell per pixel by column, seconds."""
    started: float
    """Instrument time when the row's run-up began, seconds."""
    finished: float
    """Instrument time when the row's run-out ended, seconds."""
    reverse: bool = False
    """The beam crossed the row from its last column to its first (a serpentine row): a
    detector that measures pixel after pixel goes in this order."""
