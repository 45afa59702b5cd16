"""Compiled photon counting: Poisson draws, channel draws and histogramming in one pass.

One call fills ``out[p]`` with the spectrum of pixel ``p`` by drawing, for each of its
components ``j``, ``n ~ Poisson(mean[p, j])`` photons and each photon's channel from the
component's guide table (see :class:`~dwellwise.simulators.detector.ChannelSampler`). Doing
all three steps pixel by pixel in compiled code keeps the pixel's spectrum in cache and makes
no intermediate arrays, which is what numpy cannot do.

The random numbers come from xoshiro256** (Blackman & Vigna), whose 256-bit state the caller
seeds from its ``numpy.random.Generator``; the kernel holds it in registers and hands the state
back, so results are reproducible from the Generator's seed. Poisson counts use inversion by
sequential search below a mean of 10 and Hörmann's transformed rejection with squeeze (PTRS,
1993, the method numpy uses) above it: both are exact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import int64, njit, uint64

SEARCH_BELOW = 10.0
"""Poisson means below which counts are drawn by inversion (cost grows with the mean)."""
POOLED_BELOW = 1.0
"""Expected photons below which a pixel's components share one Poisson draw."""
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


def _compiled(**options):
    """``njit`` with an on-disk cache of the machine code where numba finds a writable place
    for one (beside the module, or ``NUMBA_CACHE_DIR``, or the user's cache directory), else
    without: a read-only install under a hardened service then compiles again at each start
    (~1 s) instead of failing to import."""

    def wrap(fn):
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return njit(**options)(fn)

    return wrap


@njit(inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(inline="always")
def _next(s0, s1, s2, s3):
    """xoshiro256**: one 64-bit output and the advanced state."""
    out = _rotl(s1 * uint64(5), 7) * uint64(9)
    t = s1 << uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return out, s0, s1, s2, s3


@njit(inline="always")
def _uniform(s0, s1, s2, s3):
    """A float64 uniform on the 2^-53 grid of [0, 1) and the advanced state."""
    r, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
    return float(r >> uint64(11)) * _TO_UNIT, s0, s1, s2, s3


@njit
def _poisson(lam, s0, s1, s2, s3):
    """One Poisson(lam) count and the advanced state."""
    if lam < SEARCH_BELOW:
        u, s0, s1, s2, s3 = _uniform(s0, s1, s2, s3)
        p = math.exp(-lam)
        cdf = p
        k = 0
        while u > cdf and p > 0.0:
            k += 1
            p *= lam / k
            cdf += p
        return int64(k), s0, s1, s2, s3
    log_lam = math.log(lam)
    b = 0.931 + 2.53 * math.sqrt(lam)
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u, s0, s1, s2, s3 = _uniform(s0, s1, s2, s3)
        v, s0, s1, s2, s3 = _uniform(s0, s1, s2, s3)
        u -= 0.5
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= v_r:
            return int64(k), s0, s1, s2, s3
        if k < 0 or (us < 0.013 and v > us):
            continue
        accept = -lam + k * log_lam - math.lgamma(k + 1.0)
        if math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b) <= accept:
            return int64(k), s0, s1, s2, s3


@njit(inline="always")
def _boundary_channel(j, u, code, tables):
    """Channel of a photon of component ``j`` with 53-bit number ``u`` whose guide cell spans a
    channel boundary (guide-table ``code`` = ``-1 - m``): a scan of that cell's few CDF entries
    for the first one above ``u``."""
    _, mixed_start, threshold, channel_of = tables
    key = (uint64(j) << uint64(53)) + u
    i = mixed_start[-1 - code]
    while threshold[i] <= key:
        i += 1
    return channel_of[i]


@njit(inline="always")
def _channel(j, u, tables, guide_bits):
    """Channel of a photon of component ``j`` whose uniform number is ``u · 2^-53``: the first
    channel whose integer CDF exceeds ``u`` (``u`` a uint64 below 2^53). ``tables`` is
    ``(table, mixed_start, threshold, channel_of)`` (:func:`count_photons`)."""
    channel = tables[0][(j << guide_bits) + int64(u >> uint64(53 - guide_bits))]
    return channel if channel >= 0 else _boundary_channel(j, u, channel, tables)


@_compiled(nogil=True)
def lookup_channels(component, u, table, mixed_start, threshold, channel_of, guide_bits):
    """:func:`_channel` for arrays of components and 53-bit numbers (for tests)."""
    out = np.empty(u.size, np.int64)
    tables = (table, mixed_start, threshold, channel_of)
    for i in range(u.size):
        out[i] = _channel(component[i], u[i], tables, guide_bits)
    return out


@njit(inline="always")
def _add_photons(n, j, row, tables, guide_bits, rand):
    """Add ``n`` photons of component ``j`` to ``row``; ``rand`` is the random state
    ``(bits, n_bits, s0, s1, s2, s3)``: unused random bits, how many, and the generator's.

    A photon's guide cell takes ``guide_bits`` bits, so one 64-bit number serves several
    photons; only a photon whose cell spans a channel boundary (~3 % on a painting) draws the
    53 − guide_bits bits below its cell, from a fresh number."""
    bits, n_bits, s0, s1, s2, s3 = rand
    low_bits = uint64(53 - guide_bits)
    for _ in range(n):
        if n_bits < guide_bits:
            bits, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
            n_bits = 64
        cell = bits >> uint64(64 - guide_bits)
        bits <<= uint64(guide_bits)
        n_bits -= guide_bits
        channel = tables[0][(j << guide_bits) + int64(cell)]
        if channel < 0:
            low, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
            u = (cell << low_bits) + (low >> (uint64(11) + uint64(guide_bits)))
            channel = _boundary_channel(j, u, channel, tables)
        row[channel] += 1
    return bits, n_bits, s0, s1, s2, s3


@_compiled(nogil=True)
def count_photons(mean, table, mixed_start, threshold, channel_of, guide_bits, state, out, clear):
    """Write the Poisson spectra of ``mean`` into ``out``.

    mean: ``(N, J)`` float64 expected photons per pixel and component (inside the axis).
    table: ``(J << guide_bits,)`` guide table; a cell's channel, or ``-1 - m`` for the
    ``m``-th cell that spans a channel boundary.
    mixed_start: ``(M,)`` where the scan of each boundary cell starts in ``threshold``.
    threshold, channel_of: every component's integer CDF offset by ``component << 53`` (one
    sorted array) and the channel of each entry.
    state: ``(4,)`` uint64 xoshiro256** state, advanced in place (not all zero).
    out: ``(N, E)`` uint32 spectra: overwritten if ``clear``, else added to.

    Components whose mean is under :data:`POOLED_BELOW` are drawn as one Poisson count of
    their summed mean, each photon then going to one of them in proportion to its mean: the
    same distribution (a sum of independent Poisson processes, split again), with one
    Poisson draw instead of many for the faint lines of a pixel.
    """
    n_pix, n_comp = mean.shape
    rand = (uint64(0), int64(0), state[0], state[1], state[2], state[3])
    pooled = np.empty(n_comp, np.int64)
    pooled_cdf = np.empty(n_comp, np.float64)
    tables = (table, mixed_start, threshold, channel_of)
    for p in range(n_pix):
        row = out[p]
        if clear:
            row[:] = 0
        n_pooled = 0
        pooled_mean = 0.0
        for j in range(n_comp):
            m = mean[p, j]
            if m <= 0.0:
                continue
            if m < POOLED_BELOW:
                pooled_mean += m
                pooled[n_pooled] = j
                pooled_cdf[n_pooled] = pooled_mean
                n_pooled += 1
                continue
            bits, n_bits, s0, s1, s2, s3 = rand
            n, s0, s1, s2, s3 = _poisson(m, s0, s1, s2, s3)
            rand = _add_photons(n, j, row, tables, guide_bits, (bits, n_bits, s0, s1, s2, s3))
        if n_pooled == 0:
            continue
        bits, n_bits, s0, s1, s2, s3 = rand
        n, s0, s1, s2, s3 = _poisson(pooled_mean, s0, s1, s2, s3)
        for _ in range(n):
            x, s0, s1, s2, s3 = _uniform(s0, s1, s2, s3)
            x *= pooled_mean
            c = 0
            while c < n_pooled - 1 and pooled_cdf[c] <= x:
                c += 1
            bits, n_bits, s0, s1, s2, s3 = _add_photons(
                1, pooled[c], row, tables, guide_bits, (bits, n_bits, s0, s1, s2, s3)
            )
        rand = (bits, n_bits, s0, s1, s2, s3)
    state[0], state[1], state[2], state[3] = rand[2], rand[3], rand[4], rand[5]


def seed_state(rng: np.random.Generator) -> np.ndarray:
    """A fresh xoshiro256** state from ``rng`` (advancing it), ``(4,)`` uint64, never all zero."""
    state = rng.bit_generator.random_raw(4)
    if not state.any():  # pragma: no cover - probability 2^-256
        state[0] = 1
    return state
