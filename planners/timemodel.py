"""Pass-level time model: how long a dwell map really takes, and the largest map that fits.

A pass is a serpentine fly scan of ``H`` rows (see :mod:`dwellwise.simulators.kinematics` for the
row model). Its realized time is::

    total_s = approach_s + Σ_h row_s[h] + (H − 1) · step_s

with ``row_s`` each row's run-up + pixel times + run-out, ``step_s`` the y move of one pitch plus
settling, and ``approach_s`` the move from the start position to the first row's run-up start.
Times in s, lengths in mm, speeds in mm/s.

Not modelled: the x offset between one row's run-out end and the next row's run-up start
(``|run_out_mm[h] − run_up_mm[h+1]|``, up to ``v_max² / (2·a_max)``); a stage that moves x and y
together between rows needs ``max(move_time(dx), move_time(pitch))`` there instead of
``step_s`` when that offset exceeds one pitch.

:func:`scale_to_fit` picks the largest mean dwell level whose *realized* time (not the nominal
``Σ dwell``) fits a time budget; it is fast enough to run between rows of a live scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dwellwise.planners.waterfill import fit_mean
from dwellwise.simulators.kinematics import Kinematics, row_profiles, row_step_time

__all__ = [
    "DoesNotFit",
    "PassTiming",
    "min_pass_time",
    "pass_timing",
    "scale_to_fit",
    "serpentine_reverse",
]

_MAX_ITER = 100
"""Safety bound on the root-finding iterations of :func:`scale_to_fit` (it needs ~5–15)."""


class DoesNotFit(ValueError):
    """The pass does not fit the available time even with every pixel at ``min_dwell``.

    ``needed_s`` is the realized time (s) at ``min_dwell`` (the least the pass can take), and
    ``available_s`` the time (s) that was offered.
    """

    def __init__(self, needed_s: float, available_s: float) -> None:
        self.needed_s = float(needed_s)
        self.available_s = float(available_s)
        super().__init__(
            f"the pass needs at least {self.needed_s:.6g} s (every pixel at min_dwell) but only"
            f" {self.available_s:.6g} s are available; shorten the region, lower min_dwell or"
            " raise the budget"
        )

    def __reduce__(self):
        return (type(self), (self.needed_s, self.available_s))


@dataclass(frozen=True, eq=False)
class PassTiming:
    """Realized time of one pass (seconds); rows are indexed in scan order, 0 first."""

    row_s: np.ndarray  # (H,) each row incl. its run-up and run-out, s
    step_s: float  # one row step (y move of a pitch + settle), s
    approach_s: float  # start position -> first row's run-up start, s
    total_s: float  # approach_s + Σ row_s + (H − 1)·step_s

    def remaining_s(self, next_row: int) -> float:
        """Time (s) from the start of row ``next_row`` (its run-up, scan order) to the pass end.

        ``next_row`` is 0..H; ``remaining_s(H)`` is 0 and ``remaining_s(0)`` is
        ``total_s − approach_s``.
        """
        h = int(self.row_s.size)
        if isinstance(next_row, bool) or int(next_row) != next_row or not 0 <= next_row <= h:
            raise ValueError(f"next_row must be an integer in 0..{h}, got {next_row!r}")
        next_row = int(next_row)
        if next_row == h:
            return 0.0
        return float(np.sum(self.row_s[next_row:])) + (h - 1 - next_row) * self.step_s


def serpentine_reverse(h: int, first_reverse: bool = False) -> np.ndarray:
    """``(h,)`` bools, True for rows travelled from the last column to the first.

    Rows alternate direction; row 0 is reversed iff ``first_reverse``.
    """
    if isinstance(h, bool) or int(h) != h or h < 0:
        raise ValueError(f"number of rows must be an integer ≥ 0, got {h!r}")
    return (np.arange(int(h)) % 2 == 1) ^ bool(first_reverse)


def pass_timing(
    dwell: np.ndarray,
    pitch: float,
    kin: Kinematics,
    *,
    reverse: np.ndarray | bool | None = None,
    approach_mm: float = 0.0,
) -> PassTiming:
    """Realized time of a serpentine pass over a dwell map.

    ``dwell`` is ``(H, W)`` (or ``(W,)``, one row) planned seconds per pixel, finite and > 0;
    ``pitch`` in mm; ``reverse`` as in :func:`~dwellwise.simulators.kinematics.row_profiles`,
    default :func:`serpentine_reverse` (row 0 forward); ``approach_mm`` the distance (mm, along
    the axis with the longer move) from the start position to the first row's run-up start.
    """
    d = np.asarray(dwell, dtype=np.float64)
    h = d.shape[0] if d.ndim == 2 else 1
    if reverse is None:
        reverse = serpentine_reverse(h)
    if not np.isfinite(approach_mm):
        raise ValueError(f"approach_mm must be finite, got {approach_mm!r}")
    prof = row_profiles(d, pitch, kin, reverse=reverse)
    step_s = row_step_time(pitch, kin)
    approach_s = float(kin.move_time(approach_mm))
    row_s = prof.duration_s
    total_s = approach_s + float(np.sum(row_s)) + (row_s.size - 1) * step_s
    return PassTiming(row_s=row_s, step_s=step_s, approach_s=approach_s, total_s=total_s)


def min_pass_time(
    shape: tuple[int, int] | int,
    pitch: float,
    kin: Kinematics,
    min_dwell: float,
    *,
    approach_mm: float = 0.0,
    overhead_per_row_s: float = 0.0,
) -> float:
    """Least time (s) a pass over ``shape = (H, W)`` pixels can take with dwells ≥ ``min_dwell``.

    Every pixel at ``min_dwell`` (s, > 0; values below ``pitch / v_max`` cost the same as
    ``pitch / v_max``), plus ``H · overhead_per_row_s``. This is the ``needed_s`` that
    :func:`scale_to_fit` reports in :class:`DoesNotFit`.
    """
    shape = (1, int(shape)) if np.ndim(shape) == 0 else tuple(int(n) for n in shape)
    if len(shape) == 1:
        shape = (1, shape[0])
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) with H, W ≥ 1, got {shape!r}")
    _check_min_dwell(min_dwell)
    timing = pass_timing(np.full(shape, float(min_dwell)), pitch, kin, approach_mm=approach_mm)
    return timing.total_s + shape[0] * float(overhead_per_row_s)


def _check_min_dwell(min_dwell: float) -> None:
    if not np.isfinite(min_dwell) or min_dwell <= 0:
        raise ValueError(
            f"min_dwell must be finite and > 0 s, got {min_dwell!r}; pitch / v_max is the"
            " natural floor (shorter dwells take the same time)"
        )


def scale_to_fit(
    base: np.ndarray,
    available_s: float,
    pitch: float,
    kin: Kinematics,
    *,
    min_dwell: float,
    max_dwell: float = np.inf,
    overhead_per_row_s: float = 0.0,
    reverse: np.ndarray | bool | None = None,
    approach_mm: float = 0.0,
    tol: float = 1e-3,
) -> tuple[np.ndarray, float]:
    """Largest dwell map shaped like ``base`` whose realized pass time fits ``available_s``.

    ``base`` is an ``(H, W)`` (or ``(W,)``) map ≥ 0 giving the relative dwells; for a mean level
    ``m`` the map is ``fit_mean(base, m, min_dwell, max_dwell)`` (seconds). Returns ``(d, t)``:
    the map with the largest ``m`` found such that
    ``t = pass_timing(d).total_s + H · overhead_per_row_s ≤ available_s``, and that ``t`` (s).
    The level is found by a bracketed root search (Illinois regula falsi, falling back to
    bisection) on the *realized* time; it stops when ``available_s − t ≤ tol · available_s``
    (``tol`` is relative) or when ``max_dwell`` caps the level first, in which case ``t`` may be
    well below ``available_s``.

    Raises :class:`DoesNotFit` when the map at ``min_dwell`` everywhere does not fit. For rows
    narrower than about ``2·v_max² / a_max`` (20 mm at the defaults) a row's time is not monotone
    in its dwell (short dwells mean fast, long run-ups and run-outs): the map returned still fits,
    but a larger level than the one found, or than ``min_dwell`` when refusing, may fit too.
    """
    b = np.asarray(base, dtype=np.float64)
    if b.ndim not in (1, 2) or b.size == 0:
        raise ValueError(f"base must be a non-empty (W,) or (H, W) map, got shape {b.shape}")
    _check_min_dwell(min_dwell)
    if np.isnan(max_dwell) or max_dwell < min_dwell:
        raise ValueError(f"max_dwell = {max_dwell!r} s must be ≥ min_dwell = {min_dwell!r} s")
    if not np.isfinite(available_s):
        raise ValueError(f"available_s must be finite, got {available_s!r}")
    if not np.isfinite(overhead_per_row_s) or overhead_per_row_s < 0:
        raise ValueError(f"overhead_per_row_s must be finite and ≥ 0 s, got {overhead_per_row_s!r}")
    if not 0 < tol < 1:
        raise ValueError(f"tol is relative to available_s and must be in (0, 1), got {tol!r}")
    h = b.shape[0] if b.ndim == 2 else 1
    if reverse is None:
        reverse = serpentine_reverse(h)
    overhead = h * float(overhead_per_row_s)

    def realized(m: float) -> tuple[np.ndarray, float]:
        d = fit_mean(b, m, min_dwell, max_dwell)
        t = pass_timing(d, pitch, kin, reverse=reverse, approach_mm=approach_mm).total_s
        return d, t + overhead

    lo, (d_lo, t_lo) = float(min_dwell), realized(float(min_dwell))
    if t_lo > available_s:
        raise DoesNotFit(t_lo, available_s)
    # Σ pixel_time ≥ Σ dwell = n·m, so any m ≥ available_s / n is too long (or max_dwell caps).
    hi = min(float(max_dwell), max(lo, available_s / b.size))
    if hi <= lo:
        return d_lo, t_lo
    d_hi, t_hi = realized(hi)
    if t_hi <= available_s:
        return d_hi, t_hi

    # Aim the secant at the middle of the acceptance window [available − slack, available].
    slack = tol * abs(available_s)
    target = available_s - 0.5 * slack
    f_lo, f_hi = t_lo - target, t_hi - target  # f_lo < 0 < f_hi unless lo is already accepted
    side = 0
    for _ in range(_MAX_ITER):
        if available_s - t_lo <= slack or hi - lo <= 4 * np.finfo(float).eps * hi:
            break
        m = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        if not lo < m < hi:
            m = 0.5 * (lo + hi)
        d_m, t_m = realized(m)
        if t_m <= available_s:
            lo, d_lo, t_lo, f_lo = m, d_m, t_m, t_m - target
            if side == -1:
                f_hi *= 0.5  # Illinois: the same end moved twice, pull the secant toward hi
            side = -1
        else:
            hi, f_hi = m, t_m - target
            if side == 1:
                f_lo *= 0.5
            side = 1
    return d_lo, t_lo
