"""Figures of merit for a dwell policy: RMSE, gain over uniform, efficiency, bias.

Rates are in counts/s, counts are counts, times in seconds. All functions take numpy arrays (or
anything ``np.asarray`` accepts) and return Python floats, except :func:`pooled_estimate`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def pooled_estimate(x0: ArrayLike, x1: ArrayLike, t0: ArrayLike, t: ArrayLike) -> np.ndarray:
    """Rate estimate (counts/s) after two passes: ``(X0 + X1) / (t0 + t)``.

    ``x0``, ``x1`` are the counts of the two passes, ``t0``, ``t`` their live times (seconds); all
    broadcast together. A pixel with no live time at all has no estimate and raises ``ValueError``.
    """
    total_time = np.asarray(t0, dtype=np.float64) + np.asarray(t, dtype=np.float64)
    if np.any(total_time <= 0):
        raise ValueError("pooled_estimate needs t0 + t > 0 s at every pixel")
    return (np.asarray(x0, dtype=np.float64) + np.asarray(x1, dtype=np.float64)) / total_time


def rmse(estimate: ArrayLike, truth: ArrayLike) -> float:
    """Root mean squared error ``sqrt(mean((estimate − truth)²))``, in the units of the inputs."""
    diff = np.asarray(estimate, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def gain_over_uniform(rmse_policy: float, rmse_uniform: float) -> float:
    """Relative RMSE reduction against a uniform raster: ``1 − rmse_policy / rmse_uniform``.

    Positive when the policy is better; 0.24 means 24 % lower RMSE than uniform at equal time.
    """
    if not rmse_uniform > 0:
        raise ValueError(f"rmse_uniform must be > 0, got {rmse_uniform!r}")
    return 1.0 - float(rmse_policy) / float(rmse_uniform)


def efficiency(gain_policy: float, gain_oracle: float) -> float:
    """A policy's gain over uniform as a fraction of the oracle's: ``gain_policy / gain_oracle``.

    1 reaches the physical limit, 0 is no better than uniform; NaN when the oracle gains nothing
    (a flat map, where no allocation can beat uniform and the ratio is undefined).
    """
    if gain_oracle <= 0:
        return float("nan")
    return float(gain_policy) / float(gain_oracle)


def bias(estimate: ArrayLike, truth: ArrayLike) -> float:
    """Relative bias ``mean(estimate − truth) / mean(truth)`` (dimensionless; −0.03 = 3 % low)."""
    truth = np.asarray(truth, dtype=np.float64)
    mean_truth = float(np.mean(truth))
    if mean_truth == 0:
        raise ValueError("bias is undefined when mean(truth) == 0")
    return float(np.mean(np.asarray(estimate, dtype=np.float64) - truth)) / mean_truth
