"""The simulator benchmark: a faithful ganX baseline and a complete table."""

import numpy as np
from dwellwise.benchmarks.simulator import (
    GANX_PHOTONS,
    ganx_spectra,
    ganx_spectra_bincount,
    run,
)
from scipy import stats


def test_ganx_draws_fixed_photons_from_its_distribution():
    rng = np.random.default_rng(0)
    h = rng.random(4096) ** 8
    h /= h.sum()
    spectra = ganx_spectra(h, 300, rng)
    assert spectra.shape == (300, 4096) and spectra.dtype == np.int64
    assert np.all(spectra.sum(axis=1) == GANX_PHOTONS)
    expected = 300 * GANX_PHOTONS * h
    big = expected >= 5
    observed = spectra.sum(axis=0)
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    a = ganx_spectra(h, 50, np.random.default_rng(4))
    b = ganx_spectra_bincount(h, 50, np.random.default_rng(4))
    assert np.array_equal(a, b)  # the faster counting gives the same spectra


def test_table_compares_every_case_with_ganx_asked_the_same_way():
    rows = run(shape=(8, 8), repeats=1, runs=2)
    assert len(rows) == 15
    labels = [(r[0], r[1], r[2]) for r in rows]
    for call, threads in (("scene", 1), ("scene", 2), ("rows", 1), ("rows", 2), ("1 row", 1)):
        assert ("ganX Monte Carlo", call, threads) in labels
    for row in rows:
        if row[0] == "ganX Monte Carlo":
            assert row[6].startswith("1.0 (1.0–1.0)") and row[7].startswith("1.0")
        else:
            assert float(row[6].split()[0]) > 0 and float(row[7].split()[0]) > 0
        assert float(row[5].replace(",", "")) > 0
    long = [r for r in rows if r[1] == "1 row"]
    assert long[0][3] == long[1][3] and float(long[0][3]) > 5000  # equal counts, long dwell


def test_quick_run_prints_the_table_and_the_verdict(capsys):
    from dwellwise.benchmarks.simulator import main

    assert main(quick=True) == 0
    out = capsys.readouterr().out
    assert "| ganX Monte Carlo | scene | 1 |" in out
    assert "Goal of issue 2, ≥ 10× ganX at 400 counts per spectrum on one thread: " in out
