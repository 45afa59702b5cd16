"""``auto``: the learned ``n2v-sqrt`` policy when its training fits the deadline, else
``blindspot-sqrt``; either with each pixel's own count let in under a bias budget.

``n2v-sqrt`` is chosen only when it is registered and says that it fits: either through the
``fits=`` predicate it registered with (:attr:`PolicyInfo.fits`) or a module-level
``fits_deadline(problem) -> bool`` in :mod:`dwellwise.planners.policies.n2v_sqrt`. Both read the
deadline (seconds) from ``problem.options["deadline"]`` when given. Without such a promise the
training could overrun the time the instrument waits, so ``auto`` answers with ``blindspot-sqrt``,
which needs no training and has the same unbiased water-filling form.

Both delegates get ``bias_budget`` = :data:`~dwellwise.planners.own_counts.DEFAULT_BIAS_BUDGET`
(0.5 %) unless the caller gives one: their blind estimates are shrunk toward each pixel's own count
as far as that predicted relative bias of every element allows
(:mod:`dwellwise.planners.own_counts`; with the kernel estimate, mean efficiency +0.13 to +0.14
on the development and both held-out scene sets of ``bench dwell``, no case with a bias beyond
1 %).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Any

import numpy as np
from dwellwise.planners.own_counts import DEFAULT_BIAS_BUDGET
from dwellwise.planners.policies import DwellProblem, get_policy, is_registered, register

LEARNED = "n2v-sqrt"
FALLBACK = "blindspot-sqrt"

log = logging.getLogger(__name__)


def choose(problem: DwellProblem) -> str:
    """Name of the policy ``auto`` delegates to for this problem."""
    if not is_registered(LEARNED):
        return FALLBACK
    fits = get_policy(LEARNED).fits
    if fits is None:
        module = importlib.import_module(f"{__package__}.n2v_sqrt")
        fits = getattr(module, "fits_deadline", None)
    return LEARNED if fits is not None and bool(fits(problem)) else FALLBACK


def delegate_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options ``auto`` hands its delegate: the caller's, with the default bias budget."""
    return {"bias_budget": DEFAULT_BIAS_BUDGET, **options}


@register(
    "auto",
    "n2v-sqrt when its training fits the deadline, else blindspot-sqrt; own counts let in "
    "under a 0.5 % bias budget",
)
def auto(problem: DwellProblem) -> np.ndarray:
    """Dwell map (seconds) of the policy chosen by :func:`choose`."""
    name = choose(problem)
    log.info("auto dwell policy chose %s", name)
    options = delegate_options(problem.options)
    return get_policy(name).func(dataclasses.replace(problem, options=options))
