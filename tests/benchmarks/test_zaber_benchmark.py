"""The Zaber serial benchmark's measurements on a small configuration."""

import numpy as np
import pytest
from dwellwise.benchmarks.zaber_serial import EmulatorProcess, fly_rows, round_trips
from dwellwise.drivers.zaber import ZaberStage
from dwellwise.simulators.clock import ScaledClock

pytestmark = pytest.mark.timeout(120)


def test_round_trips_and_row_command_counts_against_an_emulator_process():
    emu = EmulatorProcess(20.0)
    try:
        stage = ZaberStage("stage", emu.port, clock=ScaledClock(20.0))
        try:
            rt = round_trips(stage, 40, batch=8)
            assert 0 < rt["single_median_ms"] <= rt["single_p99_ms"]
            assert 0 < rt["batch_median_ms"] <= rt["batch_p99_ms"]
            rows = fly_rows(stage, widths=(8, 32), repeats=1)
        finally:
            stage.close()
    finally:
        emu.close()
    assert emu.proc.returncode is not None
    by = {(r["width"], r["kind"]): r for r in rows}
    assert by[(8, "uniform")]["segments"] == by[(32, "uniform")]["segments"] == 1
    assert by[(32, "uniform")]["commands"] <= 13
    assert 1 < by[(32, "adaptive")]["segments"] <= stage.max_segments
    for r in rows:
        assert np.isfinite(r["measured_s"]) and r["measured_s"] > 0
        assert r["added_s"] >= -1e-9
