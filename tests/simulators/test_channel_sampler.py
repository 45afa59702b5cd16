"""The guide-table photon sampler draws exactly what inversion of each component's CDF draws."""

import numpy as np
import pytest
from dwellwise.simulators.detector import GUIDE_BITS, LOW_BITS, ChannelSampler
from dwellwise.simulators.photon_kernel import lookup_channels
from scipy import stats


def awkward_basis(n_chan: int = 4096) -> np.ndarray:
    """Components that exercise both paths: a narrow peak, a flat continuum (a sixth of its
    cells span a channel boundary), a peak on a long tail of tiny channels, and empty
    channels between non-empty ones."""
    x = np.arange(n_chan)
    peak = np.exp(-0.5 * ((x - 640) / 6.4) ** 2)
    flat = (x < 3000).astype(float)  # 1/3000 per channel: boundaries fall inside cells
    tail = np.where(x > 2000, 1e-9, 0.0)
    tail[1500] = 1.0
    gaps = np.zeros(n_chan)
    gaps[[3, 7, 8, 4000]] = [0.5, 1e-7, 0.3, 0.2]
    return np.stack([peak, flat * 3.0, tail, gaps])


def float_inversion(basis: np.ndarray, component: np.ndarray, u53: np.ndarray) -> np.ndarray:
    """Reference: the first channel whose float64 CDF exceeds u = u53 · 2^-53."""
    cdf = np.cumsum(basis / basis.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    u = u53.astype(float) * 2.0**-53  # exact: u53 < 2^53
    out = np.empty(u.size, dtype=np.int64)
    for j in np.unique(component):
        sel = component == j
        out[sel] = np.searchsorted(cdf[j], u[sel], side="right")
    return np.minimum(out, basis.shape[1] - 1)


def test_every_photon_lands_where_float_inversion_puts_it():
    basis = awkward_basis()
    sampler = ChannelSampler(basis)
    assert (sampler._table < 0).mean() > 0.04  # the boundary path is exercised
    component = np.repeat(np.arange(4), 50_000)
    drawn = sampler.draw(component << GUIDE_BITS, np.random.default_rng(11))
    # replay the same random bits: 16-bit cells first, then LOW_BITS bits per boundary photon
    replay = np.random.default_rng(11).bit_generator
    n = component.size
    cell = replay.random_raw((n + 3) // 4).view(np.uint16)[:n].astype(np.uint64) >> np.uint64(
        16 - GUIDE_BITS
    )
    u_first = cell << np.uint64(LOW_BITS)
    u_last = u_first + np.uint64(2**LOW_BITS - 1)
    first = float_inversion(basis, component, u_first)
    last = float_inversion(basis, component, u_last)
    inside = first == last  # the whole cell lies in one channel: any low bits give it
    assert np.array_equal(drawn[inside], first[inside])
    low = replay.random_raw(int((~inside).sum())) >> np.uint64(64 - LOW_BITS)
    exact = float_inversion(basis, component[~inside], u_first[~inside] + low)
    assert np.array_equal(drawn[~inside], exact)
    assert (~inside).sum() > 1000


def test_compiled_lookup_lands_where_float_inversion_puts_it():
    basis = awkward_basis()
    sampler = ChannelSampler(basis)
    rng = np.random.default_rng(12)
    component = np.repeat(np.arange(4), 2**GUIDE_BITS * 3)
    cell = np.tile(np.arange(2**GUIDE_BITS, dtype=np.uint64), 12)
    # every cell at its first and last number and at one random number inside it
    low = np.concatenate(
        [
            np.zeros(4 * 2**GUIDE_BITS, dtype=np.uint64),
            np.full(4 * 2**GUIDE_BITS, 2**LOW_BITS - 1, dtype=np.uint64),
            rng.integers(0, 2**LOW_BITS, 4 * 2**GUIDE_BITS, dtype=np.uint64),
        ]
    )
    order = np.argsort(np.tile(np.repeat(np.arange(4), 2**GUIDE_BITS), 3), kind="stable")
    u = ((cell << np.uint64(LOW_BITS)) + low)[order]
    got = lookup_channels(
        component,
        u,
        sampler._table,
        sampler._mixed_start,
        sampler._threshold,
        sampler._channel_of,
        GUIDE_BITS,
    )
    assert np.array_equal(got, float_inversion(basis, component, u))


def test_compiled_counts_follow_each_component_as_poisson():
    basis = awkward_basis()
    sampler = ChannelSampler(basis)
    n_pix = 4000
    mean = np.zeros((n_pix, 4))
    mean[:, 0] = 0.3  # pooled with the other faint components
    mean[:, 1] = 4.0  # counted by inversion
    mean[:, 3] = 60.0  # counted by transformed rejection
    out = np.full((n_pix, basis.shape[1]), 7, dtype=np.uint32)  # overwritten, not added to
    sampler.count_poisson(mean, np.random.default_rng(3), out)
    p = basis / basis.sum(axis=1, keepdims=True)
    expected = mean @ p  # (N, E) expected counts
    total = out.sum(axis=1)
    assert total.mean() == pytest.approx(64.3, rel=0.01)
    assert total.var() / total.mean() == pytest.approx(1.0, abs=0.08)
    observed = out.sum(axis=0).astype(float)
    exp = expected.sum(axis=0)
    big = exp >= 5
    obs_pooled = np.append(observed[big], observed[~big].sum())
    exp_pooled = np.append(exp[big], exp[~big].sum())
    keep = exp_pooled > 0
    obs_pooled, exp_pooled = obs_pooled[keep], exp_pooled[keep]
    exp_pooled *= obs_pooled.sum() / exp_pooled.sum()
    assert stats.chisquare(obs_pooled, exp_pooled).pvalue > 1e-3
    assert np.all(observed[exp == 0] == 0)  # never a channel of zero probability


def test_compiled_counts_are_reproducible_from_the_seed():
    sampler = ChannelSampler(awkward_basis())
    mean = np.random.default_rng(0).uniform(0, 20, (50, 4))

    def run(seed: int) -> np.ndarray:
        out = np.empty((50, 4096), dtype=np.uint32)
        return sampler.count_poisson(mean, np.random.default_rng(seed), out)

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_compiled_counts_refuse_means_that_are_not_photon_counts(bad):
    sampler = ChannelSampler(awkward_basis())
    mean = np.ones((2, 4))
    mean[1, 2] = bad
    with pytest.raises(ValueError, match="finite and >= 0"):
        sampler.count_poisson(mean, np.random.default_rng(0), np.empty((2, 4096), np.uint32))


def test_channel_frequencies_follow_each_component():
    basis = awkward_basis()
    sampler = ChannelSampler(basis)
    rng = np.random.default_rng(5)
    for j in range(basis.shape[0]):
        channels = sampler.sample(j, 200_000, rng)
        assert channels.dtype == np.int32
        p = basis[j] / basis[j].sum()
        assert np.all(p[channels] > 0)  # never a channel of zero probability
        # chi-square on channels with >= 5 expected photons, the rest pooled
        expected = 200_000 * p
        big = expected >= 5
        observed = np.bincount(channels, minlength=p.size)
        obs = np.append(observed[big], observed[~big].sum())
        exp = np.append(expected[big], expected[~big].sum())
        keep = exp > 0
        assert stats.chisquare(obs[keep], exp[keep]).pvalue > 1e-3


def test_wide_axes_and_bad_input():
    wide = np.ones((2, 40_000))
    wide[1, :39_000] = 0.0
    sampler = ChannelSampler(wide)
    channels = sampler.sample(1, 10_000, np.random.default_rng(0))
    assert channels.min() >= 39_000 and channels.max() < 40_000
    with pytest.raises(IndexError):
        sampler.sample(2, 10, np.random.default_rng(0))
    with pytest.raises(ValueError):
        ChannelSampler(-np.ones((1, 10)))


def test_the_kernel_imports_and_counts_where_no_cache_can_be_written():
    import os
    import subprocess
    import sys

    # a locator that never applies to a module file: numba finds no place for its cache
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "IPythonCacheLocator"}
    code = (
        "import numpy as np\n"
        "from dwellwise.simulators.detector import ChannelSampler\n"
        "s = ChannelSampler(np.ones((1, 64)))\n"
        "out = s.count_poisson(np.full((3, 1), 50.0), np.random.default_rng(0),"
        " np.empty((3, 64), np.uint32))\n"
        "print(int(out.sum()))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 100 < int(run.stdout) < 200
