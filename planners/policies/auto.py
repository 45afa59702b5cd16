"""``auto``: the learned ``n2v-sqrt`` policy when its training fits the deadline, else
``blindspot-sqrt``.

``n2v-sqrt`` is chosen only when it is registered and says that it fits: either through the
``fits=`` predicate it registered with (:attr:`PolicyInfo.fits`) or a module-level
``fits_deadline(problem) -> bool`` in :mod:`dwellwise.planners.policies.n2v_sqrt`. Both read the
deadline (seconds) from ``problem.options["deadline"]`` when given. Without such a promise the
training could overrun the time the instrument waits, so ``auto`` answers with ``blindspot-sqrt``,
which needs no training and has the same unbiased water-filling form.
"""

from __future__ import annotations

import importlib
import logging

import numpy as np
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


@register("auto", "n2v-sqrt when its training fits the deadline, else blindspot-sqrt")
def auto(problem: DwellProblem) -> np.ndarray:
    """Dwell map (seconds) of the policy chosen by :func:`choose`."""
    name = choose(problem)
    log.info("auto dwell policy chose %s", name)
    return get_policy(name).func(problem)
