"""Figures of merit."""

import numpy as np
import pytest
from dwellwise.models.metrics import bias, efficiency, gain_over_uniform, pooled_estimate, rmse


def test_pooled_estimate_is_total_counts_over_total_time():
    est = pooled_estimate([2, 0], [8, 3], 0.002, np.array([0.008, 0.001]))
    np.testing.assert_allclose(est, [10 / 0.01, 3 / 0.003])


def test_pooled_estimate_rejects_zero_time():
    with pytest.raises(ValueError, match="t0 \\+ t > 0"):
        pooled_estimate([1], [1], 0.0, [0.0])


def test_rmse():
    assert rmse([1.0, 3.0], [1.0, 1.0]) == pytest.approx(np.sqrt(2.0))


def test_gain_and_efficiency():
    assert gain_over_uniform(75.0, 100.0) == pytest.approx(0.25)
    assert gain_over_uniform(110.0, 100.0) == pytest.approx(-0.10)
    assert efficiency(0.2, 0.25) == pytest.approx(0.8)
    assert np.isnan(efficiency(0.1, 0.0))
    with pytest.raises(ValueError):
        gain_over_uniform(1.0, 0.0)


def test_bias_is_relative_mean_error():
    assert bias([0.9, 1.8], [1.0, 2.0]) == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        bias([1.0], [0.0])
