"""Blind-spot estimation and the bias it avoids."""

import numpy as np
import pytest
from dwellwise.models.blindspot import (
    allocation_loss,
    blindspot_rate,
    estimate_rates,
    expected_anscombe,
)
from dwellwise.models.metrics import bias, pooled_estimate
from dwellwise.planners import allocate_dwell, waterfill_sqrt


@pytest.mark.parametrize("sigma", [0.6, 1.6, 4.0])
def test_estimate_ignores_the_pixel_itself(sigma):
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, (20, 30)).astype(float)
    t0 = rng.uniform(0.001, 0.003, counts.shape)
    before = blindspot_rate(counts, t0, sigma)
    for i, j in [(0, 0), (10, 15), (19, 29), (0, 17)]:
        bumped = counts.copy()
        bumped[i, j] += 1000
        after = blindspot_rate(bumped, t0, sigma)
        assert after[i, j] == pytest.approx(before[i, j], rel=1e-12, abs=1e-9)
        n = (i, j + 1 if j + 1 < 30 else j - 1)
        assert after[n] > before[n]  # neighbours do see it


def test_flat_map_is_estimated_without_bias_up_to_the_border():
    rng = np.random.default_rng(1)
    counts = rng.poisson(3.0, (200, 16, 16))
    rates, _ = estimate_rates(counts, 0.002, sigmas=(1.0,))
    np.testing.assert_allclose(rates.mean(axis=0), 1500.0, rtol=0.05)


def test_sigma_selection_prefers_wide_kernels_on_flat_maps_and_narrow_on_detail():
    rng = np.random.default_rng(2)
    flat = rng.poisson(2.0, (1, 64, 64))
    yy, xx = np.mgrid[:64, :64]
    blocks = rng.poisson(400.0 * ((yy // 4 + xx // 4) % 2))[None]
    _, s_flat = estimate_rates(flat, 1.0)
    _, s_stripes = estimate_rates(blocks, 1.0)
    assert s_flat[0] >= 2.5
    assert s_stripes[0] <= 1.0


def _spots(seed=5, shape=(48, 48)):
    """Five bright Gaussian spots (6000 counts/s) on a faint 20 counts/s background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    psi = np.full(shape, 20.0)
    for _ in range(5):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        psi += 6000.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.5**2))
    return psi


def test_allocation_loss_is_an_unbiased_estimate_of_the_second_pass_variance():
    psi = _spots()
    t0, mean_dwell = 0.002, 0.008
    dwell = waterfill_sqrt(psi, t0, mean_dwell)  # any map chosen without the counts below
    rng = np.random.default_rng(0)
    draws = [allocation_loss(rng.poisson(psi * t0), t0, dwell) for _ in range(400)]
    truth = np.mean(psi / (t0 + dwell))
    assert np.mean(draws) == pytest.approx(truth, rel=0.01)
    # Several channels: the weighted sum of the per-channel losses.
    x = np.random.default_rng(1).poisson(np.stack([psi, 2 * psi]) * t0)
    both = allocation_loss(x, t0, dwell, weights=np.array([0.3, 0.7]))
    assert both == pytest.approx(
        0.3 * allocation_loss(x[0], t0, dwell) + 0.7 * allocation_loss(x[1], t0, dwell)
    )


def test_allocation_criterion_widens_the_kernel_on_faint_sparse_maps_and_allocates_better():
    """At 0.35 counts per pixel the Anscombe loss picks σ = 0.7 px, which leaves most pixels with
    no counts in reach and piles the dwell onto a few noisy ones; the allocation loss picks a
    wider kernel whose dwell map leaves a lower true second-pass variance, in every draw."""
    psi = _spots()
    t0, mean_dwell = 0.002, 0.008

    def allocate(score, t0_map):
        return waterfill_sqrt(score, t0_map, mean_dwell)

    def variance(rate):
        return np.mean(psi / (t0 + allocate(rate, t0)))

    for seed in range(3):
        x = np.random.default_rng(seed).poisson(psi * t0)[None]
        by_anscombe, s_a = estimate_rates(x, t0)
        by_allocation, s_l = estimate_rates(x, t0, allocate=allocate)
        assert s_l[0] > s_a[0]
        assert variance(by_allocation[0]) < 0.9 * variance(by_anscombe[0])
    assert variance(np.full_like(psi, psi.mean())) > 2 * variance(by_allocation[0])  # ≫ uniform


def test_allocation_criterion_falls_back_to_uniform_on_a_flat_map():
    """On a flat map no allocation beats uniform: the candidate σ = inf, the global mean, gives
    the uniform map exactly (a constant estimate allocates the same dwell whatever the counts)."""
    x = np.random.default_rng(3).poisson(2.0, (1, 40, 40))
    t = allocate_dwell(x, 0.002, 0.008, policy="blindspot-sqrt")
    np.testing.assert_allclose(t, 0.008, rtol=1e-12)


def test_a_map_too_faint_to_allocate_from_gets_the_uniform_map():
    """Twelve bright pixels (10 000 counts/s) on a 5 counts/s background: about 80 counts in the
    whole first pass. No kernel beats uniform there, and the criterion sees it."""
    rng = np.random.default_rng(8)
    psi = np.full((64, 64), 5.0)
    psi.flat[rng.choice(psi.size, 12, replace=False)] = 1e4
    for seed in range(3):
        x = np.random.default_rng(seed).poisson(psi * 0.002)
        t = allocate_dwell(x, 0.002, 0.008, policy="blindspot-sqrt")
        np.testing.assert_allclose(t, 0.008, rtol=1e-12)


def test_channels_of_weight_zero_do_not_change_the_allocation():
    psi = _spots()
    rng = np.random.default_rng(2)
    x = rng.poisson(np.stack([psi, psi[::-1], psi.T]) * 0.002)
    a = allocate_dwell(x, 0.002, 0.008, policy="blindspot-sqrt", weights=[1.0, 0.0, 0.0])
    noisy = x.copy()
    noisy[1:] = rng.poisson(500.0, x[1:].shape)
    b = allocate_dwell(noisy, 0.002, 0.008, policy="blindspot-sqrt", weights=[1.0, 0.0, 0.0])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, allocate_dwell(x[0], 0.002, 0.008, policy="blindspot-sqrt"))


def test_expected_anscombe_table_matches_pmf_sums():
    from scipy import stats

    lam = np.array([0.0, 0.01, 0.7, 6.0, 90.0, 500.0])
    k = np.arange(3000)
    exact = [np.sum(stats.poisson.pmf(k, m) * 2 * np.sqrt(k + 0.375)) for m in lam]
    np.testing.assert_allclose(expected_anscombe(lam), exact, atol=1e-4)


def test_blindspot_allocation_is_unbiased_while_own_pixel_sqrt_is_biased_low():
    """Monte Carlo at 1-3 counts per pixel in the first pass (t0 = 2 ms, 500-1500 counts/s)."""
    yy, xx = np.mgrid[:160, :160]
    psi = 1000.0 + 500.0 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    t0, mean_dwell = 0.002, 0.008
    rng = np.random.default_rng(11)
    biases = {"blindspot": [], "naive": []}
    for _ in range(4):
        x0 = rng.poisson(psi * t0)
        dwell = {
            "blindspot": allocate_dwell(x0, t0, mean_dwell, policy="blindspot-sqrt"),
            "naive": waterfill_sqrt(x0 / t0, t0, mean_dwell),  # uses the pixel's own count
        }
        for name, t in dwell.items():
            x1 = rng.poisson(psi * t)
            biases[name].append(bias(pooled_estimate(x0, x1, t0, t), psi))
    assert abs(np.mean(biases["blindspot"])) < 0.01
    assert np.mean(biases["naive"]) < -0.02


@pytest.mark.slow
def test_blindspot_allocates_a_megapixel_eight_element_first_pass_in_two_seconds():
    import time

    rng = np.random.default_rng(4)
    counts = rng.poisson(rng.gamma(1.0, 2.0, (8, 1024, 1024)))
    best = np.inf
    for _ in range(2):  # best of two: the first call also builds a lookup table
        start = time.perf_counter()
        t = allocate_dwell(counts, 0.002, 0.008, policy="blindspot-sqrt")
        best = min(best, time.perf_counter() - start)
    assert t.shape == (1024, 1024)
    assert best < 2.0
