"""The science benchmark's oracle bound: what no dwell allocation can beat at equal live time."""

import numpy as np
import pytest
from dwellwise.benchmarks.acquisition_science import oracle_gain, relative_score


def test_a_flat_map_leaves_nothing_to_gain():
    assert oracle_gain(np.full((8, 8), 37.0)) == pytest.approx(1.0)


def test_the_bound_matches_the_water_filled_variance():
    rng = np.random.default_rng(0)
    score = rng.gamma(0.5, 100.0, size=(16, 16))
    live = 0.01  # s per pixel on average
    uniform = np.sum(score / live)
    t = live * np.sqrt(score) / np.sqrt(score).mean()  # t ∝ sqrt(score), same mean
    oracle = np.sum(score / t)
    assert oracle_gain(score) == pytest.approx(np.sqrt(uniform / oracle))
    assert oracle_gain(score) > 1.2


def test_many_elements_spread_over_the_picture_flatten_the_default_score():
    # two elements on complementary halves: each alone gains, weighted alike they cancel
    a = np.zeros((8, 8))
    a[:, :4] = 100.0
    b = 100.0 - a
    rates = np.stack([a + 1.0, b + 1.0])
    assert oracle_gain(rates[0]) > 1.25
    assert oracle_gain(relative_score(rates)) == pytest.approx(1.0)


def test_a_tiny_science_run_fills_both_tables(tmp_path):
    from dwellwise.benchmarks.acquisition_science import run_science_benchmark, science_tables

    rows = run_science_benchmark(
        [("astronaut", 0)],
        (6, 16),
        workers=0,
        budget_per_pixel=0.3,
        speedup=20.0,
        targets=("Pb_L", "Xx_K"),
    )
    assert [(r["method"], r["target"]) for r in rows] == [
        ("raster", ""),
        ("auto", ""),
        ("auto", "Pb_L"),
        ("auto", "Xx_K"),
    ]
    assert all(r["error"] == "" for r in rows), rows
    assert rows[-1]["absent"]  # an element the scene lacks is skipped, not an error
    for r in rows[:3]:
        assert r["used"] <= r["budget"] and r["unmeasured"] == 0 and r["consistent"]
    text = science_tables(rows)
    assert "| astronaut | no | Pb_L |" in text
    assert "(scene, element) cases" in text and "oracle bounds" in text
