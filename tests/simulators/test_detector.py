"""Counting statistics and timing of the simulated SDD."""

import numpy as np
import pytest
from dwellwise.simulators.detector import PoissonSDD
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
