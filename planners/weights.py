"""Per-element weights for several element maps that share one dwell map.

With C element maps measured at once, the summed variance of the pooled estimates is
``Σ_c w_c Σ_i ψ_ci / (t0_i + t_i)``, minimised by water-filling on the score
``Σ_c w_c ψ_ci`` (counts/s): ``t0_i + t_i ∝ sqrt(Σ_c w_c ψ_ci)``.

**Default (fair) weights: equal relative error.** ``w_c = 1 / ψ̄_c`` with ``ψ̄_c`` the mean rate
(counts/s) of element c over the map. Under a uniform dwell ``T`` the MSE of element c is
``ψ̄_c / T``, so ``w_c · MSE_c = MSE_c / (ψ̄_c / T) · (1/T)``: the objective becomes the sum over
elements of each element's MSE relative to what a uniform scan would give it, and every element
counts equally whatever its brightness (a faint Au L map is not drowned by a bright Fe K map).
ψ̄_c is estimated from the first pass as ``Σ_i X_ci / Σ_i t0_i``, which is unbiased and depends on
any one pixel only through a 1/(H·W) share. Channels with no counts get weight 0; weights are
normalised to sum to 1 (the scale does not change the allocation).

An explicit vector is used as given, so ``weights = 2 * default_weights(...)`` on one entry favours
that element twice over the fair choice.
"""

from __future__ import annotations

import numpy as np


def default_weights(counts: np.ndarray, t0: np.ndarray | float) -> np.ndarray:
    """Equal-relative-error weights ``w_c ∝ 1/ψ̄_c`` ``(C,)`` from ``(C, H, W)`` counts."""
    counts = np.asarray(counts, dtype=np.float64)
    t0_map = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape[1:])
    mean_rate = counts.sum(axis=(1, 2)) / float(t0_map.sum())
    w = np.divide(1.0, mean_rate, out=np.zeros_like(mean_rate), where=mean_rate > 0)
    total = w.sum()
    return w / total if total > 0 else w


def weighted_score(rates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Water-filling score ``Σ_c w_c ψ_c`` ``(H, W)`` (counts/s) from rates ``(C, H, W)``."""
    rates = np.asarray(rates, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    return np.maximum(np.tensordot(weights, rates, axes=1), 0.0)
