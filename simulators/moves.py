"""Point-to-point moves of the X/Y stage between fly-scanned rows."""

from __future__ import annotations

import numpy as np
from dwellwise.simulators.kinematics import Kinematics


def transition_time(dx: np.ndarray | float, dy: np.ndarray | float, kin: Kinematics):
    """Time (s) of a move by ``dx``, ``dy`` mm with both axes moving together from rest to rest,
    plus the settle time when y moves."""
    dx, dy = np.abs(np.asarray(dx, dtype=float)), np.abs(np.asarray(dy, dtype=float))
    t = np.maximum(kin.move_time(dx), kin.move_time(dy)) + np.where(dy > 0, kin.settle_s, 0.0)
    return float(t) if t.ndim == 0 else t
