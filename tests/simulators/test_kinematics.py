"""Fly-scan stage kinematics: speed caps, acceleration limits, pixel times, run-up and run-out."""

import numpy as np
import pytest
from dwellwise.simulators.kinematics import Kinematics, row_profiles, row_step_time
from hypothesis import given, settings
from hypothesis import strategies as st

KIN = Kinematics()  # 100 mm/s, 1000 mm/s²
PITCH = 0.5


# ---------------------------------------------------------------- strategies


@st.composite
def kinematics(draw):
    return Kinematics(
        v_max=draw(st.floats(5.0, 500.0)),
        a_max=draw(st.floats(50.0, 1e5)),
        settle_s=draw(st.sampled_from([0.0, 0.01])),
    )


@st.composite
def dwell_maps(draw, max_rows=4, max_cols=30):
    """Dwell maps (s) mixing very short (< pitch/v_max), exact pitch/v_max, long and jumpy values."""
    kin = draw(kinematics())
    pitch = draw(st.floats(0.01, 5.0))
    t_min = pitch / kin.v_max
    value = st.one_of(
        st.floats(-6.0, 1.5).map(lambda e: 10.0**e),  # 1 µs .. 30 s, log-uniform
        st.sampled_from([t_min, t_min * (1 + 1e-12), t_min * 0.5, t_min * 1.01, t_min * 100]),
    )
    h = draw(st.integers(1, max_rows))
    w = draw(st.integers(1, max_cols))
    dwell = np.array(draw(st.lists(value, min_size=h * w, max_size=h * w))).reshape(h, w)
    reverse = np.array(draw(st.lists(st.booleans(), min_size=h, max_size=h)))
    return dwell, pitch, kin, reverse


def travel_order(a, reverse):
    return np.where(reverse[:, None], a[:, ::-1], a)


# ---------------------------------------------------------------- invariants


@settings(max_examples=200, deadline=None, derandomize=True)
@given(dwell_maps())
def test_limits_and_dwell_lower_bound(case):
    dwell, pitch, kin, reverse = case
    p = row_profiles(dwell, pitch, kin, reverse=reverse)
    h, w = dwell.shape
    assert p.boundary_velocity.shape == (h, w + 1)
    assert p.pixel_time.shape == p.peak_velocity.shape == (h, w)
    for arr in (p.run_up_s, p.run_out_s, p.run_up_mm, p.run_out_mm, p.duration_s):
        assert arr.shape == (h,)

    u = p.boundary_velocity
    assert np.all(u >= 0) and np.all(u <= kin.v_max)
    assert np.all(p.peak_velocity <= kin.v_max)
    # Never faster than a pixel's cap, so never shorter than its planned dwell.
    cap = np.minimum(kin.v_max, pitch / dwell)
    assert np.all(p.peak_velocity <= cap)
    assert np.all(p.pixel_time >= dwell * (1 - 1e-9))
    assert np.all(p.pixel_time >= pitch / kin.v_max * (1 - 1e-12))
    # Boundaries are capped by both neighbours (slow down before a slow pixel, not inside it).
    cap_t = travel_order(cap, reverse)
    assert np.all(u[:, :-1] <= cap_t) and np.all(u[:, 1:] <= cap_t)
    peak_t = travel_order(p.peak_velocity, reverse)
    assert np.all(peak_t >= np.maximum(u[:, :-1], u[:, 1:]))

    # Acceleration: the squared speed changes by at most 2·a·pitch across a pixel, both ways.
    ds = np.diff(u * u, axis=1)
    bound = 2 * kin.a_max * pitch * (1 + 1e-9)
    assert np.all(ds <= bound) and np.all(-ds <= bound)

    # Run-up / run-out from and to rest, and the duration bookkeeping.
    np.testing.assert_allclose(p.run_up_s, u[:, 0] / kin.a_max, rtol=1e-15)
    np.testing.assert_allclose(p.run_out_s, u[:, -1] / kin.a_max, rtol=1e-15)
    np.testing.assert_allclose(p.run_up_mm, u[:, 0] ** 2 / (2 * kin.a_max), rtol=1e-15)
    np.testing.assert_allclose(p.run_out_mm, u[:, -1] ** 2 / (2 * kin.a_max), rtol=1e-15)
    np.testing.assert_allclose(
        p.duration_s, p.run_up_s + p.pixel_time.sum(axis=1) + p.run_out_s, rtol=1e-12
    )


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dwell_maps())
def test_boundary_speeds_are_the_largest_feasible(case):
    """Every boundary sits at its cap or is held down by an acceleration limit to a neighbour."""
    dwell, pitch, kin, reverse = case
    p = row_profiles(dwell, pitch, kin, reverse=reverse)
    s = p.boundary_velocity**2
    cap = travel_order(np.minimum(kin.v_max, pitch / dwell), reverse)
    bcap = np.concatenate((cap[:, :1], np.minimum(cap[:, :-1], cap[:, 1:]), cap[:, -1:]), axis=1)
    reach = 2 * kin.a_max * pitch
    scale = bcap**2 + reach
    tight = np.isclose(s, bcap**2, rtol=1e-9, atol=0)
    tight[:, 1:] |= np.abs(s[:, 1:] - (s[:, :-1] + reach)) <= 1e-9 * scale[:, 1:]
    tight[:, :-1] |= np.abs(s[:, :-1] - (s[:, 1:] + reach)) <= 1e-9 * scale[:, :-1]
    assert np.all(tight)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dwell_maps(max_rows=1))
def test_reversed_row_gives_mirrored_profile(case):
    dwell, pitch, kin, _ = case
    fwd = row_profiles(dwell, pitch, kin, reverse=False)
    rev = row_profiles(dwell, pitch, kin, reverse=True)
    flipped = row_profiles(dwell[:, ::-1], pitch, kin)
    # By column the pixel times are the same whichever way the row is flown ...
    np.testing.assert_allclose(rev.pixel_time, fwd.pixel_time, rtol=1e-12)
    np.testing.assert_allclose(rev.pixel_time, flipped.pixel_time[:, ::-1], rtol=1e-12)
    # ... and the boundary speeds (travel order) are the forward ones read backwards.
    np.testing.assert_allclose(rev.boundary_velocity, fwd.boundary_velocity[:, ::-1], rtol=1e-12)
    np.testing.assert_allclose(rev.peak_velocity, fwd.peak_velocity, rtol=1e-12)
    np.testing.assert_allclose(rev.run_up_s, fwd.run_out_s, rtol=1e-12)
    np.testing.assert_allclose(rev.duration_s, fwd.duration_s, rtol=1e-12)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(dwell_maps(max_rows=6))
def test_rows_are_independent(case):
    """The vectorized computation over rows equals computing each row alone."""
    dwell, pitch, kin, reverse = case
    together = row_profiles(dwell, pitch, kin, reverse=reverse)
    for h in range(dwell.shape[0]):
        alone = row_profiles(dwell[h], pitch, kin, reverse=bool(reverse[h]))
        np.testing.assert_allclose(together.pixel_time[h], alone.pixel_time[0], rtol=1e-12)
        np.testing.assert_allclose(together.duration_s[h], alone.duration_s[0], rtol=1e-12)


# ---------------------------------------------------------------- worked cases


@pytest.mark.parametrize(
    ("kin", "pitch"),
    [(KIN, 0.5), (KIN, 0.1), (Kinematics(37.3, 250.0), 0.33), (Kinematics(250.0, 5e3), 1.7)],
)
def test_uniform_at_min_dwell_is_exact(kin, pitch):
    dwell = kin.min_dwell(pitch)
    w = 20
    p = row_profiles(np.full((3, w), dwell), pitch, kin, reverse=np.array([False, True, False]))
    assert np.all(p.pixel_time == dwell)
    assert np.all(p.boundary_velocity == kin.v_max)
    np.testing.assert_allclose(p.duration_s, w * dwell + 2 * kin.v_max / kin.a_max, rtol=1e-14)
    np.testing.assert_allclose(p.run_up_mm, kin.v_max**2 / (2 * kin.a_max), rtol=1e-15)


def test_long_uniform_dwell_is_exact():
    dwell = 0.2  # 2.5 mm/s at 0.5 mm pitch
    p = row_profiles(np.full(10, dwell), PITCH, KIN)
    np.testing.assert_allclose(p.pixel_time, dwell, rtol=1e-15)
    np.testing.assert_allclose(p.duration_s, 10 * dwell + 2 * 2.5 / KIN.a_max, rtol=1e-14)


def test_slow_pixel_worked_example():
    """A 0.1 s pixel (cap 5 mm/s) between 5 ms pixels (cap 100 mm/s), by hand.

    D = 2·a·pitch = 1000 mm²/s²: the boundaries around the slow pixel are at 5 mm/s, one pixel
    further out at sqrt(25 + 1000), two pixels out at sqrt(25 + 2000) = 45 mm/s (below v_max).
    """
    dwell = np.array([0.005, 0.005, 0.1, 0.005, 0.005])
    p = row_profiles(dwell, PITCH, KIN)
    expected = np.array([45.0, np.sqrt(1025.0), 5.0, 5.0, np.sqrt(1025.0), 45.0])
    np.testing.assert_allclose(p.boundary_velocity[0], expected, rtol=1e-14)
    assert p.pixel_time[0, 2] == pytest.approx(0.1, rel=1e-14)  # cruises through at its cap
    # Pixels 0 and 1 brake the whole way (triangle-free): time = 2·L / (u + v).
    assert p.pixel_time[0, 0] == pytest.approx(2 * PITCH / (45.0 + np.sqrt(1025.0)), rel=1e-14)
    assert p.pixel_time[0, 1] == pytest.approx(2 * PITCH / (np.sqrt(1025.0) + 5.0), rel=1e-14)
    assert p.run_up_s[0] == pytest.approx(0.045)
    assert p.run_up_mm[0] == pytest.approx(45.0**2 / 2000.0)


@pytest.mark.parametrize("reverse", [False, True])
def test_slow_pixel_makes_neighbours_slow_down_before_it(reverse):
    dwell = np.full(12, 0.005)
    dwell[7] = 1.0  # cap 0.5 mm/s
    p = row_profiles(dwell, PITCH, KIN, reverse=reverse)
    k = 7 if not reverse else 12 - 1 - 7  # travel-order index of the slow pixel
    u = p.boundary_velocity[0]
    assert u[k] <= 0.5 and u[k + 1] <= 0.5  # entry and exit boundary at most its cap
    assert p.peak_velocity[0, 7] <= 0.5
    assert np.all(np.diff(u[: k + 1]) <= 0)  # decelerating on the way in
    assert p.pixel_time[0, 7] == pytest.approx(1.0, rel=1e-12)
    # The fast neighbours take longer than planned because the stage brakes inside them.
    neighbour = 6 if not reverse else 8
    assert p.pixel_time[0, neighbour] > 0.005 * 2


def test_one_dimensional_input_gives_one_row():
    p = row_profiles(np.array([0.01, 0.02, 0.005]), PITCH, KIN)
    assert p.pixel_time.shape == (1, 3)
    assert p.boundary_velocity.shape == (1, 4)
    assert p.duration_s.shape == (1,)


def test_single_pixel_row():
    p = row_profiles(np.array([0.01]), PITCH, KIN)  # cap 50 mm/s
    np.testing.assert_allclose(p.boundary_velocity, [[50.0, 50.0]])
    np.testing.assert_allclose(p.pixel_time, [[0.01]])
    np.testing.assert_allclose(p.duration_s, [0.01 + 2 * 0.05])


# ---------------------------------------------------------------- numerical cross-check


def simulate_row(dwell, pitch, kin, dt):
    """Time-step a greedy time-optimal controller that knows only the caps and a_max.

    Starting from rest well before the row, at every step the stage accelerates at a_max unless
    that would make it too fast for the current pixel's cap or unable to brake in time for any
    later pixel's cap. Returns the entry speed and the time spent in each pixel (travel order).
    """
    w = dwell.size
    cap = np.minimum(kin.v_max, pitch / dwell)
    starts = pitch * np.arange(w)
    a = kin.a_max

    def allowed(x):
        j = int(np.floor(x / pitch))
        limit = kin.v_max if j < 0 else cap[min(j, w - 1)]
        ahead = starts > x
        if np.any(ahead):
            limit = min(
                limit, float(np.min(np.sqrt(cap[ahead] ** 2 + 2 * a * (starts[ahead] - x))))
            )
        return limit

    x, v, t = -(kin.v_max**2) / a - pitch, 0.0, 0.0
    crossings, entry = [], None
    while x < w * pitch:
        v_new = min(v + a * dt, allowed(x + (v + a * dt) * dt))
        x_new = x + 0.5 * (v + v_new) * dt
        # Record the boundaries crossed during this step (linear interpolation in x).
        while len(crossings) <= w and x_new >= len(crossings) * pitch:
            b = len(crossings) * pitch
            frac = (b - x) / (x_new - x)
            crossings.append(t + frac * dt)
            if entry is None:
                entry = v + frac * (v_new - v)
        x, v, t = x_new, v_new, t + dt
    return entry, np.diff(np.array(crossings))


@pytest.mark.parametrize(
    "dwell",
    [
        [0.005, 0.005, 0.1, 0.005, 0.005],
        [0.02, 0.002, 0.002, 0.05, 0.01],
        [0.05, 0.01, 0.01, 0.01, 0.08],
        [0.001, 0.001, 0.001, 0.001],
    ],
)
def test_pixel_time_matches_time_stepped_motion(dwell):
    dwell = np.array(dwell)
    p = row_profiles(dwell, PITCH, KIN)
    entry, sim = simulate_row(dwell, PITCH, KIN, dt=1e-5)
    assert entry == pytest.approx(p.boundary_velocity[0, 0], rel=1e-3)
    np.testing.assert_allclose(sim, p.pixel_time[0], rtol=1e-3)


# ---------------------------------------------------------------- point-to-point moves


def test_move_time_triangle_trapezoid_and_zero():
    kin = KIN
    assert kin.move_time(0.0) == 0.0
    # Short move: triangle, peak below v_max.
    assert kin.move_time(0.5) == pytest.approx(2 * np.sqrt(0.5 / 1000.0))
    # Long move: trapezoid, v_max reached after v²/(2a) = 5 mm.
    assert kin.move_time(100.0) == pytest.approx(100.0 / 100.0 + 100.0 / 1000.0)
    # Continuous where the profiles meet (distance v²/a = 10 mm) and symmetric in sign.
    edge = kin.v_max**2 / kin.a_max
    assert kin.move_time(edge * (1 - 1e-12)) == pytest.approx(kin.move_time(edge), rel=1e-9)
    assert kin.move_time(-3.0) == kin.move_time(3.0)
    assert isinstance(kin.move_time(1.0), float)


def test_move_time_vectorized_and_monotone():
    d = np.linspace(0.0, 50.0, 501)
    t = KIN.move_time(d)
    assert isinstance(t, np.ndarray) and t.shape == d.shape
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t, [KIN.move_time(float(x)) for x in d])


def test_move_time_by_integration():
    """Integrate the rest-to-rest bang-(coast)-bang profile numerically."""
    for dist in (0.3, 7.0, 40.0):
        a, vmax = KIN.a_max, KIN.v_max
        x = np.linspace(0.0, dist, 200_001)
        v = np.minimum(vmax, np.sqrt(2 * a * np.minimum(x, dist - x)))
        mid = 0.5 * (v[1:] + v[:-1])
        # dt = dx / v; the ends (v = 0) are integrable: use exact t = sqrt(2x/a) near the ends.
        t = np.sum(np.diff(x)[1:-1] / mid[1:-1]) + 2 * np.sqrt(2 * x[1] / a)
        assert t == pytest.approx(KIN.move_time(dist), rel=1e-3)


def test_move_distance_to_speed_and_min_dwell():
    assert KIN.move_distance_to_speed(100.0) == pytest.approx(5.0)
    np.testing.assert_allclose(KIN.move_distance_to_speed(np.array([0.0, 10.0])), [0.0, 0.05])
    assert KIN.min_dwell(0.5) == pytest.approx(0.005)
    with pytest.raises(ValueError, match="exceeds v_max"):
        KIN.move_distance_to_speed(101.0)
    with pytest.raises(ValueError, match="≥ 0"):
        KIN.move_distance_to_speed(-1.0)


def test_row_step_time():
    assert row_step_time(0.5, KIN) == pytest.approx(2 * np.sqrt(0.5 / 1000.0))
    settle = Kinematics(settle_s=0.02)
    assert row_step_time(0.5, settle) == pytest.approx(2 * np.sqrt(0.5 / 1000.0) + 0.02)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("dwell", "match"),
    [
        (np.array([0.01, 0.0, 0.01]), r"> 0 s everywhere; pixel \(row 0, col 1\)"),
        (np.array([[0.01, 0.01], [-1.0, 0.01]]), r"pixel \(row 1, col 0\)"),
        (np.array([0.01, np.nan]), "finite"),
        (np.array([0.01, np.inf]), "finite"),
        (np.ones((2, 2, 2)), "shape"),
        (np.ones((0,)), "empty"),
        (np.ones((3, 0)), "empty"),
    ],
)
def test_bad_dwell_is_refused(dwell, match):
    with pytest.raises(ValueError, match=match):
        row_profiles(dwell, PITCH, KIN)


@pytest.mark.parametrize("pitch", [0.0, -0.5, np.nan, np.inf])
def test_bad_pitch_is_refused(pitch):
    with pytest.raises(ValueError, match="pitch"):
        row_profiles(np.ones(3), pitch, KIN)


def test_bad_reverse_shape_is_refused():
    with pytest.raises(ValueError, match="one bool per row"):
        row_profiles(np.ones((3, 4)), PITCH, KIN, reverse=np.array([True, False]))


@pytest.mark.parametrize(
    "kwargs", [{"v_max": 0.0}, {"a_max": -1.0}, {"v_max": np.inf}, {"settle_s": -0.1}]
)
def test_bad_kinematics_are_refused(kwargs):
    with pytest.raises(ValueError):
        Kinematics(**kwargs)


def test_no_control_system_imports():
    import dwellwise.simulators.kinematics as mod

    source = open(mod.__file__).read()
    for name in ("bluesky", "ophyd", "torch"):
        assert f"import {name}" not in source and f"from {name}" not in source
