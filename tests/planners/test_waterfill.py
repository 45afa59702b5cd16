"""Exact water-filling and the mean fixer."""

import numpy as np
import pytest
from dwellwise.planners.waterfill import fit_mean, waterfill_sqrt
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import optimize


def assert_contract(t, mean_dwell, lo, hi):
    assert t.dtype == np.float64
    assert abs(t.mean() - mean_dwell) <= 1e-9 * mean_dwell
    assert t.min() >= lo
    assert t.max() <= hi


@st.composite
def problems(draw):
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    score = draw(
        arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.5, 3.0, 47.0, 2000.0, 1e5]))
    )
    if draw(st.booleans()):
        t0 = draw(st.floats(1e-4, 1e-2))
    else:
        t0 = draw(arrays(np.float64, shape, elements=st.floats(0.0, 2e-2)))
    mean_dwell = draw(st.floats(1e-4, 5e-2))
    lo = mean_dwell * draw(st.sampled_from([0.0, 0.0, 0.3, 0.999, 1.0]))
    hi = draw(st.sampled_from([np.inf, 1.0, 1.001, 1.5, 4.0]))
    hi = hi if np.isinf(hi) else mean_dwell * hi
    return score, t0, mean_dwell, lo, hi


@settings(max_examples=300, deadline=None)
@given(problems())
def test_mean_and_bounds_exact_and_kkt(problem):
    score, t0, mean_dwell, lo, hi = problem
    t = waterfill_sqrt(score, t0, mean_dwell, lo, hi)
    assert t.shape == score.shape
    assert_contract(t, mean_dwell, lo, hi)
    # KKT: unsaturated pixels with a score share one water level c = (t0 + t)/sqrt(score).
    s = np.sqrt(score)
    t0b = np.broadcast_to(t0, score.shape)
    free = (t > lo * (1 + 1e-9) + 1e-15) & (t < hi * (1 - 1e-9)) & (s > 0)
    if np.any(free):
        level = (t0b + t)[free] / s[free]
        np.testing.assert_allclose(level, level.mean(), rtol=1e-8)
        c = level.mean()
        at_lo = (t <= lo) & (s > 0)
        assert np.all(c * s[at_lo] - t0b[at_lo] <= lo + 1e-9 * mean_dwell)
        at_hi = (t >= hi) & (s > 0)
        assert np.all(c * s[at_hi] - t0b[at_hi] >= hi - 1e-9 * mean_dwell)


def test_zero_score_gives_uniform():
    t = waterfill_sqrt(np.zeros((5, 7)), 0.002, 0.008)
    np.testing.assert_array_equal(t, np.full((5, 7), 0.008))


def test_saturated_pixels_leave_the_rest_to_weightless_pixels():
    score = np.zeros((2, 2))
    score[0, 0] = 100.0
    t = waterfill_sqrt(score, 0.002, 0.008, 0.0, 0.010)
    assert t[0, 0] == 0.010
    np.testing.assert_allclose(t.ravel()[1:], (0.032 - 0.010) / 3)
    assert t.mean() == pytest.approx(0.008, rel=1e-12)


def test_closed_form_without_bounds():
    score = np.array([[1.0, 4.0, 9.0, 16.0]])
    t = waterfill_sqrt(score, 0.0, 0.010)
    np.testing.assert_allclose(t, 0.040 * np.sqrt(score) / 10, rtol=1e-12)


def test_large_map_is_exact():
    rng = np.random.default_rng(0)
    score = rng.gamma(0.5, 300.0, (700, 700)) * (rng.random((700, 700)) < 0.8)
    t = waterfill_sqrt(score, rng.uniform(0.001, 0.004, score.shape), 0.006, 0.0005, 0.03)
    assert_contract(t, 0.006, 0.0005, 0.03)


@pytest.mark.parametrize("seed", range(6))
def test_matches_scipy_optimiser(seed):
    rng = np.random.default_rng(seed)
    n = 7
    psi = rng.gamma(0.7, 800.0, n)
    t0 = rng.uniform(1.0, 5.0, n)  # ms, for a well-conditioned optimiser
    mean_dwell, lo, hi = 5.0, rng.choice([0.0, 1.0]), rng.choice([np.inf, 12.0])
    t = waterfill_sqrt(psi, t0, mean_dwell, lo, hi)

    def objective(x):
        return np.sum(psi / (t0 + x))

    res = optimize.minimize(
        objective,
        np.full(n, mean_dwell),
        jac=lambda x: -psi / (t0 + x) ** 2,
        method="SLSQP",
        bounds=[(lo, None if np.isinf(hi) else hi)] * n,
        constraints=[{"type": "eq", "fun": lambda x: x.mean() - mean_dwell}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert res.success
    assert objective(t) <= objective(res.x) * (1 + 1e-9)
    np.testing.assert_allclose(t, res.x, atol=1e-4 * mean_dwell)


def test_input_errors():
    with pytest.raises(ValueError, match="min_dwell = 0.02 s exceeds mean_dwell = 0.01 s"):
        waterfill_sqrt(np.ones((2, 2)), 0.002, 0.01, 0.02)
    with pytest.raises(ValueError, match="max_dwell = 0.005 s is below mean_dwell = 0.01 s"):
        waterfill_sqrt(np.ones((2, 2)), 0.002, 0.01, 0.0, 0.005)
    with pytest.raises(ValueError, match="score"):
        waterfill_sqrt(-np.ones((2, 2)), 0.002, 0.01)


def test_fit_mean_rescales_and_keeps_exact_maps():
    exact = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(fit_mean(exact, 2.0), exact)
    t = fit_mean(np.array([1.0, 2.0, 3.0]), 4.0, 0.0, 6.0)
    np.testing.assert_allclose(t, [2.0, 4.0, 6.0])
    t = fit_mean(np.array([0.0, 1.0, 10.0]), 3.0, 1.0, 5.0)
    assert_contract(t, 3.0, 1.0, 5.0)
