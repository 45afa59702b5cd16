"""``bilevel``: the paper's adaptation of Kourousias et al. (Sci. Rep. 10, 2020).

Pixels whose first-pass rate is below a threshold get a fixed short dwell ``low_dwell`` (1 ms by
default); the others share the remaining time equally::

    t_i = low                                  if r_i <  θ     (n_low pixels)
    t_i = (n·T − n_low·low) / n_high           if r_i ≥ θ     (n_high pixels)

**Rate and threshold.** ``r`` is the weighted first-pass rate ``Σ_c w_c X_ci / t0_i`` (counts/s)
smoothed by a Gaussian of σ = 1 px (the paper hand-draws regions on another image; a smoothed map
stands in for that). Unless ``threshold=`` (counts/s) is given, θ is Otsu's threshold of ``r``
(:func:`skimage.filters.threshold_otsu`): it splits the histogram into background and signal with
the largest between-class variance, which is the foreground/background cut the method assumes.

**Bounds.** ``low`` is clipped into ``[min_dwell, mean_dwell]``, so the high level is never below
it. If the high level would exceed ``max_dwell`` it is capped there and the low level rises to
keep the mean. A map with a single class (flat, or all on one side of θ) is uniform.

**Known weakness (kept, as this is the paper's baseline).** The smoothed rate includes the pixel's
own count, so the dwell correlates with its first-pass noise and the pooled estimate is biased low
(about −5 % at 1-3 counts per pixel in ``tests/planners/test_blindspot.py``'s setting).
"""

from __future__ import annotations

import numpy as np
from dwellwise.planners.policies import DwellProblem, register
from dwellwise.planners.weights import weighted_score
from scipy import ndimage
from skimage.filters import threshold_otsu

DEFAULT_LOW_DWELL = 1e-3
"""Dwell of the low class, seconds."""


@register("bilevel", "two dwell levels split at Otsu's threshold of the smoothed rate (Kourousias)")
def bilevel(problem: DwellProblem) -> np.ndarray:
    """Bilevel dwell map (seconds). Options: ``low_dwell`` (s), ``threshold`` (counts/s)."""
    T, lo, hi = problem.mean_dwell, problem.min_dwell, problem.max_dwell
    shape = problem.t0.shape
    rate = weighted_score(problem.counts / problem.t0, problem.weights)
    rate = ndimage.gaussian_filter(rate, 1.0, mode="nearest")
    threshold = problem.options.get("threshold")
    if threshold is None:
        if np.ptp(rate) == 0:
            return np.full(shape, T)
        threshold = threshold_otsu(rate)
    high_mask = rate >= float(threshold)
    n, n_high = rate.size, int(np.count_nonzero(high_mask))
    n_low = n - n_high
    if n_high == 0 or n_low == 0:
        return np.full(shape, T)

    low = float(np.clip(problem.options.get("low_dwell", DEFAULT_LOW_DWELL), lo, T))
    high = (n * T - n_low * low) / n_high
    if high > hi:
        high = hi
        low = (n * T - n_high * hi) / n_low
    return np.where(high_mask, high, low)
