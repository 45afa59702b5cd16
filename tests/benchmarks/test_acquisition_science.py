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
