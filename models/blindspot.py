"""Blind-spot rate estimation: each pixel's rate from its neighbours only, with no training.

For Poisson counts ``X_i ~ Poisson(ψ_i t0_i)`` (ψ in counts/s, t0 in seconds) the estimate

    ψ̂_i = Σ_{j≠i} K_ij X_j / Σ_{j≠i} K_ij t0_j

uses a Gaussian kernel ``K`` of width σ pixels with its centre weight removed, summed only over
pixels inside the image. ``ψ̂_i`` is independent of ``X_i``, so a dwell chosen from it leaves the
pooled estimate ``(X0_i + X1_i)/(t0_i + t_i)`` unbiased. Zeroing the centre of a separable kernel
needs no 2-D convolution: ``Σ_{j≠i} K_ij X_j = (K * X)_i − K_00 X_i``.

σ is chosen per channel from the data alone (the Noise2Self / J-invariance argument): because
``ψ̂_i`` does not use ``X_i``, the prediction loss ``mean((A(X_i) − E[A(X) | t0_i ψ̂_i])²)``
equals the noise variance plus the estimation error, so its minimum over σ picks the best smoother.
The loss is taken in the Anscombe domain ``A(x) = 2 sqrt(x + 3/8)`` because the dwell depends on
``sqrt(ψ)``, and errors there are what costs the allocation. ``E[A(X) | λ]`` is tabulated by
summing over the Poisson pmf.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from dwellwise.models.transforms import anscombe
from scipy import ndimage, stats

DEFAULT_SIGMAS: tuple[float, ...] = (0.6, 1.0, 1.6, 2.5, 4.0)
"""Candidate kernel widths, pixels."""

TRUNCATE = 3.0
"""Kernel radius in units of σ."""


def _centre_weight(sigma: float) -> float:
    """Centre weight ``K_00`` of the 2-D kernel :func:`scipy.ndimage.gaussian_filter` applies."""
    radius = int(TRUNCATE * sigma + 0.5)
    delta = np.zeros(2 * radius + 1)
    delta[radius] = 1.0
    g = ndimage.gaussian_filter1d(delta, sigma, truncate=TRUNCATE, mode="constant")
    return float(g[radius] ** 2)


def blind_sum(image: np.ndarray, sigma: float) -> np.ndarray:
    """``Σ_{j≠i} K_ij image_j`` over in-image neighbours j (Gaussian K of width σ pixels)."""
    image = np.asarray(image, dtype=np.float64)
    smooth = ndimage.gaussian_filter(image, sigma, truncate=TRUNCATE, mode="constant", cval=0.0)
    return smooth - _centre_weight(sigma) * image


_SQRT_LAM_STEP = 0.01
_SQRT_LAM_MAX = 12.0


@lru_cache(maxsize=1)
def _expected_anscombe_table() -> np.ndarray:
    """``E[A(X)]``, ``X ~ Poisson(λ)``, on a uniform grid of ``sqrt(λ)``, summed over the pmf."""
    u = np.arange(0.0, _SQRT_LAM_MAX + 2 * _SQRT_LAM_STEP, _SQRT_LAM_STEP)
    k = np.arange(0, int(_SQRT_LAM_MAX**2 + 40 * _SQRT_LAM_MAX + 50))
    pmf = stats.poisson.pmf(k[None, :], (u * u)[:, None])
    return pmf @ anscombe(k)


def expected_anscombe(lam: np.ndarray) -> np.ndarray:
    """``E[A(X)]`` for ``X ~ Poisson(lam)`` (lam in counts ≥ 0), exact to ~1e-5 by table lookup."""
    lam = np.asarray(lam, dtype=np.float64)
    table = _expected_anscombe_table()
    pos = np.sqrt(lam) / _SQRT_LAM_STEP
    big = pos >= table.size - 1
    pos = np.minimum(pos, table.size - 1.000001)
    idx = pos.astype(np.intp)
    frac = pos - idx
    out = table[idx] * (1.0 - frac) + table[idx + 1] * frac
    # Beyond the table: E[A(X)] = 2 sqrt(λ + 1/8) + O(λ^-3/2).
    out[big] = 2.0 * np.sqrt(lam[big] + 0.125)
    return out


def blindspot_rate(
    counts: np.ndarray, t0: np.ndarray | float, sigma: float, *, t0_blind: np.ndarray | None = None
) -> np.ndarray:
    """Blind-spot rate estimate ψ̂ (counts/s) of one ``(H, W)`` count map at kernel width σ px.

    ``t0_blind`` may pass a precomputed ``blind_sum(t0, sigma)`` (seconds) to save a filter.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if t0_blind is None:
        t0_blind = blind_sum(np.broadcast_to(t0, counts.shape), sigma)
    # A pixel with no neighbour inside the kernel (a 1x1 image) has no estimate: rate 0.
    num = np.maximum(blind_sum(counts, sigma), 0.0)  # clip rounding residue below 0
    return np.divide(num, t0_blind, out=np.zeros_like(num), where=t0_blind > 0)


def selection_loss(counts: np.ndarray, t0: np.ndarray | float, rate: np.ndarray) -> float:
    """Self-supervised loss ``mean((A(X) − E[A(X) | t0·ψ̂])²)`` of a blind-spot estimate ψ̂."""
    resid = anscombe(counts) - expected_anscombe(np.asarray(t0) * rate)
    return float(np.mean(resid * resid))


def _crops(shape: tuple[int, int], max_pixels: int) -> list[tuple[slice, slice]]:
    """Up to 16 evenly spread crops totalling about ``max_pixels`` (the whole image if smaller)."""
    h, w = shape
    if h * w <= max_pixels:
        return [(slice(0, h), slice(0, w))]
    side = max(32, int(np.sqrt(max_pixels / 16)))
    ch, cw = min(h, side), min(w, side)
    rows = np.unique(np.linspace(0, h - ch, 4).astype(int))
    cols = np.unique(np.linspace(0, w - cw, 4).astype(int))
    return [(slice(r, r + ch), slice(c, c + cw)) for r in rows for c in cols]


def select_sigma(
    counts: np.ndarray,
    t0: np.ndarray,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    max_pixels: int = 1 << 18,
    _t0_cache: dict | None = None,
) -> float:
    """Kernel width (px) from ``sigmas`` with the lowest :func:`selection_loss` on one channel.

    ``counts`` and ``t0`` (seconds) are ``(H, W)``. Images larger than ``max_pixels`` are judged on
    16 evenly spread crops of that total size, which keeps the cost of trying many widths low.
    """
    if len(sigmas) == 1:
        return float(sigmas[0])
    cache = {} if _t0_cache is None else _t0_cache
    crops = _crops(counts.shape, max_pixels)
    losses = []
    for s in sigmas:
        loss = 0.0
        for k, crop in enumerate(crops):
            x, t = counts[crop], t0[crop]
            if (k, s) not in cache:
                cache[k, s] = blind_sum(t, s)
            loss += selection_loss(x, t, blindspot_rate(x, t, s, t0_blind=cache[k, s])) * x.size
        losses.append(loss)
    return float(sigmas[int(np.argmin(losses))])


def estimate_rates(
    counts: np.ndarray,
    t0: np.ndarray | float,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
) -> tuple[np.ndarray, np.ndarray]:
    """Blind-spot rates ψ̂ ``(C, H, W)`` counts/s and the σ (px) chosen per channel.

    ``counts`` is ``(C, H, W)``; ``t0`` seconds, scalar or ``(H, W)``. Each channel gets the σ
    from ``sigmas`` chosen by :func:`select_sigma`.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 3:
        raise ValueError(f"counts must be (C, H, W), got shape {counts.shape}")
    t0_map = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape[1:])
    t0_blind: dict[float, np.ndarray] = {}
    crop_cache: dict = {}
    rates = np.empty_like(counts)
    chosen = np.empty(counts.shape[0])
    for c, channel in enumerate(counts):
        s = select_sigma(channel, t0_map, sigmas, _t0_cache=crop_cache)
        if s not in t0_blind:
            t0_blind[s] = blind_sum(t0_map, s)
        rates[c] = blindspot_rate(channel, t0_map, s, t0_blind=t0_blind[s])
        chosen[c] = s
    return rates, chosen
