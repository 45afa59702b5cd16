"""Poisson counting of full spectra by a silicon drift detector, with dead time and pile-up.

Counting is done photon by photon, which costs O(counts) rather than O(channels): for each pixel
and component the number of recorded photons is Poisson(rate · live time); each photon's
channel is drawn exactly from its component's spectrum with a guide table (Chen & Asau), and
the photon lists become the spectra through a sparse CSR matrix. A 4096-channel spectrum with a
few hundred counts costs a few microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from dwellwise.simulators.spectra import SpectrumModel

GUIDE_BITS = 15
"""log2 of the guide-table size per component."""
MIXED = np.uint16(65535)
"""Guide-table marker of a cell that spans a channel boundary."""
DEFAULT_DEAD_TIME_S = 1e-6
"""Non-paralyzable dead time per recorded event, seconds."""


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
    """Draws channel indices exactly from each row of a non-negative ``(J, E)`` basis."""

    def __init__(self, basis: np.ndarray, guide_bits: int = GUIDE_BITS) -> None:
        basis = np.asarray(basis, dtype=float)
        n_comp, n_chan = basis.shape
        self.area = basis.sum(axis=1)
        """Fraction of each component's photons that land inside the axis."""
        safe = np.where(self.area > 0, self.area, 1.0)[:, None]
        cdf = np.cumsum(basis / safe, axis=1)
        cdf[:, -1] = 1.0
        self._bits = guide_bits
        grid = np.arange(2**guide_bits + 1) / 2**guide_bits
        lo = np.stack([np.searchsorted(c, grid[:-1], side="right") for c in cdf])
        hi = np.stack([np.searchsorted(c, grid[1:], side="left") for c in cdf])
        # One table per component: the channel of every guide cell that holds a single channel,
        # MIXED where a channel boundary falls inside the cell (then an exact search decides).
        table = np.minimum(lo, n_chan - 1).astype(np.uint16)
        table[lo != hi] = MIXED
        self._table = table.ravel()
        # Monotone concatenation of all CDFs (component j offset by j) for the exact search.
        self._stacked = (cdf + np.arange(n_comp)[:, None]).ravel()
        self._n_chan = n_chan

    def sample(self, component: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Channel of each photon, given its component index ``(P,)`` -> ``(P,)`` int32."""
        r = rng.integers(0, 2**32, size=component.size, dtype=np.uint32)
        cell = component.astype(np.uint32) << np.uint32(self._bits)
        cell |= r >> np.uint32(32 - self._bits)
        channel = self._table.take(cell).astype(np.int32)
        mixed = np.flatnonzero(channel == MIXED)
        if mixed.size:
            j = component[mixed]
            u = (r[mixed] + 0.5) * 2.0**-32 + j
            pos = np.searchsorted(self._stacked, u, side="right")
            channel[mixed] = np.minimum(pos - j * self._n_chan, self._n_chan - 1)
        return channel


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
        if live_time is not None:
            live = np.broadcast_to(np.asarray(live_time, dtype=float), (n_pix,)).copy()
            real = self.real_from_live(live, rates)
        else:
            real = np.broadcast_to(np.asarray(real_time, dtype=float), (n_pix,)).copy()
            live = self.live_from_real(real, rates)
        if np.any(live < 0) or not np.all(np.isfinite(live)):
            raise ValueError("acquisition times must be finite and >= 0 seconds")
        counts = self._count(rates, live, rng)
        return Acquisition(counts=counts, live_time=live, real_time=real)

    def _count(self, rates: np.ndarray, live: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_comp, n_pix = rates.shape
        mean = rates.T * live[:, None] * self.sampler.area[None, :]
        photons = rng.poisson(mean)
        component = np.repeat(np.tile(np.arange(n_comp, dtype=np.int32), n_pix), photons.ravel())
        channel = self.sampler.sample(component, rng)
        per_pixel = photons.sum(axis=1)
        if self.pileup_window_s > 0:
            channel, per_pixel = self._pile_up(channel, per_pixel, rates, rng)
        indptr = np.zeros(n_pix + 1, dtype=np.int64)
        np.cumsum(per_pixel, out=indptr[1:])
        data = np.ones(channel.size, dtype=np.uint32)
        shape = (n_pix, self.model.axis.channels)
        return sp.csr_matrix((data, channel, indptr), shape=shape).toarray()

    def _pile_up(
        self,
        channel: np.ndarray,
        per_pixel: np.ndarray,
        rates: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Merge each event with its successor in the same pixel with the pile-up probability;
        the merged event lands at the summed energy (dropped if beyond the axis)."""
        axis = self.model.axis
        p = 1.0 - np.exp(-self.input_rate(rates) * self.pileup_window_s)
        pixel = np.repeat(np.arange(per_pixel.size), per_pixel)
        start = np.repeat(np.cumsum(per_pixel) - per_pixel, per_pixel)
        position = np.arange(channel.size) - start
        has_next = position + 1 < per_pixel[pixel]
        first = (position % 2 == 0) & has_next & (rng.random(channel.size) < p[pixel])
        idx = np.flatnonzero(first)
        offset = int(round(axis.offset_kev / axis.gain_kev))
        summed = channel[idx] + channel[idx + 1] + offset
        keep = np.ones(channel.size, dtype=bool)
        keep[idx + 1] = False
        channel = channel.copy()
        channel[idx] = summed
        keep[idx[summed >= axis.channels]] = False
        kept_pixels = pixel[keep]
        return channel[keep], np.bincount(kept_pixels, minlength=per_pixel.size)
