"""``n2v-sqrt``: water-filling on the rates of a self-supervised blind-spot network.

1. :func:`dwellwise.models.n2v.estimate_rates_n2v` trains a Noise2Void-style network on the
   first-pass counts alone (the pixel's own count is outside its receptive field; Poisson NLL in
   the count domain, whose minimiser is ``E[ψ_ci | neighbours]``), on CUDA when available, within
   ``deadline`` seconds, and predicts ``ψ̂_ci`` (counts/s) for every element c and pixel i.
2. Water-filling on the weighted score: ``t_i = clip(c · sqrt(Σ_c w_c ψ̂_ci) − t0_i, min, max)``
   with c set so that ``mean(t) = mean_dwell`` exactly (:func:`dwellwise.planners.waterfill`).
   As ``ψ̂_i`` does not depend on ``X_i``, the pooled estimate ``(X0 + X1)/(t0 + t)`` is unbiased.

Options: ``deadline`` (seconds, default :data:`dwellwise.models.n2v.DEFAULT_DEADLINE`),
``steps`` (maximum training steps), ``device`` (``"cuda"``/``"cpu"``; default CUDA when
available). The device and training time of the last call are in
:data:`dwellwise.models.n2v.last_training_report`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from dwellwise.models import n2v
from dwellwise.planners.policies import DwellProblem, register
from dwellwise.planners.waterfill import waterfill_sqrt
from dwellwise.planners.weights import weighted_score


def fits_deadline(problem: DwellProblem) -> bool:
    """Whether a useful training fits ``problem.options["deadline"]`` seconds on this machine."""
    return n2v.n2v_fits_deadline(problem.counts.shape, problem.options.get("deadline"))


@register("n2v-sqrt", "water-filling on rates of a self-supervised blind-spot network",
          fits=fits_deadline)
def n2v_sqrt(problem: DwellProblem) -> np.ndarray:
    """Dwell map (seconds) from blind-spot network rate estimates."""
    opts = problem.options
    config = n2v.N2VConfig()
    if "steps" in opts:
        config = dataclasses.replace(config, steps=int(opts["steps"]))
    rates = n2v.estimate_rates_n2v(
        problem.counts, problem.t0,
        seed=0 if problem.seed is None else problem.seed,
        deadline=float(opts.get("deadline", n2v.DEFAULT_DEADLINE)),
        config=config, device=opts.get("device"),
    )
    score = weighted_score(rates, problem.weights)
    return waterfill_sqrt(score, problem.t0, problem.mean_dwell, problem.min_dwell,
                          problem.max_dwell)
