"""A fly row as Zaber streamed motion: pixel groups as ``line`` segments, and the real pixel times.

A row's time model (:func:`~dwellwise.simulators.kinematics.row_profiles`) caps the speed inside
pixel ``j`` at ``c_j = min(v_max, pitch / dwell_j)`` and lets the stage accelerate and brake at
``a_max`` between caps. A Zaber live stream does the same with ``line`` segments, each under the
``stream N set maxspeed`` in force when it was queued, planned with look-ahead under the stream's
acceleration. So a row is sent as one segment per group of neighbouring pixels sharing a speed
cap; the run-up (from rest, exactly long enough to reach the entry speed) joins the first group
and the run-out the last. Speeds are rounded down to the device's speed unit, so no pixel gets
less than its planned dwell.

The number of segments is bounded by ``max_segments``: a uniform row is one segment whatever its
width; a row with more distinct caps than that merges neighbouring groups (greedily, cheapest
added time first), flying the faster of two merged groups at the slower cap, and it keeps
merging while a merge costs less time than sending the segment would (``segment_cost_s``).
Merging lengthens the row (never shortens a pixel); :attr:`RowPlan.added_s` is what it costs.

:func:`measured_pixel_times` maps the planned crossing times of the pixel edges onto what the
host saw (the row's start, position samples read during the row, its end), so each pixel's real
time reflects the actual motion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from dwellwise.drivers.fly import FlyRow
from dwellwise.simulators.kinematics import Kinematics, RowProfiles, row_profiles

SINGLE_PIXEL_PITCH_MM = 1e-3
"""Pitch used for a one-pixel row (as the simulated stage does)."""


@dataclass(frozen=True)
class Segment:
    """One ``line abs`` of the stream, in travel order."""

    end_mm: float
    """Where the segment ends, stage mm."""
    speed_mm_s: float
    """Speed cap of the segment, mm/s (a speed the device can represent)."""
    first: int
    """First pixel (travel order) it covers."""
    stop: int
    """One past its last pixel (travel order)."""


@dataclass(frozen=True, eq=False)
class RowPlan:
    """How a fly row is streamed and when the beam is planned to cross each pixel edge."""

    row: FlyRow
    """The row asked for."""
    pitch_mm: float
    """Pixel length, mm."""
    start_mm: float
    """Run-up start (the stage rests here before the row), stage mm."""
    end_mm: float
    """Run-out end (the stage rests here after the row), stage mm."""
    segments: tuple[Segment, ...]
    """Stream segments in travel order; the first starts at :attr:`start_mm`."""
    effective_dwell: np.ndarray = field(repr=False)
    """``(W,)`` by column: the dwell the segments realize as caps (≥ the planned dwell), s."""
    profile: RowProfiles = field(repr=False)
    """Time model of the row under :attr:`effective_dwell`."""
    edges_mm: np.ndarray = field(repr=False)
    """``(W+1,)`` pixel edges in travel order, stage mm."""
    edge_s: np.ndarray = field(repr=False)
    """``(W+1,)`` planned time of crossing each edge, from the run-up start, s."""
    duration_s: float
    """Run-up + pixels + run-out, s."""
    added_s: float
    """How much longer the row is than its planned dwell's time model (merged segments and
    rounded speeds), s."""

    @property
    def travel_sign(self) -> float:
        return -1.0 if self.row.reverse else 1.0

    @property
    def pixel_time_s(self) -> np.ndarray:
        """``(W,)`` planned seconds in each pixel, by column."""
        return self.profile.pixel_time[0]


def _groups(caps: np.ndarray) -> list[list]:
    """Runs of equal caps: ``[first, stop, cap]`` in travel order."""
    out: list[list] = []
    for j, c in enumerate(caps):
        if out and out[-1][2] == c:
            out[-1][1] = j + 1
        else:
            out.append([j, j + 1, float(c)])
    return out


def merge_groups(
    groups: list[list], max_groups: int, pitch: float, segment_cost_s: float = 0.0
) -> list[list]:
    """Merge neighbouring ``[first, stop, cap]`` groups, each time the pair whose merge adds the
    least time (the faster group slows to the slower cap: ``n_fast · pitch · (1/c_slow −
    1/c_fast)``), until at most ``max_groups`` are left and no merge adds less time than a
    segment costs to send (``segment_cost_s``)."""
    groups = [list(g) for g in groups]
    while len(groups) > 1:
        n = np.array([g[1] - g[0] for g in groups], dtype=float)
        c = np.array([g[2] for g in groups])
        slow = np.minimum(c[:-1], c[1:])
        cost = pitch * (n[:-1] * (1 / slow - 1 / c[:-1]) + n[1:] * (1 / slow - 1 / c[1:]))
        k = int(np.argmin(cost))
        if len(groups) <= max(1, max_groups) and cost[k] >= segment_cost_s:
            break
        groups[k : k + 2] = [[groups[k][0], groups[k + 1][1], float(slow[k])]]
    return groups


def plan_row(
    row: FlyRow,
    kin: Kinematics,
    *,
    max_segments: int,
    quantize: Callable[[float], float] = float,
    segment_cost_s: float = 0.0,
) -> RowPlan:
    """Stream segments and planned edge times of ``row`` (see the module docstring).

    ``quantize`` maps a speed cap (mm/s) to the largest speed ≤ it that the device can set.
    ``segment_cost_s``: what sending one more segment costs (its commands on the serial line);
    neighbouring groups are also merged while that costs less time than the segment."""
    if max_segments < 1:
        raise ValueError(f"max_segments must be ≥ 1, got {max_segments}")
    pitch = row.pitch if row.width > 1 else SINGLE_PIXEL_PITCH_MM
    travel = row.dwell[::-1] if row.reverse else row.dwell
    caps = np.array([quantize(c) for c in np.minimum(kin.v_max, pitch / travel)])
    if np.any(caps <= 0):
        raise ValueError(f"row {row.row}: a pixel's speed rounds to 0 mm/s (dwell too long)")
    groups = merge_groups(_groups(caps), max_segments, pitch, segment_cost_s)
    eff_travel = np.empty(row.width)
    for first, stop, cap in groups:
        eff_travel[first:stop] = pitch / cap
    eff = eff_travel[::-1] if row.reverse else eff_travel
    eff = np.maximum(eff, row.dwell)  # float rounding only: a cap never exceeds pitch / dwell
    prof = row_profiles(eff, pitch, kin, reverse=row.reverse)
    sign = -1.0 if row.reverse else 1.0
    first_edge = (row.x[-1] + pitch / 2) if row.reverse else (row.x[0] - pitch / 2)
    edges = first_edge + sign * pitch * np.arange(row.width + 1)
    start = float(edges[0] - sign * prof.run_up_mm[0])
    end = float(edges[-1] + sign * prof.run_out_mm[0])
    pixel_travel = prof.pixel_time[0][::-1] if row.reverse else prof.pixel_time[0]
    edge_s = float(prof.run_up_s[0]) + np.concatenate([[0.0], np.cumsum(pixel_travel)])
    segments = []
    for k, (first, stop, cap) in enumerate(groups):
        seg_end = end if k == len(groups) - 1 else float(edges[stop])
        segments.append(Segment(end_mm=seg_end, speed_mm_s=cap, first=first, stop=stop))
    base = row_profiles(row.dwell, pitch, kin, reverse=row.reverse)
    return RowPlan(
        row=row,
        pitch_mm=pitch,
        start_mm=start,
        end_mm=end,
        segments=tuple(segments),
        effective_dwell=eff,
        profile=prof,
        edges_mm=edges,
        edge_s=edge_s,
        duration_s=float(prof.duration_s[0]),
        added_s=max(0.0, float(prof.duration_s[0] - base.duration_s[0])),  # ≥ 0 but for rounding
    )


def planned_time_at(plan: RowPlan, position_mm: float) -> float:
    """Planned time (from the run-up start) at which the stage passes ``position_mm``; exact on
    pixel edges, linear between them."""
    sign = plan.travel_sign
    s = sign * (position_mm - plan.start_mm)
    knots_s = np.concatenate([[0.0], sign * (plan.edges_mm - plan.start_mm), [sign * (plan.end_mm - plan.start_mm)]])
    knots_t = np.concatenate([[0.0], plan.edge_s, [plan.duration_s]])
    return float(np.interp(s, knots_s, knots_t))


def measured_pixel_times(
    plan: RowPlan,
    anchors: Sequence[tuple[float, float]],
    row_start: float,
    tolerance_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel real times and edge instants from what the host measured.

    ``anchors``: ``(planned seconds from the run-up start, instrument time observed)`` pairs
    (the motion's release and end, plus any position samples); ``row_start`` is the instrument
    time the run-up was planned to begin. When every anchor lies within ``tolerance_s`` (the
    host's timing noise: serial latency and its jitter) of the plan, the motion went as planned
    and the planned pixel times stand. Otherwise the planned edge times are mapped
    piecewise-linearly through the anchors (a stage running late stretches the pixels between
    the anchors around it); no pixel is shorter than planned, since the plan is the fastest the
    stage can go. Returns ``(real_time (W,) by column, edge instants (W+1,) travel order,
    largest deviation of an anchor from the plan in seconds)``.
    """
    pts = sorted((float(tau), float(t)) for tau, t in anchors)
    deviation = max((abs(t - (row_start + tau)) for tau, t in pts), default=0.0)
    if len(pts) < 2 or deviation <= tolerance_s:
        edge_t = row_start + plan.edge_s
    else:
        taus = np.array([p[0] for p in pts])
        ts = np.maximum.accumulate(np.array([p[1] for p in pts]))
        keep = np.concatenate([[True], np.diff(taus) > 1e-12])
        taus, ts = taus[keep], ts[keep]
        edge_t = np.interp(plan.edge_s, taus, ts)
        lo, hi = plan.edge_s < taus[0], plan.edge_s > taus[-1]  # outside: the planned rate
        edge_t[lo] = ts[0] + (plan.edge_s[lo] - taus[0])
        edge_t[hi] = ts[-1] + (plan.edge_s[hi] - taus[-1])
    # the stage never beats the plan (it is the fastest motion under the caps): a measurement
    # that says otherwise is timing noise
    planned = np.diff(plan.edge_s)
    travel = np.maximum(np.diff(edge_t), planned)
    real = travel[::-1] if plan.row.reverse else travel
    return real, edge_t, float(deviation)
