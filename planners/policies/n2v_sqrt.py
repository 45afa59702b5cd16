"""``n2v-sqrt``: water-filling on the rates of a self-supervised blind-spot network.

1. :func:`dwellwise.models.n2v.estimate_rates_n2v` trains a Noise2Void-style network on the
   first-pass counts alone (the pixel's own count is outside its receptive field; Poisson NLL in
   the count domain, whose minimiser is ``E[ψ_ci | neighbours]``), on CUDA when available, within
   ``deadline`` seconds, and predicts ``ψ̂_ci`` (counts/s) for every element c and pixel i. The
   networks are cross-fitted (each pixel is answered by a network that never had its counts as a
   target), so ``ψ̂_i`` is independent of ``X_i``.
2. The network's estimate is blended with the kernel estimate of ``blindspot-sqrt``
   (:func:`dwellwise.models.blindspot.estimate_rates`, also blind): ``ψ̂ = a ψ̂_net + (1 − a)
   ψ̂_kernel`` with ``a ∈ {0, ¼, ½, ¾, 1}`` chosen by the allocation loss
   ``V̂ = mean_i Σ_c w_c X_ci / (t0_i (t0_i + t_i))``, the unbiased first-pass estimate of the
   second-pass variance that each candidate's dwell map would leave
   (:func:`dwellwise.models.blindspot.allocation_loss`). On the development scenes the pick
   matched the best blend in every case; it guards against a network that trained badly (too
   faint a map, a deadline cut it short) and gains a little elsewhere (mean efficiency +0.005).
3. Water-filling on the weighted score: ``t_i = clip(c · sqrt(Σ_c w_c ψ̂_ci) − t0_i, min, max)``
   with c set so that ``mean(t) = mean_dwell`` exactly (:func:`dwellwise.planners.waterfill`).
   As ``ψ̂_i`` does not depend on ``X_i``, the pooled estimate ``(X0 + X1)/(t0 + t)`` is unbiased
   (the blend is one number chosen from the whole map, as is a kernel width).
4. By default the blind estimate is then shrunk toward each pixel's own first-pass count under
   a 0.5 % bias budget (``bias_budget`` below), which steps 1-3 alone cannot see: lone bright
   grains, 1-px lines, sharp edges.

Options: ``deadline`` (seconds, default :data:`dwellwise.models.n2v.DEFAULT_DEADLINE`), ``steps``
(maximum training steps), ``bias_budget`` (relative, default 0.5 %: the blended estimate is shrunk
toward each pixel's own count as far as that predicted bias allows, and lone bright pixels take
their own rate, :mod:`dwellwise.planners.own_counts`; 0 keeps the blind estimate, unbiased: mean
efficiency 0.778, 0.773 and 0.748 on the dev and first two held-out sets of ``bench dwell``,
against 0.8996, 0.897 and 0.898 with the budget), ``device`` (``"cuda"``/``"cpu"``; default CUDA
when available), ``folds`` (cross-fitting folds, default 3; 1 trains one network on every pixel,
which lets a pixel's own count steer its dwell through the weights: on the development scenes of ``dwellwise
bench dwell`` that scored a mean efficiency of 0.809 against 0.778 with 3 folds, at a bias of −0.16
± 0.02 % on average over the 75 cases and −0.86 ± 0.22 % on a faint map). The device and training
time of the last call are in :data:`dwellwise.models.n2v.last_training_report`, the blend and the
losses in :data:`last_blend`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from dwellwise.models import n2v
from dwellwise.models.blindspot import DEFAULT_SIGMAS, allocation_loss, estimate_rates
from dwellwise.planners.own_counts import (
    DEFAULT_BIAS_BUDGET,
    blind_rates_around_outliers,
    shrink_to_own_counts,
)
from dwellwise.planners.policies import DwellProblem, register
from dwellwise.planners.policies.blindspot_sqrt import allocator
from dwellwise.planners.weights import weighted_score

BLENDS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate shares ``a`` of the network in the blended estimate."""

last_blend: dict[float, float] = {}
"""Allocation loss ``V̂`` of each blend share of the most recent call (the lowest was used)."""


def fits_deadline(problem: DwellProblem) -> bool:
    """Whether a useful training fits ``problem.options["deadline"]`` seconds on this machine."""
    return n2v.n2v_fits_deadline(problem.counts.shape, problem.options.get("deadline"))


@register("n2v-sqrt", "water-filling on rates of a self-supervised blind-spot network, own counts "
          "let in under a 0.5 % bias budget",
          fits=fits_deadline)
def n2v_sqrt(problem: DwellProblem) -> np.ndarray:
    """Dwell map (seconds) from blind-spot network rate estimates."""
    global last_blend
    opts = problem.options
    config = n2v.N2VConfig()
    if "steps" in opts:
        config = dataclasses.replace(config, steps=int(opts["steps"]))
    if "folds" in opts:
        folds = int(opts["folds"])
        if folds < 1:
            raise ValueError(f"n2v-sqrt option folds must be ≥ 1, got {opts['folds']!r}")
        config = dataclasses.replace(config, folds=folds)
    active = problem.weights > 0
    if not np.any(active):
        return np.full(problem.t0.shape, problem.mean_dwell)
    counts, w = problem.counts[active], problem.weights[active]
    allocate = allocator(problem)
    net = n2v.estimate_rates_n2v(
        counts, problem.t0,
        seed=0 if problem.seed is None else problem.seed,
        deadline=float(opts.get("deadline", n2v.DEFAULT_DEADLINE)),
        config=config, device=opts.get("device"),
    )
    budget = float(opts.get("bias_budget", DEFAULT_BIAS_BUDGET))
    kernel, widths = estimate_rates(counts, problem.t0, DEFAULT_SIGMAS, allocate=allocate, weights=w)
    outliers = None
    if budget > 0:
        kernel, outliers = blind_rates_around_outliers(kernel, widths, counts, problem.t0)
    score_net, score_kernel = weighted_score(net, w), weighted_score(kernel, w)
    best, losses = None, {}
    for a in BLENDS:
        dwell = allocate(a * score_net + (1.0 - a) * score_kernel, problem.t0)
        losses[a] = allocation_loss(counts, problem.t0, dwell, w)
        if best is None or losses[a] < best[0]:
            best = (losses[a], dwell, a)
    last_blend = losses
    if not budget > 0:
        return best[1]
    a = best[2]
    rates = shrink_to_own_counts(
        a * net + (1.0 - a) * kernel, counts, problem.t0, w, allocate,
        (problem.min_dwell, problem.max_dwell), bias_budget=budget, outliers=outliers,
    )
    return allocate(weighted_score(rates, w), problem.t0)
