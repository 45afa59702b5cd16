"""Energy calibration of a multichannel analyser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EnergyAxis:
    """Linear MCA calibration: channel ``i`` is centred on ``offset_kev + gain_kev * i``.

    The default is the dwellwise detector: 4096 channels of 10 eV from 0 keV.
    """

    channels: int = 4096
    """Number of channels."""
    gain_kev: float = 0.010
    """Width of one channel, keV."""
    offset_kev: float = 0.0
    """Centre of channel 0, keV."""

    def __post_init__(self) -> None:
        if self.channels < 2 or self.channels > 65534:
            raise ValueError(f"an energy axis needs 2..65534 channels, got {self.channels}")
        if not self.gain_kev > 0:
            raise ValueError(f"channel width must be positive keV, got {self.gain_kev}")

    @property
    def centers(self) -> np.ndarray:
        """Channel centres, keV, ``(channels,)``."""
        return self.offset_kev + self.gain_kev * np.arange(self.channels)

    @property
    def edges(self) -> np.ndarray:
        """Channel boundaries, keV, ``(channels + 1,)``."""
        return self.offset_kev + self.gain_kev * (np.arange(self.channels + 1) - 0.5)

    def channel_of(self, energy_kev: float | np.ndarray) -> np.ndarray:
        """Nearest channel index for an energy (may fall outside the axis)."""
        return np.rint((np.asarray(energy_kev) - self.offset_kev) / self.gain_kev).astype(np.int64)

    @classmethod
    def from_centers(cls, centers: np.ndarray) -> EnergyAxis:
        """Recover a linear calibration from channel centres (e.g. a file's energy dataset)."""
        centers = np.asarray(centers, dtype=float)
        if centers.ndim != 1 or centers.size < 2:
            raise ValueError("energy axis needs a 1-D array of at least 2 channel centres")
        gain = (centers[-1] - centers[0]) / (centers.size - 1)
        if not np.allclose(np.diff(centers), gain, rtol=1e-4, atol=1e-9):
            raise ValueError("energy axis is not linear; dwellwise needs a linear calibration")
        return cls(channels=centers.size, gain_kev=float(gain), offset_kev=float(centers[0]))
