"""Pass time model: bookkeeping, remaining time, and scaling a dwell map to a time budget."""

import pickle
import time

import numpy as np
import pytest
from dwellwise.planners.timemodel import (
    DoesNotFit,
    PassTiming,
    min_pass_time,
    pass_timing,
    scale_to_fit,
    serpentine_reverse,
)
from dwellwise.planners.waterfill import fit_mean
from dwellwise.simulators.kinematics import Kinematics, row_profiles, row_step_time
from hypothesis import given, settings
from hypothesis import strategies as st

KIN = Kinematics()  # 100 mm/s, 1000 mm/s²
PITCH = 0.5
T_MIN = KIN.min_dwell(PITCH)  # 5 ms


def test_serpentine_reverse():
    np.testing.assert_array_equal(serpentine_reverse(4), [False, True, False, True])
    np.testing.assert_array_equal(serpentine_reverse(3, first_reverse=True), [True, False, True])
    assert serpentine_reverse(0).shape == (0,)
    with pytest.raises(ValueError, match="integer"):
        serpentine_reverse(-1)


def test_pass_timing_bookkeeping():
    rng = np.random.default_rng(0)
    dwell = rng.uniform(0.001, 0.05, (7, 11))
    kin = Kinematics(settle_s=0.01)
    timing = pass_timing(dwell, PITCH, kin, approach_mm=12.0)
    assert isinstance(timing, PassTiming)
    rows = row_profiles(dwell, PITCH, kin, reverse=serpentine_reverse(7))
    np.testing.assert_array_equal(timing.row_s, rows.duration_s)
    assert timing.step_s == row_step_time(PITCH, kin)
    assert timing.approach_s == pytest.approx(kin.move_time(12.0))
    expected = timing.approach_s + timing.row_s.sum() + 6 * timing.step_s
    assert timing.total_s == pytest.approx(expected, rel=1e-14)
    # The realized time exceeds the nominal dwell sum by the run-ups, run-outs and steps at least.
    assert timing.total_s > dwell.sum() + 6 * timing.step_s


def test_pass_timing_defaults_to_serpentine_and_one_row():
    dwell = np.array([[0.005, 0.05], [0.05, 0.005]])
    serp = pass_timing(dwell, PITCH, KIN)
    explicit = pass_timing(dwell, PITCH, KIN, reverse=np.array([False, True]))
    np.testing.assert_array_equal(serp.row_s, explicit.row_s)
    one = pass_timing(np.array([0.01, 0.02]), PITCH, KIN)
    assert one.row_s.shape == (1,)
    assert one.total_s == pytest.approx(one.row_s[0])
    assert one.approach_s == 0.0


def test_remaining_s():
    rng = np.random.default_rng(1)
    timing = pass_timing(rng.uniform(0.002, 0.03, (5, 8)), PITCH, KIN, approach_mm=3.0)
    h = 5
    assert timing.remaining_s(0) == pytest.approx(timing.total_s - timing.approach_s)
    assert timing.remaining_s(h) == 0.0
    assert timing.remaining_s(h - 1) == pytest.approx(timing.row_s[-1])
    for k in range(h - 1):
        drop = timing.remaining_s(k) - timing.remaining_s(k + 1)
        assert drop == pytest.approx(timing.row_s[k] + timing.step_s)
    for bad in (-1, h + 1, 1.5, True):
        with pytest.raises(ValueError, match="next_row"):
            timing.remaining_s(bad)


def test_min_pass_time():
    h, w = 10, 30
    t = min_pass_time((h, w), PITCH, KIN, T_MIN)
    row = w * T_MIN + 2 * KIN.v_max / KIN.a_max
    assert t == pytest.approx(h * row + (h - 1) * row_step_time(PITCH, KIN))
    # Dwells below pitch / v_max cannot be flown faster than v_max: same time.
    assert min_pass_time((h, w), PITCH, KIN, T_MIN / 10) == pytest.approx(t)
    assert min_pass_time((h, w), PITCH, KIN, T_MIN, overhead_per_row_s=0.1) == pytest.approx(
        t + h * 0.1
    )
    with pytest.raises(ValueError, match="min_dwell"):
        min_pass_time((h, w), PITCH, KIN, 0.0)


# ---------------------------------------------------------------- scale_to_fit


@st.composite
def fit_problems(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["gamma", "sparse", "uniform", "zeros", "jumpy"]))
    if kind == "gamma":
        base = rng.gamma(draw(st.sampled_from([0.2, 1.0, 5.0])), 1.0, (h, w))
    elif kind == "sparse":
        base = (rng.random((h, w)) > 0.8) * rng.uniform(1, 100, (h, w))
    elif kind == "uniform":
        base = np.full((h, w), 3.0)
    elif kind == "zeros":
        base = np.zeros((h, w))
    else:
        base = 10.0 ** rng.uniform(-4, 3, (h, w))
    min_dwell = T_MIN * draw(st.sampled_from([0.1, 1.0, 3.0]))
    max_dwell = draw(st.sampled_from([np.inf, np.inf, 0.05, 1.0]))
    max_dwell = max(max_dwell, min_dwell)
    overhead = draw(st.sampled_from([0.0, 0.05]))
    needed = min_pass_time((h, w), PITCH, KIN, min_dwell, overhead_per_row_s=overhead)
    available = needed * draw(st.floats(1.0, 60.0))
    return base, available, min_dwell, max_dwell, overhead


@settings(max_examples=150, deadline=None, derandomize=True)
@given(fit_problems())
def test_scale_to_fit_fits_and_uses_the_time(problem):
    base, available, min_dwell, max_dwell, overhead = problem
    h = base.shape[0]
    tol = 1e-3
    d, t = scale_to_fit(
        base,
        available,
        PITCH,
        KIN,
        min_dwell=min_dwell,
        max_dwell=max_dwell,
        overhead_per_row_s=overhead,
        tol=tol,
    )
    assert d.shape == base.shape and d.dtype == np.float64
    assert d.min() >= min_dwell and d.max() <= max_dwell
    assert d.mean() >= min_dwell * (1 - 1e-12)
    # The prediction is the realized time of the map returned, and it fits.
    assert t == pytest.approx(pass_timing(d, PITCH, KIN).total_s + h * overhead, rel=1e-12)
    assert t <= available
    # The map is the policy's shape at some level: fit_mean(base, mean) reproduces it.
    level = np.clip(d.mean(), min_dwell, max_dwell)  # a saturated map may average a rounding out
    np.testing.assert_allclose(d, fit_mean(base, level, min_dwell, max_dwell), rtol=1e-9)
    # It uses the time: within tol of the budget, unless max_dwell caps every pixel.
    if not np.all(d == max_dwell):
        assert available - t <= tol * available
    else:
        assert pass_timing(d, PITCH, KIN).total_s + h * overhead <= available


def test_scale_to_fit_is_on_realized_time_not_nominal():
    rng = np.random.default_rng(3)
    base = rng.gamma(1.0, 1.0, (16, 16))
    available = 60.0
    d, t = scale_to_fit(base, available, PITCH, KIN, min_dwell=T_MIN)
    assert available * (1 - 1e-3) <= t <= available
    # The realized time includes braking, run-ups, run-outs and row steps beyond Σ dwell ...
    assert d.sum() < t - 15 * row_step_time(PITCH, KIN) - 0.5
    # ... so scaling the nominal Σ dwell to the budget would overrun it.
    nominal = fit_mean(base, available / base.size, T_MIN)
    assert pass_timing(nominal, PITCH, KIN).total_s > available


def test_scale_to_fit_more_time_gives_more_dwell():
    base = np.random.default_rng(4).gamma(2.0, 1.0, (10, 10))
    means = [
        scale_to_fit(base, avail, PITCH, KIN, min_dwell=T_MIN)[0].mean()
        for avail in (5.0, 10.0, 20.0, 40.0)
    ]
    assert np.all(np.diff(means) > 0)


def test_scale_to_fit_tight_tolerance_and_one_row():
    base = np.array([1.0, 5.0, 0.2, 3.0, 0.0, 2.0])
    needed = min_pass_time(base.shape, PITCH, KIN, T_MIN)
    d, t = scale_to_fit(base, 2 * needed, PITCH, KIN, min_dwell=T_MIN, tol=1e-10)
    assert d.shape == (6,)
    assert 2 * needed * (1 - 1e-10) <= t <= 2 * needed


def test_scale_to_fit_exact_minimum_and_max_cap():
    base = np.random.default_rng(5).gamma(2.0, 1.0, (6, 9))
    needed = min_pass_time(base.shape, PITCH, KIN, T_MIN)
    d, t = scale_to_fit(base, needed, PITCH, KIN, min_dwell=T_MIN)
    np.testing.assert_allclose(d, T_MIN)
    assert t == pytest.approx(needed)
    # With lots of time and a max_dwell cap, every pixel saturates at max_dwell.
    d, t = scale_to_fit(base, 1e4, PITCH, KIN, min_dwell=T_MIN, max_dwell=0.02)
    np.testing.assert_allclose(d, 0.02)
    assert t == pytest.approx(pass_timing(d, PITCH, KIN).total_s)


def test_does_not_fit_reports_the_least_time():
    shape = (20, 30)
    base = np.random.default_rng(6).gamma(2.0, 1.0, shape)
    needed = min_pass_time(shape, PITCH, KIN, T_MIN, overhead_per_row_s=0.1)
    with pytest.raises(DoesNotFit) as info:
        scale_to_fit(base, 0.9 * needed, PITCH, KIN, min_dwell=T_MIN, overhead_per_row_s=0.1)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.needed_s == pytest.approx(needed)
    assert err.available_s == pytest.approx(0.9 * needed)
    assert f"{needed:.6g}" in str(err) and f"{0.9 * needed:.6g}" in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.needed_s, clone.available_s, str(clone)) == (
        err.needed_s,
        err.available_s,
        str(err),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_dwell": 0.0}, "min_dwell"),
        ({"min_dwell": T_MIN, "max_dwell": T_MIN / 2}, "max_dwell"),
        ({"min_dwell": T_MIN, "tol": 0.0}, "tol"),
        ({"min_dwell": T_MIN, "overhead_per_row_s": -1.0}, "overhead"),
    ],
)
def test_scale_to_fit_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scale_to_fit(np.ones((3, 3)), 10.0, PITCH, KIN, **kwargs)


def test_scale_to_fit_refuses_negative_base():
    with pytest.raises(ValueError, match="≥ 0"):
        scale_to_fit(-np.ones((3, 3)), 10.0, PITCH, KIN, min_dwell=T_MIN)


def _best_of(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_scale_to_fit_is_fast_enough_between_rows():
    """Loose guards (measured ~3 ms and ~15–50 ms); they catch a fall-back to Python loops."""
    rng = np.random.default_rng(7)
    for n, limit in ((48, 0.1), (256, 1.0)):
        base = rng.gamma(1.0, 1.0, (n, n))
        available = 3 * min_pass_time((n, n), PITCH, KIN, T_MIN)
        elapsed = _best_of(
            lambda b=base, a=available: scale_to_fit(b, a, PITCH, KIN, min_dwell=T_MIN), 3
        )
        assert elapsed < limit, f"{n}x{n} took {elapsed * 1e3:.1f} ms"
