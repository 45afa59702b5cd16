"""Stage kinematics of a serpentine fly scan (pure numpy).

Units: positions and lengths in mm, times in s, speeds in mm/s, accelerations in mm/s².

Model
-----
A row of ``W`` pixels of length ``L = pitch`` is flown along x without stopping. Each axis has a
speed limit ``v_max`` and an acceleration limit ``a_max`` (the stage may accelerate and brake at
up to ``a_max``).

* **Speed cap.** Pixel ``j`` with planned dwell ``d_j`` has the cap ``c_j = min(v_max, L / d_j)``.
  The stage never exceeds ``c_j`` anywhere inside pixel ``j``, so the time spent in the pixel is at
  least ``L / c_j ≥ d_j``: the planned dwell is a lower bound on the realized one, never cut short.
  ``pitch / v_max`` (:meth:`Kinematics.min_dwell`) is the shortest dwell a fly scan can realize.
* **Boundary speeds.** The ``W + 1`` pixel boundaries are numbered in travel order. Boundary ``k``
  (between pixels ``k − 1`` and ``k``) may not be crossed faster than the cap of either neighbour:
  the stage slows down *before* a slow pixel, never inside it. The entry boundary is capped by the
  first pixel and the exit boundary by the last. Consecutive boundary speeds must be reachable
  within one pixel: ``u_{k+1}² ≤ u_k² + 2·a_max·L`` and ``u_k² ≤ u_{k+1}² + 2·a_max·L``. The
  largest speeds meeting all of this are the classic forward/backward pass; in squared speeds
  ``s_k = u_k²`` with caps ``C_k`` and ``D = 2·a_max·L`` it has the closed form
  ``s_k = min_j (C_j + |k − j|·D)``, which is computed for all rows at once with two cumulative
  minima (``kD + cummin(C_j − jD)`` and its mirror), no Python loop over pixels or rows.
* **Inside a pixel** with entry speed ``u``, exit speed ``v`` and cap ``c``, the stage accelerates
  at ``a_max`` to the peak ``p = min(c, sqrt((2·a·L + u² + v²) / 2))``, cruises at ``p`` and brakes
  to ``v``. Its time is ``(p − u)/a + (p − v)/a + (L − (p² − u²)/(2a) − (p² − v²)/(2a)) / p``,
  evaluated in the equivalent, cancellation-free form
  ``L/p + ((p − u)² + (p − v)²) / (2·a·p)``, which is visibly ``≥ L/p ≥ L/c ≥ dwell``.
* **Run-up and run-out.** The row is entered at the entry boundary speed ``u_0`` after a run-up
  from rest outside the region (time ``u_0 / a``, distance ``u_0² / (2a)``) and left at the exit
  speed ``u_W`` followed by a run-out to rest (time ``u_W / a``, distance ``u_W² / (2a)``). A row's
  duration is run-up + the pixel times + run-out.
* **Row step.** Between rows the stage, at rest, moves one pitch in y (:func:`row_step_time`) and
  waits ``settle_s``. The x offset between one row's run-out end and the next row's run-up start
  (different when their exit/entry speeds differ) is not part of this model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Kinematics", "RowProfiles", "row_profiles", "row_step_time"]


def _check_pitch(pitch: float) -> float:
    pitch = float(pitch)
    if not np.isfinite(pitch) or pitch <= 0:
        raise ValueError(f"pitch must be a finite length > 0 mm, got {pitch!r}")
    return pitch


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if x.ndim == 0 else x


@dataclass(frozen=True)
class Kinematics:
    """Per-axis limits of the scanning stage.

    ``v_max`` in mm/s, ``a_max`` in mm/s² (used for acceleration and braking alike), ``settle_s``
    seconds of extra settling after each row step.
    """

    v_max: float = 100.0
    a_max: float = 1000.0
    settle_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("v_max", "a_max"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if not np.isfinite(self.settle_s) or self.settle_s < 0:
            raise ValueError(f"settle_s must be finite and ≥ 0 s, got {self.settle_s!r}")

    def min_dwell(self, pitch: float) -> float:
        """Shortest dwell (s) a fly-scanned pixel of ``pitch`` mm can have: ``pitch / v_max``."""
        return _check_pitch(pitch) / self.v_max

    def move_time(self, distance: float | np.ndarray) -> float | np.ndarray:
        """Time (s) of a point-to-point move of ``distance`` mm from rest to rest.

        Trapezoidal profile (accelerate at ``a_max``, cruise at ``v_max``, brake at ``a_max``), or a
        triangle when the move is too short to reach ``v_max``; 0 for distance 0. The sign of the
        distance is ignored. Accepts scalars (returns a float) or arrays (elementwise).
        """
        d = np.abs(np.asarray(distance, dtype=np.float64))
        if not np.all(np.isfinite(d)):
            raise ValueError("move distance must be finite (mm)")
        v, a = self.v_max, self.a_max
        full = d >= v * v / a  # long enough to reach v_max and stop again
        t = np.where(full, d / v + v / a, 2.0 * np.sqrt(d / a))
        return _scalar_or_array(t)

    def move_distance_to_speed(self, v: float | np.ndarray) -> float | np.ndarray:
        """Distance (mm) needed to reach speed ``v`` mm/s from rest (or to stop): ``v² / (2·a_max)``."""
        v = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError("speed must be finite and ≥ 0 mm/s")
        if np.any(v > self.v_max):
            raise ValueError(f"speed {float(np.max(v))} mm/s exceeds v_max = {self.v_max} mm/s")
        return _scalar_or_array(v * v / (2.0 * self.a_max))


@dataclass(frozen=True, eq=False)
class RowProfiles:
    """Velocity profiles of ``H`` fly-scanned rows of ``W`` pixels (see the module docstring).

    ``boundary_velocity`` is in travel order (entry boundary first); ``pixel_time`` and
    ``peak_velocity`` are indexed by column whatever the direction of travel.
    """

    boundary_velocity: np.ndarray  # (H, W+1) mm/s, travel order
    pixel_time: np.ndarray  # (H, W) s, by column
    run_up_s: np.ndarray  # (H,) s
    run_out_s: np.ndarray  # (H,) s
    run_up_mm: np.ndarray  # (H,) mm
    run_out_mm: np.ndarray  # (H,) mm
    duration_s: np.ndarray  # (H,) s: run_up_s + Σ pixel_time + run_out_s
    peak_velocity: np.ndarray  # (H, W) mm/s, by column


def _as_dwell_map(dwell: np.ndarray) -> np.ndarray:
    d = np.asarray(dwell, dtype=np.float64)
    if d.ndim == 1:
        d = d[np.newaxis, :]
    if d.ndim != 2:
        raise ValueError(f"dwell must be (W,) or (H, W) seconds, got an array of shape {d.shape}")
    if d.size == 0:
        raise ValueError(f"dwell map is empty (shape {d.shape}); a row needs at least one pixel")
    bad = ~np.isfinite(d) | (d <= 0)
    if np.any(bad):
        h, w = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"dwell must be finite and > 0 s everywhere; pixel (row {h}, col {w}) has {d[h, w]!r}"
            f" ({int(np.count_nonzero(bad))} bad pixels). Use at least pitch / v_max for pixels"
            " that should be flown over at full speed"
        )
    return d


def _as_reverse(reverse: np.ndarray | bool, h: int) -> np.ndarray:
    r = np.asarray(reverse)
    if r.ndim == 0:
        return np.full(h, bool(r))
    if r.shape != (h,):
        raise ValueError(f"reverse must be a bool or one bool per row, shape ({h},), got {r.shape}")
    return r.astype(bool)


def _boundary_speeds(cap: np.ndarray, reach_sq: float) -> np.ndarray:
    """Largest boundary speeds (mm/s), shape (H, W+1), for pixel caps ``cap`` (H, W) in travel order.

    ``reach_sq = 2·a·L`` (mm²/s²) is the largest change of squared speed across one pixel.
    """
    h, w = cap.shape
    bcap = np.empty((h, w + 1))
    bcap[:, 0] = cap[:, 0]
    bcap[:, w] = cap[:, -1]
    np.minimum(cap[:, :-1], cap[:, 1:], out=bcap[:, 1:w])
    c_sq = bcap * bcap
    # s_k = min(C_k, min_{j≠k} C_j + |k − j|·D): the running minima exclude k itself so that a
    # boundary limited by its own cap gets exactly that cap, with no rounding from adding kD.
    ramp = reach_sq * np.arange(w + 1, dtype=np.float64)
    inf = np.full((h, 1), np.inf)
    fwd = np.minimum.accumulate(c_sq - ramp, axis=1)  # min_{j≤k} C_j − jD
    fwd = ramp + np.concatenate((inf, fwd[:, :-1]), axis=1)  # min_{j<k} C_j + (k − j)·D
    rramp = ramp[::-1]
    bwd = np.minimum.accumulate((c_sq - rramp)[:, ::-1], axis=1)  # reversed: min_{j≥k} C_j − (W−j)D
    bwd = rramp + np.concatenate((inf, bwd[:, :-1]), axis=1)[:, ::-1]  # min_{j>k} C_j + (j − k)·D
    s = np.minimum(c_sq, np.minimum(fwd, bwd))
    return np.where(s >= c_sq, bcap, np.sqrt(s))


def row_profiles(
    dwell: np.ndarray, pitch: float, kin: Kinematics, *, reverse: np.ndarray | bool = False
) -> RowProfiles:
    """Time-optimal fly-scan velocity profiles for rows of planned dwells.

    ``dwell`` is ``(H, W)`` or ``(W,)`` (one row) seconds per pixel, finite and > 0; ``pitch`` the
    pixel length in mm; ``reverse`` a bool or ``(H,)`` bools, True where a row is travelled from
    its last column to its first (serpentine). Returns :class:`RowProfiles` with ``H`` rows; the
    model is described in the module docstring. Every pixel takes at least its planned dwell, no
    speed exceeds ``v_max`` and no acceleration exceeds ``a_max``.
    """
    pitch = _check_pitch(pitch)
    d = _as_dwell_map(dwell)
    h, w = d.shape
    rev = _as_reverse(reverse, h)
    a = kin.a_max

    travel = np.where(rev[:, np.newaxis], d[:, ::-1], d)
    cap = np.minimum(kin.v_max, pitch / travel)
    u = _boundary_speeds(cap, 2.0 * a * pitch)
    u_in, u_out = u[:, :-1], u[:, 1:]
    tri_sq = (2.0 * a * pitch + u_in * u_in + u_out * u_out) / 2.0
    peak = np.maximum(np.minimum(cap, np.sqrt(tri_sq)), np.maximum(u_in, u_out))
    t = pitch / peak + ((peak - u_in) ** 2 + (peak - u_out) ** 2) / (2.0 * a * peak)

    pixel_time = np.where(rev[:, np.newaxis], t[:, ::-1], t)
    peak_by_col = np.where(rev[:, np.newaxis], peak[:, ::-1], peak)
    entry, exit_ = u[:, 0], u[:, -1]
    run_up_s, run_out_s = entry / a, exit_ / a
    return RowProfiles(
        boundary_velocity=u,
        pixel_time=pixel_time,
        run_up_s=run_up_s,
        run_out_s=run_out_s,
        run_up_mm=entry * entry / (2.0 * a),
        run_out_mm=exit_ * exit_ / (2.0 * a),
        duration_s=run_up_s + pixel_time.sum(axis=1) + run_out_s,
        peak_velocity=peak_by_col,
    )


def row_step_time(pitch: float, kin: Kinematics) -> float:
    """Time (s) of one row step: a y move of ``pitch`` mm from rest to rest plus ``settle_s``."""
    return float(kin.move_time(_check_pitch(pitch))) + kin.settle_s
