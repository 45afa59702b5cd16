"""Poisson counting of full spectra by a silicon drift detector, with dead time and pile-up.

Counting is done photon by photon, which costs O(counts) rather than O(channels): for each pixel
and component the number of recorded photons is Poisson(rate · live time), and each photon's
channel is drawn exactly from its component's spectrum with a guide table (Chen & Asau). A
compiled kernel (:mod:`~dwellwise.simulators.photon_kernel`) does the draws and the counting
pixel by pixel, so each spectrum is written while it sits in cache and nothing else is
allocated: a 4096-channel spectrum with a few hundred counts costs a few microseconds, of which
writing its 16 KiB to memory is a fair part.

Heavy pixels (long dwells) switch component by component to per-channel counting where that is
cheaper: the channels of a component's *core* (probability ≥ 2^-6 or 2^-10) get independent
Poisson(m · p_k) counts, and only the photons of its tail, Poisson(m · tail share), are drawn one
by one from the tail's own distribution. Splitting a Poisson process by channel makes this the
same distribution as drawing all m photons one by one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from dwellwise.simulators.photon_kernel import count_photons, seed_state
from dwellwise.simulators.spectra import SpectrumModel

try:  # the compiled kernel behind ``csr_matrix.toarray``, called without its extra zero fill
    from scipy.sparse._sparsetools import csr_todense as _csr_todense
except ImportError:  # pragma: no cover - a SciPy that moved it: the public path below is used
    _csr_todense = None

GUIDE_BITS = 11
"""log2 of the guide-table size per component (2 KiB: every component's table stays in
cache; about 3 % of a painting's photons then fall in a cell that spans a channel boundary)."""
UNIFORM_BITS = 53
"""Bits of a photon's uniform number: the resolution of a float64 uniform in [0, 1)."""
LOW_BITS = UNIFORM_BITS - GUIDE_BITS
"""Bits of the uniform number below the guide-table cell."""
MIXED = -1
"""Guide-table code of the first cell that spans a channel boundary (the ``m``-th is
``MIXED - m``)."""
MAX_COMPONENTS = 2047
"""Most components a sampler takes: component offsets and 53-bit thresholds share a uint64."""
FRESH_PAGES_FROM = 64 << 20
"""Bytes from which an output array comes straight from the OS (glibc maps anything above
32 MiB), already zero."""
DEFAULT_DEAD_TIME_S = 1e-6
"""Non-paralyzable dead time per recorded event, seconds."""
CORE_PROBABILITIES = (2.0**-6, 2.0**-10)
"""Channel probabilities from which a component's channels form a *core* that heavy pixels
count channel by channel (one Poisson draw per channel) instead of photon by photon."""
CHANNEL_COST_PHOTONS = 20.0
"""Cost of one per-channel Poisson draw and its bookkeeping, in photon draws (~60 ns against
~3 ns for a photon in the compiled kernel, measured)."""
CORE_CALL_PHOTONS = 60_000.0
"""Fixed cost of counting one core level in one call, in photon draws (~20 numpy calls and two
scatters, ~0.2 ms)."""


@dataclass(frozen=True)
class Acquisition:
    """Spectra recorded for a block of pixels."""

    counts: np.ndarray
    """``(N, E)`` uint32 counts."""
    live_time: np.ndarray
    """``(N,)`` live time, seconds."""
    real_time: np.ndarray
    """``(N,)`` real time, seconds."""


class ChannelSampler:
    """Draws channel indices exactly from each row of a non-negative ``(J, E)`` basis.

    A photon's channel is the first ``k`` with ``u < CDF[k]`` for a uniform ``u`` on the
    2^-53 grid of float64 uniforms; comparing ``u · 2^53`` with ``ceil(CDF · 2^53)`` in
    integers makes that choice exactly. Each component has a guide table of 2^GUIDE_BITS equal
    cells of ``u``: the high GUIDE_BITS bits of ``u`` pick a cell, and a cell that lies inside
    one channel answers directly (~97 % of a painting's photons). A cell that spans a channel
    boundary draws the LOW_BITS bits of ``u`` below it and looks them up in that cell's stretch
    of one array holding every component's integer CDF (offset by component, channels of zero
    probability left out). The result follows each component's distribution exactly, as
    inversion of its float64 CDF does.
    """

    def __init__(self, basis: np.ndarray) -> None:
        basis = np.asarray(basis, dtype=float)
        if basis.ndim != 2 or np.any(basis < 0) or not np.all(np.isfinite(basis)):
            raise ValueError("the basis must be a finite, non-negative (J, E) array")
        n_comp, n_chan = basis.shape
        if n_comp > MAX_COMPONENTS:
            raise ValueError(f"at most {MAX_COMPONENTS} components, got {n_comp}")
        self.area = basis.sum(axis=1)
        """Fraction of each component's photons that land inside the axis."""
        self._n_chan = n_chan
        safe = np.where(self.area > 0, self.area, 1.0)[:, None]
        cdf = np.cumsum(basis / safe, axis=1)
        cdf[:, -1] = 1.0
        threshold = np.ceil(cdf * 2.0**UNIFORM_BITS).astype(np.uint64)
        cell_lo = np.arange(2**GUIDE_BITS, dtype=np.uint64) << np.uint64(LOW_BITS)
        cell_hi = cell_lo + np.uint64(2**LOW_BITS - 1)
        table = np.empty((n_comp, 2**GUIDE_BITS), dtype=np.int64)
        offsets, channels, starts = [], [], []
        n_support = 0
        for j, row in enumerate(threshold):
            lo = np.searchsorted(row, cell_lo, side="right")
            hi = np.searchsorted(row, cell_hi, side="right")
            mixed = lo != hi
            support = np.flatnonzero(np.diff(row, prepend=np.uint64(0)) > 0)
            start = n_support + np.searchsorted(support, lo[mixed])
            table[j] = lo
            table[j, mixed] = MIXED - sum(s.size for s in starts) - np.arange(start.size)
            starts.append(start)
            offsets.append((np.uint64(j) << np.uint64(UNIFORM_BITS)) + row[support])
            channels.append(support)
            n_support += support.size
        small = max(n_chan, -table.min()) <= np.iinfo(np.int16).max
        self._table = table.ravel().astype(np.int16 if small else np.int32)
        """Guide table ``(J << GUIDE_BITS,)``: a cell's channel, or ``-1 - m`` for the ``m``-th cell
        that spans a channel boundary (any negative value is such a cell)."""
        self._mixed_start = np.concatenate(starts).astype(np.int64)
        """Where the scan of each boundary cell starts in ``_threshold``."""
        self._threshold = np.concatenate(offsets)
        """Every component's integer CDF at its channels of non-zero probability, offset by
        ``component << 53``: one sorted array for all components."""
        self._channel_of = np.concatenate(channels).astype(np.int32)
        """Channel of each entry of ``_threshold``."""

    @property
    def n_components(self) -> int:
        return self.area.size

    def sample(self, component: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` channel indices of photons of one component, ``(n,)`` int32."""
        if not 0 <= component < self.n_components:
            raise IndexError(f"component {component} out of range 0..{self.n_components - 1}")
        return self.draw(np.full(n, component << GUIDE_BITS, dtype=np.intp), rng)

    def count_poisson(
        self, mean: np.ndarray, rng: np.random.Generator, out: np.ndarray, *, clear: bool = True
    ) -> np.ndarray:
        """Put into ``out[p]`` the spectrum of Poisson(``mean[p, j]``) photons of each component
        ``j``, for every pixel ``p``: ``mean`` is ``(N, J)`` float64 photons, ``out`` ``(N, E)``
        uint32 C-contiguous, overwritten (added to if not ``clear``). Compiled
        (:mod:`~dwellwise.simulators.photon_kernel`); returns ``out``."""
        mean = np.ascontiguousarray(mean, dtype=np.float64)
        if mean.shape != (out.shape[0], self.n_components) or out.shape[1] != self._n_chan:
            raise ValueError(
                f"mean must be (N, {self.n_components}) and out (N, {self._n_chan}), "
                f"got {mean.shape} and {out.shape}"
            )
        if out.dtype != np.uint32 or not out.flags.c_contiguous:
            raise ValueError("out must be a C-contiguous uint32 array")
        if mean.size and not (np.isfinite(mean).all() and mean.min() >= 0):
            raise ValueError("expected photons must be finite and >= 0")
        return self._count_into(mean, rng, out, clear)

    def _count_into(
        self, mean: np.ndarray, rng: np.random.Generator, out: np.ndarray, clear: bool
    ) -> np.ndarray:
        """:meth:`count_poisson` without its checks, for callers whose inputs are already
        checked (:class:`PoissonSDD`, once per row of a scan)."""
        tables = (self._table, self._mixed_start, self._threshold, self._channel_of)
        count_photons(mean, *tables, GUIDE_BITS, seed_state(rng), out, clear)
        return out

    def draw(self, key: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Channels of photons whose components are ``key >> GUIDE_BITS`` (an intp array
        holding ``component << GUIDE_BITS``, which is overwritten), ``(n,)`` int32, in the order
        of ``key``."""
        n = key.size
        cell = rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n]
        cell >>= 16 - GUIDE_BITS
        key += cell  # component << GUIDE_BITS | cell
        channel = self._table.take(key)
        mixed = np.flatnonzero(channel < 0)
        if mixed.size:
            # u = component << 53 | cell << LOW_BITS | LOW_BITS fresh bits, searched in all CDFs
            low = rng.bit_generator.random_raw(mixed.size) >> np.uint64(64 - LOW_BITS)
            u = (key[mixed].view(np.uint64) << np.uint64(LOW_BITS)) + low
            channel[mixed] = self._channel_of.take(self._threshold.searchsorted(u, side="right"))
        return channel.astype(np.int32, copy=False)


def scatter_counts(
    indptr: np.ndarray, channel: np.ndarray, out: np.ndarray, data: np.ndarray | None = None
) -> np.ndarray:
    """Add one count per photon (or ``data[i]`` counts) into ``out`` (``(B, E)`` uint32,
    C-contiguous): photons ``indptr[i]:indptr[i + 1]`` of ``channel`` belong to row ``i``."""
    index = np.int32 if channel.size <= np.iinfo(np.int32).max else np.int64
    indptr = indptr.astype(index, copy=False)
    channel = channel.astype(index, copy=False)
    data = _ones(channel.size) if data is None else data
    if _csr_todense is not None:
        _csr_todense(out.shape[0], out.shape[1], indptr, channel, data, out)
        return out
    out += sp.csr_matrix((data, channel, indptr), shape=out.shape).toarray()
    return out


_ONES = np.ones(0, dtype=np.uint32)


def _ones(n: int) -> np.ndarray:
    """A read-only view of ``n`` uint32 ones (one count per photon), shared between calls and
    threads (a thread that grows it keeps its own reference)."""
    global _ONES
    ones = _ONES
    if ones.size < n:
        ones = np.ones(max(n, 2 * ones.size, 1 << 16), dtype=np.uint32)
        ones.flags.writeable = False
        _ONES = ones
    return ones[:n]


class PoissonSDD:
    """Poisson photon counting for a :class:`SpectrumModel`, with non-paralyzable dead time.

    Dead time τ: with input rate n (counts/s) the live fraction is 1/(1 + n τ), so
    ``real = live · (1 + n τ)``. Optional pile-up: an event is summed with the next one in the
    same pixel with probability 1 − exp(−n · ``pileup_window_s``).
    """

    def __init__(
        self,
        model: SpectrumModel,
        dead_time_s: float = DEFAULT_DEAD_TIME_S,
        pileup_window_s: float = 0.0,
    ) -> None:
        if dead_time_s < 0 or pileup_window_s < 0:
            raise ValueError("dead time and pile-up window must be >= 0 seconds")
        self.model = model
        self.dead_time_s = dead_time_s
        self.pileup_window_s = pileup_window_s
        self.sampler = ChannelSampler(model.basis)
        # compile (or load from the cache, ~0.2 s) the counting kernel now, not during a scan row
        empty = np.zeros((1, model.n_components))
        self.sampler.count_poisson(
            empty, np.random.default_rng(0), np.empty((1, model.axis.channels), np.uint32)
        )
        self._cores = tuple(_Core(model.basis, p) for p in CORE_PROBABILITIES)
        # expected photons above which some core is cheaper than photons, per component
        self._dense_from = np.min([c.break_even for c in self._cores], axis=0)

    def input_rate(self, component_rates: np.ndarray) -> np.ndarray:
        """Total photon rate reaching the detector, counts/s, ``(J, N) -> (N,)``."""
        return np.asarray(component_rates, dtype=float).sum(axis=0)

    def real_from_live(self, live_time: np.ndarray, component_rates: np.ndarray) -> np.ndarray:
        """Real time needed to collect ``live_time`` seconds of live time, seconds."""
        return np.asarray(live_time) * (1.0 + self.input_rate(component_rates) * self.dead_time_s)

    def live_from_real(self, real_time: np.ndarray, component_rates: np.ndarray) -> np.ndarray:
        """Live time collected in ``real_time`` seconds, seconds."""
        return np.asarray(real_time) / (1.0 + self.input_rate(component_rates) * self.dead_time_s)

    def acquire(
        self,
        component_rates: np.ndarray,
        *,
        live_time: np.ndarray | float | None = None,
        real_time: np.ndarray | float | None = None,
        rng: np.random.Generator,
    ) -> Acquisition:
        """Record one spectrum per pixel. ``component_rates`` is ``(J, N)`` counts/s; give the
        preset ``live_time`` or the ``real_time`` the beam spent on each pixel (seconds)."""
        rates = np.asarray(component_rates, dtype=float)
        if rates.ndim != 2 or rates.shape[0] != self.model.n_components:
            raise ValueError(
                f"component rates must be (J={self.model.n_components}, N), got {rates.shape}"
            )
        if (live_time is None) == (real_time is None):
            raise ValueError("give exactly one of live_time or real_time")
        n_pix = rates.shape[1]
        total = rates.sum(axis=0)
        if not (rates.size == 0 or rates.min() >= 0) or not np.all(np.isfinite(total)):
            raise ValueError("component rates must be finite and >= 0 counts/s")
        slow = 1.0 + total * self.dead_time_s  # real time / live time
        if live_time is not None:
            live = np.broadcast_to(np.asarray(live_time, dtype=float), (n_pix,)).copy()
            real = live * slow
        else:
            real = np.broadcast_to(np.asarray(real_time, dtype=float), (n_pix,)).copy()
            live = real / slow
        if not (n_pix == 0 or live.min() >= 0) or not np.all(np.isfinite(real)):
            raise ValueError("acquisition times must be finite and >= 0 seconds")
        counts = self._count(rates, live, rng)
        return Acquisition(counts=counts, live_time=live, real_time=real)

    def _count(self, rates: np.ndarray, live: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_comp, n_pix = rates.shape
        # photons inside the axis per pixel and component, pixel-major (N, J)
        mean = np.multiply(rates.T, live[:, None], order="C")
        mean *= self.sampler.area
        if self.pileup_window_s > 0:
            return self._count_piled_up(mean, rates, rng)
        counts, clear = _spectra_buffer(n_pix, self.model.axis.channels)
        dense = self._dense_entries(mean)
        if dense is None:
            return self.sampler._count_into(mean, rng, counts, clear)
        # heavy entries: their cores are counted channel by channel, their tails photon by photon
        entries, level, heavy = dense
        flat = mean.ravel()
        tails = rng.poisson(flat[entries] * self._tail_fraction(level, entries % n_comp))
        flat[entries] = 0.0
        self.sampler._count_into(mean, rng, counts, clear)
        self._count_cores(counts, entries, level, heavy, tails, rng)
        return counts

    def _count_piled_up(
        self, mean: np.ndarray, rates: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Photon lists of every pixel, merged pairwise by pile-up, then histogrammed."""
        n_pix, n_comp = mean.shape
        counts = np.zeros((n_pix, self.model.axis.channels), dtype=np.uint32)
        photons = rng.poisson(mean)
        keys = np.tile(np.arange(n_comp, dtype=np.intp) << GUIDE_BITS, n_pix)
        channel = self.sampler.draw(np.repeat(keys, photons.ravel()), rng)
        row = np.repeat(np.arange(n_pix, dtype=np.int32), photons.sum(axis=1))
        row, channel = self._pile_up(row, channel, rates, rng)
        return scatter_counts(_pointers(np.bincount(row, minlength=n_pix)), channel, counts)

    def _dense_entries(self, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Entries (flat pixel-major indices) to count by core, their core level (0, 1, ...)
        and expected photons; None when photon by photon is cheaper for the whole call."""
        n_comp = mean.shape[1]
        entries = np.flatnonzero(mean >= self._dense_from)
        if entries.size == 0:
            return None
        component = entries % n_comp
        m = mean.ravel()[entries]
        # cost of each way, in photon draws: all photons, or a core level and its tail
        by_core = [
            CHANNEL_COST_PHOTONS * c.n_channels[component] + m * c.tail[component]
            for c in self._cores
        ]
        cost = np.stack([m, *by_core])
        best = cost.argmin(axis=0)
        saved = m - cost[best, np.arange(m.size)]
        used = np.unique(best[best > 0])
        if saved.sum() <= CORE_CALL_PHOTONS * used.size:
            return None
        keep = best > 0
        return entries[keep], best[keep] - 1, m[keep]

    def _tail_fraction(self, level: np.ndarray, component: np.ndarray) -> np.ndarray:
        return np.stack([c.tail for c in self._cores])[level, component]

    def _count_cores(
        self,
        counts: np.ndarray,
        entries: np.ndarray,
        level: np.ndarray,
        heavy: np.ndarray,
        tails: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Add the counts of heavy entries: per-channel Poisson counts in their core and their
        tail photons drawn one by one."""
        n_pix, n_comp = counts.shape[0], self.model.n_components
        for index, core in enumerate(self._cores):
            sel = np.flatnonzero(level == index)
            if sel.size == 0:
                continue
            pixel, component = np.divmod(entries[sel], n_comp)
            # tail photons, pixel by pixel (entries are in pixel order)
            tail = tails[sel]
            channel = core.tails.draw(np.repeat(component << GUIDE_BITS, tail), rng)
            indptr = _pointers(np.bincount(pixel, weights=tail, minlength=n_pix))
            scatter_counts(indptr, channel, counts)
            # core channels: one Poisson draw per channel, added as weights of a CSR scatter
            width = core.n_channels[component]
            first = np.repeat(core.start[component] - _pointers(width)[:-1], width)
            where = first + np.arange(width.sum())
            drawn = rng.poisson(np.repeat(heavy[sel], width) * core.probability[where])
            indptr = _pointers(np.bincount(pixel, weights=width, minlength=n_pix))
            scatter_counts(indptr, core.channel[where], counts, drawn.astype(np.uint32))

    def _pile_up(
        self, row: np.ndarray, channel: np.ndarray, rates: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Merge events pairwise within a pixel, each pair with the pile-up probability; the
        merged event lands at the summed energy (lost if off the axis). Returns the events
        sorted by pixel."""
        axis = self.model.axis
        p = 1.0 - np.exp(-self.input_rate(rates) * self.pileup_window_s)
        order = rng.permutation(row.size)  # random order of events within each pixel
        order = order[np.argsort(row[order], kind="stable")]
        row, channel = row[order], channel[order]
        per_pixel = np.bincount(row, minlength=rates.shape[1])
        start = np.repeat(np.cumsum(per_pixel) - per_pixel, per_pixel)
        position = np.arange(row.size) - start
        has_next = position + 1 < per_pixel[row]
        first = np.flatnonzero((position % 2 == 0) & has_next & (rng.random(row.size) < p[row]))
        offset = int(round(axis.offset_kev / axis.gain_kev))
        summed = channel[first] + channel[first + 1] + offset
        keep = np.ones(row.size, dtype=bool)
        keep[first + 1] = False
        channel = channel.copy()
        channel[first] = summed
        keep[first[(summed >= axis.channels) | (summed < 0)]] = False
        return row[keep], channel[keep]


class _Core:
    """The channels of each component with probability ≥ ``min_probability`` (its core), and a
    photon sampler for the rest of the component (its tail)."""

    def __init__(self, basis: np.ndarray, min_probability: float) -> None:
        basis = np.asarray(basis, dtype=float)
        area = basis.sum(axis=1)
        p = basis / np.where(area > 0, area, 1.0)[:, None]
        inside = p >= min_probability
        self.n_channels = inside.sum(axis=1)
        """``(J,)`` channels in each core."""
        self.tail = np.clip(1.0 - (p * inside).sum(axis=1), 0.0, 1.0)
        """``(J,)`` share of each component's photons (inside the axis) outside its core."""
        self.break_even = np.where(
            self.n_channels > 0,
            CHANNEL_COST_PHOTONS * self.n_channels / np.maximum(1.0 - self.tail, 1e-300),
            np.inf,
        )
        """``(J,)`` expected photons from which this core is cheaper than photons alone."""
        self.start = _pointers(self.n_channels)[:-1]
        """``(J,)`` where each core starts in ``channel`` and ``probability``."""
        component, channel = np.nonzero(inside)
        self.channel = channel.astype(np.int32)
        """Core channels of all components, component after component."""
        self.probability = p[component, channel]
        """Probability of each core channel within its component."""
        self._tail_basis = np.where(inside, 0.0, basis)

    @functools.cached_property
    def tails(self) -> ChannelSampler:
        """Photon sampler of each component's tail (built on first use)."""
        return ChannelSampler(self._tail_basis)


def _spectra_buffer(n_pix: int, n_chan: int) -> tuple[np.ndarray, bool]:
    """A ``(n_pix, n_chan)`` uint32 array for the kernel and whether the kernel must clear it.

    Above :data:`FRESH_PAGES_FROM` bytes ``np.zeros`` gets pages that the OS zeroes on first
    touch, which the kernel then finds in cache: clearing them again cost ~0.35 of ~4.7 µs per
    4096-channel spectrum (measured on a 128×128 scene). Below it the allocator may reuse memory and zero it in a pass of its own, so the
    kernel clears each row just before it fills it instead."""
    if n_pix * n_chan * 4 >= FRESH_PAGES_FROM:
        return np.zeros((n_pix, n_chan), dtype=np.uint32), False
    return np.empty((n_pix, n_chan), dtype=np.uint32), True


def _pointers(per_row: np.ndarray) -> np.ndarray:
    """Row start offsets ``(R + 1,)`` int64 from per-row counts."""
    out = np.zeros(per_row.size + 1, dtype=np.int64)
    out[1:] = np.cumsum(per_row)
    return out
