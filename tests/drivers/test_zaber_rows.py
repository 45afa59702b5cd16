"""Fly rows as Zaber stream segments: bounded segment counts, never less dwell, and the
emulator's independent stream planner reproducing the time model."""

from __future__ import annotations

import numpy as np
import pytest
from dwellwise.drivers.fly import FlyRow
from dwellwise.drivers.zaber_protocol import Units
from dwellwise.drivers.zaber_rows import (
    measured_pixel_times,
    merge_groups,
    plan_row,
    planned_time_at,
)
from dwellwise.simulators.kinematics import Kinematics, row_profiles
from dwellwise.simulators.zaber_emulator import crossing_time, plan_path

KIN = Kinematics(v_max=100.0, a_max=1000.0)
PITCH = 0.5


def row_of(dwell, reverse=False, origin=3.0) -> FlyRow:
    dwell = np.asarray(dwell, float)
    return FlyRow(1, 0, 1.0, origin + PITCH * np.arange(dwell.size), dwell, reverse=reverse)


@pytest.mark.parametrize("width", [16, 64, 256])
@pytest.mark.parametrize("reverse", [False, True])
def test_uniform_rows_are_one_segment_whatever_their_width(width, reverse):
    row = row_of(np.full(width, 0.008), reverse)
    plan = plan_row(row, KIN, max_segments=8)
    assert len(plan.segments) == 1
    prof = row_profiles(row.dwell, PITCH, KIN, reverse=reverse)
    assert plan.duration_s == pytest.approx(prof.duration_s[0])
    assert plan.added_s == pytest.approx(0.0, abs=1e-12)
    sign = -1 if reverse else 1
    assert plan.segments[0].end_mm == pytest.approx(plan.end_mm)
    assert sign * (plan.end_mm - plan.start_mm) > width * PITCH
    np.testing.assert_allclose(plan.pixel_time_s, prof.pixel_time[0])


def test_adaptive_rows_are_capped_at_max_segments_and_never_lose_dwell():
    rng = np.random.default_rng(0)
    for width in (16, 64, 256):
        dwell = rng.uniform(0.005, 0.05, width)
        for cap in (4, 16, 1000):
            plan = plan_row(row_of(dwell, reverse=bool(width % 3)), KIN, max_segments=cap)
            assert len(plan.segments) == min(cap, width)
            assert np.all(plan.effective_dwell >= dwell)
            assert np.all(plan.pixel_time_s >= dwell * (1 - 1e-12))
            assert plan.added_s >= 0
            if cap >= width:
                assert plan.added_s == pytest.approx(0.0, abs=1e-9)
    few = plan_row(row_of(dwell), KIN, max_segments=4).added_s
    many = plan_row(row_of(dwell), KIN, max_segments=32).added_s
    assert many < few  # more segments, less time lost to merging


def test_merging_joins_the_cheapest_neighbours_first():
    groups = [[0, 10, 50.0], [10, 11, 49.0], [11, 20, 10.0]]
    assert merge_groups(groups, 2, PITCH) == [[0, 11, 49.0], [11, 20, 10.0]]
    assert merge_groups(groups, 1, PITCH) == [[0, 20, 10.0]]


def test_speeds_are_rounded_down_to_device_units():
    u = Units(0.49609375e-3)
    quantize = lambda v: u.speed_mm_s(u.speed_data(v))  # noqa: E731
    dwell = np.random.default_rng(1).uniform(0.006, 0.02, 40)
    plan = plan_row(row_of(dwell), KIN, max_segments=64, quantize=quantize)
    for seg in plan.segments:
        assert u.speed_mm_s(u.speed_data(seg.speed_mm_s)) == pytest.approx(seg.speed_mm_s)
    assert np.all(plan.pixel_time_s >= dwell)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_emulators_stream_planner_reproduces_the_time_model(reverse):
    """Two independent implementations: the driver's prediction (row_profiles on the segments'
    effective dwell) and the emulator's look-ahead stream planner executing the segments."""
    dwell = np.random.default_rng(2).uniform(0.005, 0.04, 48)
    plan = plan_row(row_of(dwell, reverse), KIN, max_segments=12)
    actions = [("line", seg.end_mm, seg.speed_mm_s) for seg in plan.segments]
    phases, ends, end_x = plan_path(0.0, plan.start_mm, 0.0, actions, KIN.a_max)
    assert end_x == pytest.approx(plan.end_mm)
    assert ends[-1] == pytest.approx(plan.duration_s, rel=1e-9)
    crossings = [crossing_time(phases, e) for e in plan.edges_mm]
    np.testing.assert_allclose(crossings, plan.edge_s, rtol=1e-9, atol=1e-12)
    peak = max(abs(p.v0 + p.a * p.dt) for p in phases)
    assert peak <= KIN.v_max * (1 + 1e-12)
    assert max(abs(p.a) for p in phases) <= KIN.a_max


def test_emulator_planner_waits_and_reversals_stop_the_axis():
    phases, ends, end_x = plan_path(0.0, 0.0, 0.0, [("line", 10.0, 100.0), ("wait", 0.5), ("line", 0.0, 100.0)], 1000.0)
    move = KIN.move_time(10.0)
    assert ends == pytest.approx([move, move + 0.5, 2 * move + 0.5])
    assert end_x == 0.0
    phases, ends, _ = plan_path(0.0, 0.0, 0.0, [("line", 5.0, 100.0), ("line", 0.0, 100.0)], 1000.0)
    assert ends[-1] == pytest.approx(2 * KIN.move_time(5.0))  # rest at the reversal


def test_measured_pixel_times_follow_the_plan_within_noise_and_the_stage_beyond_it():
    dwell = np.full(20, 0.01)
    plan = plan_row(row_of(dwell), KIN, max_segments=4)
    start = 100.0
    noisy = [(0.0, start + 0.0005), (plan.duration_s, start + plan.duration_s - 0.0004)]
    real, edges, dev = measured_pixel_times(plan, noisy, start, tolerance_s=0.001)
    np.testing.assert_allclose(real, plan.pixel_time_s)
    assert dev == pytest.approx(0.0005)
    # the stage ran 20 % slow in the second half (a sample at the middle shows it on time)
    mid = plan.edge_s[10]
    slow = [(0.0, start), (mid, start + mid), (plan.duration_s, start + mid + 1.2 * (plan.duration_s - mid))]
    real, edges, dev = measured_pixel_times(plan, slow, start, tolerance_s=0.001)
    np.testing.assert_allclose(real[:10], plan.pixel_time_s[:10])
    np.testing.assert_allclose(real[10:], 1.2 * plan.pixel_time_s[10:], rtol=1e-9)
    assert planned_time_at(plan, plan.edges_mm[10]) == pytest.approx(mid)
