"""The analysis-speed benchmark's pieces on a tiny cube: rows, PyMca's configuration, table."""

from __future__ import annotations

import numpy as np
import pytest
from dwellwise.benchmarks import analysis_speed as bench


@pytest.fixture(scope="module")
def data() -> bench.Data:
    return bench.simulate((10, 12), seed=1)


def test_linear_rows_measure_and_score(data):
    rows = bench.linear_rows(data, repeats=1)
    assert {r.method for r in rows} == {
        "linear fit (ours), no background",
        "linear fit (ours), 4-term background",
    }
    for r in rows:
        assert r.spectra == 120 and r.seconds > 0 and r.rate > 0
        assert r.pearson is not None and r.pearson > 0.95


def test_pymca_fits_the_same_families(data):
    pytest.importorskip("PyMca5")
    config = bench.pymca_config(data.elements)
    assert config["fit"]["stripflag"] == 0 and config["fit"]["continuum"] == 0
    assert config["peaks"]["Pb"] == ["L", "M"] and config["peaks"]["Fe"] == "K"
    assert config["detector"]["gain"] == pytest.approx(0.010)
    row, note = bench.pymca_row(data, repeats=1)
    assert note == "" and row.spectra == 120
    assert row.pearson is not None and row.pearson > 0.95  # scored on the same families


def test_table_gives_ratios_to_pymca():
    rows = [
        bench.Row("ours", "cpu", "1", 0.5, 1000, 0.99),
        bench.Row("PyMca", "cpu", "BLAS default", 2.0, 1000, None),
    ]
    text = bench.table(rows, rows[1])
    assert "| ours | cpu | 1 | 2,000 | 4.00 | 0.9900 |" in text
    assert "| PyMca | cpu | BLAS default | 500 | 1.00 | - |" in text
    assert "| - |" in bench.table(rows[:1], None)


def test_pearson_skips_families_below_the_count_floor(data):
    bright = {e for e, t in data.truth.items() if t.mean() * bench.DWELL_S >= 20}
    assert bright and bright != set(data.truth)  # the scene has both kinds
    rng = np.random.default_rng(0)
    maps = {e: t.copy() if e in bright else rng.random(t.shape) for e, t in data.truth.items()}
    assert bench.mean_pearson(data, maps) == pytest.approx(1.0)  # dim families ignored
    maps = {e: rng.random(t.shape) for e, t in data.truth.items()}
    assert bench.mean_pearson(data, maps) < 0.5
