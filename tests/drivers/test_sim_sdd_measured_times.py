"""The simulated SDD records the pixel times a stage measured, not the ones it planned."""

from __future__ import annotations

import numpy as np
from dwellwise.drivers.fly import RowGates
from dwellwise.drivers.sim import sim_beamline


def _gates(real_time: np.ndarray) -> RowGates:
    x = np.arange(real_time.size) * 0.5
    return RowGates(
        pass_number=1,
        row=0,
        x=x,
        y=0.0,
        real_time=real_time,
        planned_dwell=np.full(real_time.size, 0.01),
        started=0.0,
        finished=1.0,
    )


def test_a_row_finished_with_measured_times_is_drawn_for_them():
    bl = sim_beamline("astronaut", shape=(4, 8), pixel_size=0.5, seed=1)
    planned = np.full(8, 0.01)
    measured = planned * np.linspace(1.0, 1.6, 8)  # a real controller ran late
    handle = bl.sdd._begin_row(_gates(planned))
    acq = bl.sdd._end_row(_gates(measured), handle)
    assert np.allclose(acq.real_time, measured)
    assert np.all(acq.live_time <= measured) and np.all(acq.live_time > 0.9 * measured)


def test_a_row_finished_as_planned_keeps_its_early_draw():
    bl = sim_beamline("astronaut", shape=(4, 8), pixel_size=0.5, seed=1)
    planned = np.full(8, 0.01)
    handle = bl.sdd._begin_row(_gates(planned))
    assert bl.sdd._end_row(_gates(planned.copy()), handle) is handle[1]
