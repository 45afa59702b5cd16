"""What every analysis model looks like to ``dwellwise analyze``.

A predictor maps per-pixel spectra to one number per output: element maps (counts/s of each
element's line group) or pigment probabilities. It works on its own energy calibration; the
caller resamples the cube onto ``predictor.axis`` first
(:func:`dwellwise.models.calibration.resample_counts`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from dwellwise.simulators.energy import EnergyAxis


@runtime_checkable
class SpectrumPredictor(Protocol):
    """A model that turns spectra into per-pixel outputs."""

    names: tuple[str, ...]
    """Output names: ``Fe_K``, ``Pb_L``... for element maps, pigment keys for pigment maps."""
    axis: EnergyAxis
    """Energy calibration the model expects its input on."""
    kind: str
    """``"maps"`` (outputs are counts/s) or ``"pigments"`` (outputs are probabilities 0..1)."""
    label: str
    """Short human name, e.g. ``1DCNN+`` or ``linear fit``, for reports and file attributes."""

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        """``counts`` ``(N, E)`` counts per channel on ``self.axis``, ``live_time`` ``(N,)``
        seconds -> ``(N, len(names))`` float32."""
        ...
