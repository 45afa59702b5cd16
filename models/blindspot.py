"""Blind-spot rate estimation: each pixel's rate from its neighbours only, with no training.

For Poisson counts ``X_i ~ Poisson(ψ_i t0_i)`` (ψ in counts/s, t0 in seconds) the estimate

    ψ̂_i = Σ_{j≠i} K_ij X_j / Σ_{j≠i} K_ij t0_j

uses a Gaussian kernel ``K`` of width σ pixels with its centre weight removed, summed only over
pixels inside the image. ``ψ̂_i`` is independent of ``X_i``, so a dwell chosen from it leaves the
pooled estimate ``(X0_i + X1_i)/(t0_i + t_i)`` unbiased. Zeroing the centre of a separable kernel
needs no 2-D convolution: ``Σ_{j≠i} K_ij X_j = (K * X)_i − K_00 X_i``.

σ is chosen per channel from the data alone (the Noise2Self / J-invariance argument: ``ψ̂_i`` does
not use ``X_i``, so ``X_i`` is an independent, unbiased look at ``ψ_i t0_i`` against which ψ̂ can be
scored). Two criteria:

* **Allocation loss** (used when the caller passes the allocation rule ``allocate``, as the dwell
  policies do). The quantity the allocation minimises is the second-pass variance
  ``V(t) = mean_i ψ_i / (t0_i + t_i)``. For any dwell map whose ``t_i`` does not depend on ``X_i``,
  ``E[X_i / (t0_i (t0_i + t_i))] = ψ_i / (t0_i + t_i)``, so

      V̂(σ) = mean_i X_i / (t0_i (t0_i + t_i(σ))),   t(σ) = allocate(ψ̂_σ)

  is an unbiased estimate of ``V`` for the map each σ would produce, computed from the first-pass
  counts only. Its minimum picks the smoother that allocates best, which is not the one that
  estimates ψ best in a squared-error sense: over-estimating a dark pixel wastes dwell on it, and
  a width that leaves most pixels with no counts in reach piles the dwell onto a few noisy ones.
  The candidate ``σ = inf`` is the global mean rate ``Σ_j X_j / Σ_j t0_j``, the same for every
  pixel, whose dwell map is exactly uniform, so a map too faint to allocate from falls back to
  uniform by itself. (It keeps the pixel's own count: a constant allocates the same dwell
  whatever the counts. The blind global mean ``Σ_{j≠i}`` would not: on a map of 83 counts in
  all it lowered each counting pixel's estimate by ~1 %, steering dwell away from exactly the
  bright pixels, 0.22 of the oracle's gain below uniform.) With several
  channels (weights w) the loss is ``mean_i Σ_c w_c X_ci / (t0_i (t0_i + t_i))`` with t from
  ``Σ_c w_c ψ̂_c``; each channel's σ is chosen with the others fixed (coordinate descent).
* **Anscombe prediction loss** (no ``allocate``): ``mean((A(X_i) − E[A(X) | t0_i ψ̂_i])²)`` with
  ``A(x) = 2 sqrt(x + 3/8)``, i.e. the noise variance plus the error of ψ̂ in the ``sqrt`` domain.
  ``E[A(X) | λ]`` is tabulated by summing over the Poisson pmf.

Measured on the development scenes of ``dwellwise bench dwell`` (one first pass each): choosing σ
by the allocation loss reached the best fixed σ of every case (mean efficiency 0.763, worst 0.51),
the Anscombe loss 0.748 with cases down to 0.14 (faint sparse maps at 2+8 ms, where it chose
σ = 1 px and most pixels had no counts within reach).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from dwellwise.models.transforms import anscombe
from scipy import ndimage, stats

DEFAULT_SIGMAS: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, float("inf"))
"""Candidate kernel widths, pixels: a √2 grid, and ``inf`` for the global mean (uniform map)."""

Allocator = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``allocate(score, t0) -> t``: the dwell map (seconds) the policy gives a score map (counts/s)
whose pixels spent ``t0`` seconds (same shape) in the first pass."""

ALLOCATION_MAX_PIXELS = 1 << 15
"""Pixels the allocation loss is judged on (larger images: evenly spread crops of this total)."""

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
    """``Σ_{j≠i} K_ij image_j`` over in-image neighbours j (Gaussian K of width σ pixels).

    ``σ = inf`` means equal weights over the whole image *including* pixel i, ``Σ_j image_j`` at
    every pixel: not blind, but a constant, so the rate it gives (the global mean) allocates a
    uniform map that depends on no count.
    """
    image = np.asarray(image, dtype=np.float64)
    if np.isinf(sigma):
        return np.full(image.shape, image.sum())
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


def allocation_loss(
    counts: np.ndarray, t0: np.ndarray | float, dwell: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Unbiased estimate ``mean_i Σ_c w_c X_ci / (t0_i (t0_i + t_i))`` of the second-pass variance
    ``mean_i Σ_c w_c ψ_ci / (t0_i + t_i)`` ((counts/s)/s) of a dwell map ``t`` (seconds) that does
    not depend on the pixel's own counts.

    ``counts`` is ``(H, W)`` or ``(C, H, W)`` (then ``weights`` ``(C,)``, default all 1); ``t0``
    seconds, scalar or ``(H, W)``; ``dwell`` ``(H, W)`` seconds.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim == 3:
        w = np.ones(counts.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        counts = np.tensordot(w, counts, axes=1)
    t0 = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape)
    return float(np.mean(counts / (t0 * (t0 + dwell))))


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
    """Kernel width (px) from ``sigmas`` with the lowest Anscombe :func:`selection_loss` on one
    channel.

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


def _select_by_allocation(
    counts: np.ndarray,
    t0: np.ndarray,
    sigmas: Sequence[float],
    allocate: Allocator,
    weights: np.ndarray,
    max_pixels: int,
) -> list[float]:
    """Widths (px) per channel minimising :func:`allocation_loss` of ``allocate``'s map.

    Judged on evenly spread crops of about ``max_pixels`` pixels, put side by side into one
    image (each crop filtered on its own) so that one allocation covers them all. Channels start
    at their own best width (each alone), then one round of coordinate descent on the joint loss.
    """
    n_chan = counts.shape[0]
    if len(sigmas) == 1:
        return [float(sigmas[0])] * n_chan
    crops = _crops(counts.shape[1:], max_pixels)
    t0_cat = np.concatenate([t0[c].ravel() for c in crops])
    t0_blind = {s: np.concatenate([blind_sum(t0[c], s).ravel() for c in crops]) for s in sigmas}
    x_cat = np.stack([np.concatenate([x[c].ravel() for c in crops]) for x in counts])
    rates = np.empty((n_chan, len(sigmas), t0_cat.size))
    for ch in range(n_chan):
        for k, s in enumerate(sigmas):
            num = np.concatenate([blind_sum(counts[ch][c], s).ravel() for c in crops])
            tb = t0_blind[s]
            rates[ch, k] = np.divide(np.maximum(num, 0.0), tb, out=np.zeros_like(num),
                                     where=tb > 0)

    def loss(score: np.ndarray, x: np.ndarray) -> float:
        return allocation_loss(x, t0_cat, allocate(np.maximum(score, 0.0), t0_cat))

    pick = [int(np.argmin([loss(rates[ch, k], x_cat[ch]) for k in range(len(sigmas))]))
            for ch in range(n_chan)]
    if n_chan > 1:
        x_joint = np.tensordot(weights, x_cat, axes=1)
        for ch in range(n_chan):
            rest = sum(weights[o] * rates[o, pick[o]] for o in range(n_chan) if o != ch)
            pick[ch] = int(np.argmin(
                [loss(rest + weights[ch] * rates[ch, k], x_joint) for k in range(len(sigmas))]
            ))
    return [float(sigmas[k]) for k in pick]


def estimate_rates(
    counts: np.ndarray,
    t0: np.ndarray | float,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    *,
    allocate: Allocator | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Blind-spot rates ψ̂ ``(C, H, W)`` counts/s and the σ (px) chosen per channel.

    ``counts`` is ``(C, H, W)``; ``t0`` seconds, scalar or ``(H, W)``. With ``allocate`` (the
    policy's rule turning a score into dwell) each channel's σ minimises the allocation loss of
    the score ``Σ_c w_c ψ̂_c`` (``weights`` ``(C,)``, default all 1); without it, the Anscombe
    prediction loss of that channel alone (:func:`select_sigma`).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 3:
        raise ValueError(f"counts must be (C, H, W), got shape {counts.shape}")
    t0_map = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape[1:])
    if allocate is not None:
        w = np.ones(counts.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        chosen = _select_by_allocation(counts, t0_map, sigmas, allocate, w, ALLOCATION_MAX_PIXELS)
    else:
        crop_cache: dict = {}
        chosen = [select_sigma(ch, t0_map, sigmas, _t0_cache=crop_cache) for ch in counts]
    return rates_at_widths(counts, t0_map, chosen), np.asarray(chosen, dtype=float)


def rates_at_widths(counts: np.ndarray, t0: np.ndarray | float, widths: Sequence[float]) -> np.ndarray:
    """Blind-spot rates ψ̂ ``(C, H, W)`` counts/s of ``(C, H, W)`` counts, channel c smoothed
    with width ``widths[c]`` px (``inf``: the global mean); ``t0`` seconds, scalar or ``(H, W)``."""
    counts = np.asarray(counts, dtype=np.float64)
    t0_map = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape[1:])
    t0_blind: dict[float, np.ndarray] = {}
    rates = np.empty_like(counts)
    for c, (channel, s) in enumerate(zip(counts, widths, strict=True)):
        if s not in t0_blind:
            t0_blind[s] = blind_sum(t0_map, s)
        rates[c] = blindspot_rate(channel, t0_map, s, t0_blind=t0_blind[s])
    return rates
