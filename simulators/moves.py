"""Point-to-point moves of the X/Y stage between fly-scanned rows."""

from __future__ import annotations

import numpy as np
from dwellwise.simulators.kinematics import Kinematics


def transition_time(
    dx: np.ndarray | float,
    dy: np.ndarray | float,
    kin: Kinematics,
    overlap_s: np.ndarray | float = 0.0,
):
    """Time (s) between one row's run-out end and the next row's run-up start.

    x moves ``dx`` mm from rest to rest. y moves ``dy`` mm and settles; it may start when the beam
    leaves the previous row and must be done when it enters the next one, so it can overlap the
    run-out and run-up (``overlap_s`` seconds together) — the usual U-turn of a serpentine fly
    scan."""
    dx, dy = np.abs(np.asarray(dx, dtype=float)), np.abs(np.asarray(dy, dtype=float))
    y_time = kin.move_time(dy) + np.where(dy > 0, kin.settle_s, 0.0)
    t = np.maximum(kin.move_time(dx), np.maximum(y_time - np.asarray(overlap_s, float), 0.0))
    return float(t) if t.ndim == 0 else t
