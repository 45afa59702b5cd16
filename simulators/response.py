"""Silicon drift detector response: resolution, efficiency, escape peaks, peak shapes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import xraylib
from dwellwise.simulators.energy import EnergyAxis
from scipy.special import erf

FANO = 0.114
"""Fano factor of silicon."""
PAIR_ENERGY_EV = 3.85
"""Mean energy per electron-hole pair in silicon, eV."""
SI_KA_KEV = xraylib.LineEnergy(14, xraylib.KA_LINE)
"""Energy carried away by an escaping Si Kα photon, keV (≈1.74)."""
_SQRT2 = np.sqrt(2.0)
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class SDDResponse:
    """Energy response and efficiency of a silicon drift detector in air.

    FWHM(E) = sqrt(σ_e² + 2.355² · F · ε · E), with σ_e (electronic noise, eV FWHM) set so that
    the FWHM at Mn Kα (5.899 keV) equals ``fwhm_mn_ka_ev``.
    """

    fwhm_mn_ka_ev: float = 145.0
    """Resolution at Mn Kα, eV FWHM."""
    be_window_um: float = 8.0
    """Beryllium entrance window, µm."""
    si_thickness_um: float = 450.0
    """Sensitive silicon thickness, µm."""
    air_path_mm: float = 10.0
    """Air between the painting and the detector window, mm."""
    escape: bool = True
    """Model Si K escape peaks at E − 1.74 keV."""

    @cached_property
    def electronic_noise_ev2(self) -> float:
        """σ_e², eV² (FWHM units squared), from the resolution at Mn Kα."""
        statistical = _FWHM_PER_SIGMA**2 * FANO * PAIR_ENERGY_EV * 5899.0
        if self.fwhm_mn_ka_ev**2 <= statistical:
            raise ValueError(
                f"FWHM {self.fwhm_mn_ka_ev} eV at Mn Kα is below the Fano limit "
                f"{np.sqrt(statistical):.1f} eV"
            )
        return self.fwhm_mn_ka_ev**2 - statistical

    def fwhm_kev(self, energy_kev: np.ndarray | float) -> np.ndarray:
        """Peak FWHM at an energy, keV."""
        e_ev = np.maximum(np.asarray(energy_kev, dtype=float), 0.0) * 1000.0
        fwhm_ev = np.sqrt(
            self.electronic_noise_ev2 + _FWHM_PER_SIGMA**2 * FANO * PAIR_ENERGY_EV * e_ev
        )
        return fwhm_ev / 1000.0

    def sigma_kev(self, energy_kev: np.ndarray | float) -> np.ndarray:
        """Gaussian σ at an energy, keV."""
        return self.fwhm_kev(energy_kev) / _FWHM_PER_SIGMA

    def efficiency(self, energy_kev: np.ndarray | float) -> np.ndarray:
        """Fraction of photons leaving the painting that the detector records:
        air and Be transmission times absorption in the silicon."""
        e = np.atleast_1d(np.asarray(energy_kev, dtype=float))
        out = np.empty_like(e)
        for i, ei in enumerate(e):
            mu_air = xraylib.CS_Total_CP("N0.78O0.21Ar0.01", ei) * 1.205e-3
            mu_be = xraylib.CS_Total(4, ei) * 1.848
            mu_si = xraylib.CS_Total(14, ei) * 2.33
            out[i] = np.exp(-mu_air * self.air_path_mm * 0.1 - mu_be * self.be_window_um * 1e-4) * (
                1.0 - np.exp(-mu_si * self.si_thickness_um * 1e-4)
            )
        return out if np.ndim(energy_kev) else out[0]

    def escape_fraction(self, energy_kev: float) -> float:
        """Probability that a photon of this energy loses a Si Kα photon (Reed & Ware, normal
        incidence): ½ ω_K (1 − 1/r) [1 − (μ_Kα/μ_E) ln(1 + μ_E/μ_Kα)]."""
        if not self.escape or energy_kev <= xraylib.EdgeEnergy(14, xraylib.K_SHELL):
            return 0.0
        omega = xraylib.FluorYield(14, xraylib.K_SHELL)
        jump = xraylib.JumpFactor(14, xraylib.K_SHELL)
        mu_e = xraylib.CS_Total(14, energy_kev)
        mu_ka = xraylib.CS_Total(14, SI_KA_KEV)
        return float(0.5 * omega * (1 - 1 / jump) * (1 - mu_ka / mu_e * np.log1p(mu_e / mu_ka)))

    def peak(self, axis: EnergyAxis, energy_kev: float, extra_fwhm_kev: float = 0.0) -> np.ndarray:
        """Unit-area response to photons of one energy, integrated over each channel.

        Includes the escape peak; the area inside the axis is below 1 where the peak or its
        escape falls (partly) outside it. ``extra_fwhm_kev`` adds broadening in quadrature
        (e.g. Doppler broadening of the Compton peak).
        """
        p_esc = self.escape_fraction(energy_kev)
        shape = (1.0 - p_esc) * gaussian_bins(
            axis, energy_kev, np.hypot(self.fwhm_kev(energy_kev), extra_fwhm_kev)
        )
        if p_esc > 0:
            e_esc = energy_kev - SI_KA_KEV
            shape += p_esc * gaussian_bins(
                axis, e_esc, np.hypot(self.fwhm_kev(e_esc), extra_fwhm_kev)
            )
        return shape


def gaussian_bins(axis: EnergyAxis, center_kev: float, fwhm_kev: float) -> np.ndarray:
    """Unit-area Gaussian integrated over the channels of ``axis`` (exact, via erf)."""
    sigma = float(fwhm_kev) / _FWHM_PER_SIGMA
    cdf = 0.5 * (1.0 + erf((axis.edges - center_kev) / (sigma * _SQRT2)))
    return np.diff(cdf)
