"""The public allocate_dwell contract, for every policy that needs no training."""

import numpy as np
import pytest
from dwellwise.planners import allocate_dwell, list_policies
from dwellwise.planners.weights import default_weights
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

POLICIES = ["uniform", "bilevel", "blindspot-sqrt", "oracle", "auto"]


def options_for(policy, counts, t0):
    if policy == "oracle":
        c = counts if counts.ndim == 3 else counts[None]
        return {"rates": c / np.asarray(t0) + 0.5}
    if policy == "auto":
        return {"deadline": 0.0}  # no learned policy can train in no time: exercises the fallback
    return {}


@st.composite
def allocation_problems(draw):
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    scale = draw(st.sampled_from([0, 1, 5, 50, 2000]))
    counts = draw(arrays(np.int64, shape, elements=st.integers(0, 10))) * scale
    if draw(st.booleans()):
        counts = counts[0]
    t0 = draw(st.one_of(
        st.floats(1e-4, 1e-2),
        arrays(np.float64, shape[1:], elements=st.floats(1e-4, 2e-2)),
    ))
    mean_dwell = draw(st.floats(1e-4, 5e-2))
    lo = mean_dwell * draw(st.sampled_from([0.0, 0.2, 0.9, 1.0]))
    hi = draw(st.sampled_from([None, 1.0, 1.2, 3.0, 10.0]))
    hi = None if hi is None else mean_dwell * hi
    return counts, t0, mean_dwell, lo, hi


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=60, deadline=None)
@given(problem=allocation_problems())
def test_mean_and_bounds_hold_exactly(policy, problem):
    counts, t0, mean_dwell, lo, hi = problem
    t = allocate_dwell(counts, t0, mean_dwell, policy=policy, min_dwell=lo, max_dwell=hi,
                       seed=1, **options_for(policy, counts, t0))
    assert t.shape == counts.shape[-2:]
    assert t.dtype == np.float64
    assert abs(t.mean() - mean_dwell) <= 1e-9 * mean_dwell
    assert t.min() >= lo
    assert hi is None or t.max() <= hi


def test_every_policy_is_listed_with_a_description():
    listed = list_policies()
    for name in POLICIES:
        assert name in listed and listed[name]


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:48, :64]
    psi = np.stack([
        200 + 1800 * (((yy // 12) + (xx // 16)) % 2),
        50 + 40 * np.sin(xx / 5.0) ** 2 * yy,
    ]).astype(float)
    return psi, rng.poisson(psi * 0.002)


@pytest.mark.parametrize("policy", POLICIES)
def test_reproducible_with_a_seed(scene, policy):
    psi, counts = scene
    opts = options_for(policy, counts, 0.002)
    a = allocate_dwell(counts, 0.002, 0.008, policy=policy, seed=5, **opts)
    b = allocate_dwell(counts, 0.002, 0.008, policy=policy, seed=5, **opts)
    np.testing.assert_array_equal(a, b)


def test_adaptive_policies_favour_bright_pixels(scene):
    psi, counts = scene
    for policy in ("bilevel", "blindspot-sqrt", "oracle"):
        t = allocate_dwell(counts[0], 0.002, 0.008, policy=policy, rates=psi[0])
        bright = psi[0] > 1000
        assert t[bright].mean() > 1.5 * t[~bright].mean(), policy


def test_oracle_is_water_filling_on_the_weighted_truth(scene):
    psi, counts = scene
    w = np.array([0.3, 0.7])
    t = allocate_dwell(counts, 0.002, 0.008, policy="oracle", weights=w, rates=psi)
    level = (0.002 + t) / np.sqrt(w @ psi.reshape(2, -1)).reshape(t.shape)
    np.testing.assert_allclose(level, level.mean(), rtol=1e-9)


def test_two_dimensional_input_equals_one_channel(scene):
    _, counts = scene
    a = allocate_dwell(counts[0], 0.002, 0.008, policy="blindspot-sqrt")
    b = allocate_dwell(counts[:1], 0.002, 0.008, policy="blindspot-sqrt")
    np.testing.assert_array_equal(a, b)


def test_default_weights_equalise_relative_error(scene):
    psi, counts = scene
    w = default_weights(counts, 0.002)
    mean_rate = counts.sum(axis=(1, 2)) / (0.002 * counts[0].size)
    np.testing.assert_allclose(w * mean_rate, (w * mean_rate)[0])
    assert w.sum() == pytest.approx(1.0)
    # Scaling one element's brightness does not change the default allocation.
    scaled = counts * np.array([10, 1])[:, None, None]
    np.testing.assert_allclose(
        allocate_dwell(scaled, 0.002, 0.008, policy="oracle", rates=psi * [[[10]], [[1]]]),
        allocate_dwell(counts, 0.002, 0.008, policy="oracle", rates=psi),
        rtol=1e-9,
    )


def test_explicit_weights_favour_an_element(scene):
    psi, counts = scene
    fav0 = allocate_dwell(counts, 0.002, 0.008, policy="oracle", weights=[1, 0], rates=psi)
    fav1 = allocate_dwell(counts, 0.002, 0.008, policy="oracle", weights=[0, 1], rates=psi)
    assert np.corrcoef(fav0.ravel(), psi[0].ravel())[0, 1] > 0.9
    assert np.corrcoef(fav1.ravel(), psi[1].ravel())[0, 1] > 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(min_dwell=0.009), "min_dwell = 0.009 s exceeds mean_dwell = 0.008 s"),
        (dict(max_dwell=0.005), "max_dwell = 0.005 s is below mean_dwell = 0.008 s"),
        (dict(policy="nope"), "unknown dwell policy 'nope'; choose one of: .*blindspot-sqrt"),
        (dict(weights=[1.0, 2.0, 3.0]), "weights has 3 entries but first_counts has 2 channels"),
        (dict(weights=[-1.0, 2.0]), "weights must be finite, ≥ 0"),
        (dict(policy="oracle"), "needs the true rates"),
        (dict(policy="oracle", rates=np.ones((3, 4, 4))), "rates shape"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    counts = np.ones((2, 4, 4))
    with pytest.raises(ValueError, match=message):
        allocate_dwell(counts, 0.002, 0.008, **kwargs)


@pytest.mark.parametrize(
    ("counts", "t0", "message"),
    [
        (-np.ones((4, 4)), 0.002, "first_counts must be ≥ 0, found -1.0"),
        (np.full((4, 4), np.nan), 0.002, "16 NaN/inf values"),
        (np.ones(4), 0.002, r"\(C, H, W\) or \(H, W\), got shape \(4,\)"),
        (np.ones((1, 0, 4)), 0.002, "must not be empty"),
        (np.array([["a"]]), 0.002, "numeric"),
        (np.ones((4, 4)), np.ones((3, 4)), r"t0 must be a scalar or of shape \(4, 4\)"),
        (np.ones((4, 4)), 0.0, "t0 must be finite and > 0 s, found minimum 0.0"),
    ],
)
def test_bad_inputs_raise_value_error(counts, t0, message):
    with pytest.raises(ValueError, match=message):
        allocate_dwell(counts, t0, 0.008, policy="uniform")
