"""Counting statistics and timing of the simulated SDD."""

import numpy as np
import pytest
from dwellwise.simulators.detector import PoissonSDD
from dwellwise.simulators.scenes import load_scene
from scipy import stats


@pytest.fixture(scope="module")
def scene():
    return load_scene("astronaut", (24, 24), seed=3)


def test_two_simulations_differ_as_poisson_noise_should(scene):
    det = PoissonSDD(scene.model)
    rates = scene.component_rates().reshape(scene.model.n_components, -1)
    a = det.acquire(rates, live_time=0.05, rng=np.random.default_rng(1)).counts.astype(float)
    b = det.acquire(rates, live_time=0.05, rng=np.random.default_rng(2)).counts.astype(float)
    mean = scene.model.expected_spectra(rates) * 0.05
    ratio = np.var(a - b) / np.mean(2 * mean)  # var(A - B) = mean(A) + mean(B), pooled
    assert ratio == pytest.approx(1.0, abs=0.03)
    assert a.sum() / mean.sum() == pytest.approx(1.0, abs=0.01)


def test_live_time_never_exceeds_real_time(scene):
    det = PoissonSDD(scene.model, dead_time_s=1e-6)
    rates = scene.component_rates().reshape(scene.model.n_components, -1)
    for kwargs in ({"live_time": 0.01}, {"real_time": 0.01}):
        acq = det.acquire(rates, rng=np.random.default_rng(0), **kwargs)
        assert np.all(acq.live_time <= acq.real_time)
        n = rates.sum(axis=0)
        assert np.allclose(acq.real_time, acq.live_time * (1 + n * 1e-6))


def test_pile_up_moves_counts_to_the_sum_peak(scene):
    rates = scene.component_rates().reshape(scene.model.n_components, -1)[:, :50] * 20
    clean = PoissonSDD(scene.model).acquire(rates, live_time=0.1, rng=np.random.default_rng(0))
    piled = PoissonSDD(scene.model, pileup_window_s=5e-7).acquire(
        rates, live_time=0.1, rng=np.random.default_rng(0)
    )
    assert piled.counts.sum() < clean.counts.sum()
    high = scene.model.axis.channel_of(25.0)
    assert piled.counts[:, high:].sum() > clean.counts[:, high:].sum()


def test_same_seed_same_spectra(scene):
    det = PoissonSDD(scene.model)
    rates = scene.component_rates(slice(0, 2)).reshape(scene.model.n_components, -1)
    a = det.acquire(rates, live_time=0.01, rng=np.random.default_rng(7)).counts
    b = det.acquire(rates, live_time=0.01, rng=np.random.default_rng(7)).counts
    assert np.array_equal(a, b)


def test_every_pixel_gets_its_own_poisson_counts(scene):
    det = PoissonSDD(scene.model)
    rates = scene.component_rates().reshape(scene.model.n_components, -1)
    live = np.linspace(0.01, 0.2, rates.shape[1])  # per-pixel live times, all different
    mean = det.sampler.area @ rates * live
    repeats = [
        det.acquire(rates, live_time=live, rng=np.random.default_rng(s)).counts.sum(axis=1)
        for s in range(40)
    ]
    z = (np.mean(repeats, axis=0) - mean) / np.sqrt(mean / len(repeats))
    half = rates.shape[1] // 2  # short dwells (faint lines pooled) and long ones
    for block in (slice(0, half), slice(half, None)):
        assert abs(z[block].mean()) < 4 / np.sqrt(z[block].size)
        assert np.var(repeats, axis=0)[block].sum() / mean[block].sum() == pytest.approx(1, abs=0.1)


@pytest.mark.parametrize("live", [0.02, 2.0])
def test_public_scipy_path_gives_the_same_spectra(scene, monkeypatch, live):
    import dwellwise.simulators.detector as detector

    det = PoissonSDD(scene.model)
    rates = scene.component_rates(slice(0, 4)).reshape(scene.model.n_components, -1)
    fast = det.acquire(rates, live_time=live, rng=np.random.default_rng(3)).counts
    monkeypatch.setattr(detector, "_csr_todense", None)
    public = det.acquire(rates, live_time=live, rng=np.random.default_rng(3)).counts
    assert public.dtype == np.uint32 and np.array_equal(fast, public)
    assert fast.sum() > 1000


def test_components_outside_the_axis_and_empty_pixels(scene):
    det = PoissonSDD(scene.model)
    rates = np.zeros((scene.model.n_components, 3))
    outside = np.flatnonzero(det.sampler.area == 0)
    rates[outside, 1] = 1e6  # photons of components that never land inside the axis
    rates[:, 2] = 100.0
    acq = det.acquire(rates, live_time=0.1, rng=np.random.default_rng(0))
    assert acq.counts[:2].sum() == 0 and acq.counts[2].sum() > 0
    assert acq.counts.shape == (3, scene.model.axis.channels)
    assert det.acquire(rates[:, :0], live_time=0.1, rng=np.random.default_rng(0)).counts.shape == (
        0,
        scene.model.axis.channels,
    )


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_rates_and_times_are_refused(scene, bad):
    det = PoissonSDD(scene.model)
    rates = np.ones((scene.model.n_components, 2))
    wrong = rates.copy()
    wrong[3, 1] = bad
    with pytest.raises(ValueError, match="component rates"):
        det.acquire(wrong, live_time=0.01, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="acquisition times"):
        det.acquire(rates, live_time=np.array([0.01, bad]), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="acquisition times"):
        det.acquire(rates, real_time=np.array([bad, 0.01]), rng=np.random.default_rng(0))


def _brightest_pixel_repeated(scene, n: int) -> np.ndarray:
    rates = scene.component_rates().reshape(scene.model.n_components, -1)
    return np.repeat(rates[:, [np.argmax(rates.sum(axis=0))]], n, axis=1)


@pytest.mark.parametrize("per_channel", [True, False])
def test_heavy_pixels_counted_per_channel_or_per_photon_are_poisson(scene, per_channel):
    """A pixel with ~37k counts: with the cores on, its strong lines are counted channel by
    channel (both core levels) and only their tails photon by photon; either way each channel
    is Poisson with its expected count, independently of the others."""
    det = PoissonSDD(scene.model)
    rates = _brightest_pixel_repeated(scene, 1500)
    mean = (det.sampler.area * rates.T * 1.0).copy()
    dense = det._dense_entries(mean)
    if per_channel:
        assert dense is not None and set(dense[1]) == {0, 1}
    else:
        det._dense_from = np.full_like(det._dense_from, np.inf)
        assert det._dense_entries(mean) is None
    counts = det.acquire(rates, live_time=1.0, rng=np.random.default_rng(9)).counts
    expected = scene.model.expected_spectra(rates[:, 0])  # counts per channel in 1 s
    counts = counts.astype(float)
    n = counts.shape[0]
    seen = expected >= 1
    z = (counts[:, seen].mean(axis=0) - expected[seen]) / np.sqrt(expected[seen] / n)
    assert stats.chi2.sf(np.sum(z**2), df=seen.sum()) > 1e-3  # means right in every channel
    rich = expected >= 30
    variance = counts[:, rich].var(axis=0, ddof=1)
    assert variance.sum() / expected[rich].sum() == pytest.approx(1.0, abs=0.05)
    totals = counts.sum(axis=1)
    assert totals.var(ddof=1) / expected.sum() == pytest.approx(1.0, abs=0.12)
    peak = np.argsort(expected)[-2:]  # the two strongest channels: uncorrelated
    assert abs(np.corrcoef(counts[:, peak[0]], counts[:, peak[1]])[0, 1]) < 0.1
    assert np.all(counts[:, expected == 0] == 0)
