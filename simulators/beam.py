"""Where the beam falls on a simulated painting: stage positions (mm) to scene pixels and rates.

Shared by the simulated SDD (``dwellwise.drivers.sim_sdd``) and the simulated EPICS MCA IOC
(``dwellwise.simulators.mca_ioc``), so both see the same painting under the same stage position.
"""

from __future__ import annotations

import threading

import numpy as np
from dwellwise.simulators.scenes import Scene


class BeamPosition:
    """Maps stage positions (mm) to scene pixels; pixel (0, 0) is centred at x = y = 0 mm."""

    def __init__(self, scene: Scene, pixel_size: float) -> None:
        self.scene = scene
        self.pixel_size = float(pixel_size)
        self._rows: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def pixel(self, x: np.ndarray, y: float) -> tuple[int, np.ndarray]:
        """Scene row and columns under positions ``x`` (mm) on row position ``y`` (mm); -1 when
        off the painting."""
        h, w = self.scene.shape
        r = int(np.floor(y / self.pixel_size + 0.5))
        c = np.floor(np.asarray(x) / self.pixel_size + 0.5).astype(np.int64)
        c[(c < 0) | (c >= w)] = -1
        return (r if 0 <= r < h else -1), c

    def component_rates(self, x: np.ndarray, y: float) -> np.ndarray:
        """``(J, N)`` component rates, counts/s, under positions ``x`` on row ``y`` (0 off the
        painting)."""
        r, c = self.pixel(np.atleast_1d(x), y)
        n_comp = self.scene.model.n_components
        out = np.zeros((n_comp, c.size))
        if r < 0:
            return out
        row = self._row(r)
        on = c >= 0
        out[:, on] = row[:, c[on]]
        return out

    def truth(self, shape: tuple[int, int], pixel_size: float, origin: tuple[float, float]):
        """Truth ``(rates, roi_rates)`` ``(C, H, W)`` counts/s sampled on a scan grid."""
        h, w = shape
        xs = origin[0] + pixel_size * np.arange(w)
        ys = origin[1] + pixel_size * np.arange(h)
        rates = np.zeros((len(self.scene.elements), h, w))
        roi = np.zeros_like(rates)
        for i, y in enumerate(ys):
            r, c = self.pixel(xs, y)
            if r < 0:
                continue
            on = c >= 0
            rates[:, i, on] = self.scene.rates[:, r, c[on]]
            roi[:, i, on] = self.scene.roi_rates[:, r, c[on]]
        return rates, roi

    def _row(self, r: int) -> np.ndarray:
        with self._lock:
            if r not in self._rows:
                self._rows[r] = self.scene.component_rates(slice(r, r + 1))[:, 0, :]
            return self._rows[r]
