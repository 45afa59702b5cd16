"""The pass time model: predicted row times match the simulated stage, and re-planning fits."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from dwellwise.drivers.sim import sim_beamline
from dwellwise.planners import raster_scan
from dwellwise.planners.schedule import Geometry, PassSchedule
from dwellwise.simulators.kinematics import Kinematics

KIN = Kinematics()
GEOM = Geometry(shape=(12, 20), pixel_size=0.5, origin=(2.0, 3.0))


def schedule(dwell, start=(0.0, 0.0)) -> PassSchedule:
    return PassSchedule(1, GEOM, dwell, KIN, start_xy=start, min_dwell=KIN.min_dwell(0.5))


def test_rows_alternate_direction_and_start_at_the_nearest_end():
    s = schedule(np.full(GEOM.shape, 0.01), start=(0.0, 0.0))
    assert list(s.order) == list(range(12))
    assert list(s.reverse) == [False, True] * 6
    far = schedule(np.full(GEOM.shape, 0.01), start=(100.0, 100.0))
    assert far.order[0] == 11 and far.reverse[0]


def test_prediction_is_the_sum_of_its_rows_and_includes_turnarounds():
    rng = np.random.default_rng(0)
    s = schedule(rng.uniform(0.005, 0.05, GEOM.shape))
    rows = s.predicted_s()
    assert rows.shape == (12,) and np.all(rows > 0)
    np.testing.assert_allclose(s.predicted_s(5), rows[5:])  # mid-pass view agrees
    # pixel time is a lower bound: a row takes at least its dwell plus run-up and run-out
    assert np.all(rows > s.dwell[s.order].sum(axis=1))
    # a row takes at least its dwell plus the y step (alone, or hidden in the U-turn)
    assert np.all(rows[1:] >= s.dwell[s.order[1:]].sum(axis=1) + KIN.move_time(0.5))


@pytest.mark.parametrize("factor", [1.2, 2.0, 5.0])
def test_fit_remaining_uses_but_never_exceeds_the_available_time(factor):
    rng = np.random.default_rng(1)
    s = schedule(rng.gamma(2.0, 0.01, GEOM.shape) + 0.005)
    floor = schedule(np.full(GEOM.shape, KIN.min_dwell(0.5))).predicted_s().sum()
    available = factor * floor
    predicted = s.fit_remaining(0, available, overhead_per_row_s=0.01)
    assert predicted is not None
    assert predicted + 12 * 0.01 <= available
    assert predicted + 12 * 0.01 >= (1 - 5e-3) * available
    assert s.dwell.min() >= KIN.min_dwell(0.5)


def test_fit_remaining_refuses_when_even_the_minimum_does_not_fit():
    s = schedule(np.full(GEOM.shape, 0.02))
    before = s.dwell.copy()
    assert s.fit_remaining(3, 0.1, overhead_per_row_s=0.0) is None
    np.testing.assert_array_equal(s.dwell, before)


def test_prediction_matches_the_simulated_stage_within_its_software_overhead(tmp_path):
    """At speedup 1 a fly pass takes the predicted time plus a few ms of software per row."""
    bl = sim_beamline("astronaut", shape=(6, 10), pixel_size=0.5, speedup=1.0)
    bl.sdd.file_path = str(tmp_path / "scan.h5")
    docs = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(raster_scan(bl.stage, bl.sdd, shape=(6, 10), pixel_size=0.5, dwell=0.01))
    predicted = docs[0][1]["planned_times"]["pass1_s"]
    realized = next(
        d["data"]["passes_realized_s"] for n, d in docs if n == "event" and "passes_realized_s" in d["data"]
    )
    assert predicted <= realized <= predicted + 6 * 0.1
