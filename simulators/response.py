"""Silicon drift detector response: resolution, efficiency, escape peaks, peak shapes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import xraylib
from dwellwise.simulators.energy import EnergyAxis
from scipy.special import erf, erfc, erfcx

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
    short_tail: float = 0.0
    """Share of a peak's photons in its short low-energy tail (incomplete charge collection
    near the entrance window; 0.01-0.08 on real SDDs). 0: a pure Gaussian."""
    short_tail_sigmas: float = 1.0
    """Decay length of the short tail, in Gaussian σ of the peak."""
    long_tail: float = 0.0
    """Share of a peak's photons in its long low-energy tail."""
    long_tail_sigmas: float = 10.0
    """Decay length of the long tail, in Gaussian σ of the peak."""
    step: float = 0.0
    """Share of a peak's photons in a flat shelf from 0 keV up to the peak."""

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
        shape = (1.0 - p_esc) * self._line(axis, energy_kev, extra_fwhm_kev)
        if p_esc > 0:
            shape += p_esc * self._line(axis, energy_kev - SI_KA_KEV, extra_fwhm_kev)
        return shape

    def _line(self, axis: EnergyAxis, energy_kev: float, extra_fwhm_kev: float) -> np.ndarray:
        """Unit-area Gaussian with the low-energy tails and step (hypermet shape)."""
        fwhm = float(np.hypot(self.fwhm_kev(energy_kev), extra_fwhm_kev))
        gaussian = 1.0 - self.short_tail - self.long_tail - self.step
        if not gaussian > 0.0 or min(self.short_tail, self.long_tail, self.step) < 0:
            raise ValueError("tail and step shares must be >= 0 and leave the Gaussian a share")
        if gaussian == 1.0:
            return gaussian_bins(axis, energy_kev, fwhm)
        sigma = fwhm / _FWHM_PER_SIGMA
        shape = gaussian * gaussian_bins(axis, energy_kev, fwhm)
        for share, sigmas in (
            (self.short_tail, self.short_tail_sigmas),
            (self.long_tail, self.long_tail_sigmas),
        ):
            if share > 0:
                shape += share * tail_bins(axis, energy_kev, sigma, sigmas * sigma)
        if self.step > 0:
            shape += self.step * step_bins(axis, energy_kev, sigma)
        return shape


def gaussian_bins(axis: EnergyAxis, center_kev: float, fwhm_kev: float) -> np.ndarray:
    """Unit-area Gaussian integrated over the channels of ``axis`` (exact, via erf)."""
    sigma = float(fwhm_kev) / _FWHM_PER_SIGMA
    cdf = 0.5 * (1.0 + erf((axis.edges - center_kev) / (sigma * _SQRT2)))
    return np.diff(cdf)


def tail_bins(axis: EnergyAxis, center_kev: float, sigma_kev: float, decay_kev: float) -> np.ndarray:
    """Unit-area low-energy exponential tail (decay length ``decay_kev``) convolved with the
    peak's Gaussian, per channel: ``exp(x/β + σ²/2β²) erfc(x/√2σ + σ/√2β) / 2β``, x = E − E0
    (evaluated at channel centres, renormalised to unit area on an unbounded axis)."""
    x = axis.centers - center_kev
    z = x / (sigma_kev * _SQRT2) + sigma_kev / (decay_kev * _SQRT2)
    a = x / decay_kev + sigma_kev**2 / (2 * decay_kev**2)
    # exp(a)·erfc(z) without overflow: for z > 0 it is exp(a − z²)·erfcx(z)
    above = z > 0
    density = np.empty_like(x)
    density[above] = np.exp(a[above] - z[above] ** 2) * erfcx(z[above])
    density[~above] = np.exp(a[~above]) * erfc(z[~above])
    density /= 2 * decay_kev
    return _unit_inside(density * axis.gain_kev, axis, center_kev, 8 * decay_kev + 5 * sigma_kev)


def step_bins(axis: EnergyAxis, center_kev: float, sigma_kev: float) -> np.ndarray:
    """Unit-area flat shelf from 0 keV to the peak, its edge smoothed by the peak's Gaussian."""
    x = axis.centers - center_kev
    density = 0.5 * erfc(x / (sigma_kev * _SQRT2)) * (axis.centers > 0) / center_kev
    return _unit_inside(density * axis.gain_kev, axis, center_kev, center_kev)


def _unit_inside(values: np.ndarray, axis: EnergyAxis, center_kev: float, reach_kev: float):
    """Scale to unit area when the whole term lies on the axis; keep the true share inside
    when part of it (below the first or above the last channel) does not."""
    inside = axis.edges[0] <= center_kev - reach_kev and center_kev + reach_kev <= axis.edges[-1]
    total = values.sum()
    return values / total if inside and total > 0 else values
