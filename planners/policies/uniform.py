"""``uniform``: the standard raster, ``t_i = mean_dwell`` for every pixel.

The reference of every gain figure: with ``mean(t) = T`` and bounds ``min ≤ T ≤ max`` the constant
map is always feasible.
"""

from __future__ import annotations

import numpy as np
from dwellwise.planners.policies import DwellProblem, register


@register("uniform", "constant dwell equal to mean_dwell (standard raster)")
def uniform(problem: DwellProblem) -> np.ndarray:
    """Constant map of ``problem.mean_dwell`` seconds, shape ``(H, W)``."""
    return np.full(problem.t0.shape, problem.mean_dwell, dtype=np.float64)
