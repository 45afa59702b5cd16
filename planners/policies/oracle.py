"""``oracle``: water-filling on the true rates, the physical limit (simulation only).

The pooled estimate ``(X0_i + X1_i)/(t0_i + t_i)`` has variance ``ψ_i/(t0_i + t_i)``. Minimising
``Σ_c w_c Σ_i ψ_ci/(t0_i + t_i)`` under ``mean(t) = T`` and ``t_i ∈ [min, max]`` gives
``t_i = clip(c · sqrt(Σ_c w_c ψ_ci) − t0_i, min, max)`` (see :mod:`dwellwise.planners.waterfill`).
It needs the truth, passed as ``rates=`` ``(C, H, W)`` or ``(H, W)`` counts/s.
"""

from __future__ import annotations

import numpy as np
from dwellwise.planners.policies import DwellProblem, register
from dwellwise.planners.waterfill import waterfill_sqrt
from dwellwise.planners.weights import weighted_score


@register("oracle", "water-filling on the true rates (simulation only; needs rates=)")
def oracle(problem: DwellProblem) -> np.ndarray:
    """Optimal dwell (seconds) given the true rates ``problem.options["rates"]`` (counts/s)."""
    if "rates" not in problem.options:
        raise ValueError("policy 'oracle' needs the true rates: allocate_dwell(..., rates=psi)")
    rates = np.asarray(problem.options["rates"], dtype=np.float64)
    if rates.ndim == 2:
        rates = rates[None]
    if rates.shape != problem.counts.shape:
        raise ValueError(
            f"rates shape {rates.shape} does not match first_counts shape {problem.counts.shape}"
        )
    if not np.all(np.isfinite(rates)) or np.any(rates < 0):
        raise ValueError("rates must be finite and ≥ 0 counts/s")
    score = weighted_score(rates, problem.weights)
    return waterfill_sqrt(score, problem.t0, problem.mean_dwell, problem.min_dwell,
                          problem.max_dwell)
