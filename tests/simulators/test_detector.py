"""Counting statistics and timing of the simulated SDD."""

import numpy as np
import pytest
from dwellwise.simulators.detector import BLOCK_PIXELS, PoissonSDD
from dwellwise.simulators.scenes import load_scene


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


def test_pixels_in_every_block_get_their_own_poisson_counts(scene):
    det = PoissonSDD(scene.model)
    rates = scene.component_rates().reshape(scene.model.n_components, -1)
    assert rates.shape[1] > BLOCK_PIXELS  # the second block is exercised
    live = np.linspace(0.01, 0.2, rates.shape[1])  # per-pixel live times, all different
    mean = det.sampler.area @ rates * live
    repeats = [
        det.acquire(rates, live_time=live, rng=np.random.default_rng(s)).counts.sum(axis=1)
        for s in range(40)
    ]
    z = (np.mean(repeats, axis=0) - mean) / np.sqrt(mean / len(repeats))
    for block in (slice(0, BLOCK_PIXELS), slice(BLOCK_PIXELS, None)):
        assert abs(z[block].mean()) < 4 / np.sqrt(z[block].size)
        assert np.var(repeats, axis=0)[block].sum() / mean[block].sum() == pytest.approx(1, abs=0.1)


def test_public_scipy_path_gives_the_same_spectra(scene, monkeypatch):
    import dwellwise.simulators.detector as detector

    det = PoissonSDD(scene.model)
    rates = scene.component_rates(slice(0, 4)).reshape(scene.model.n_components, -1)
    fast = det.acquire(rates, live_time=0.02, rng=np.random.default_rng(3)).counts
    monkeypatch.setattr(detector, "_csr_todense", None)
    public = det.acquire(rates, live_time=0.02, rng=np.random.default_rng(3)).counts
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
