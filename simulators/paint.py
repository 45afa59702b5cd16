"""Fluorescence of layered paint: top layer, hidden bottom layer and chalk ground.

For a layer of mass thickness M (g/cm²) holding m_e g/cm² of element e, the detected rate of a
line component j at energy E_j is (Sherman's primary fluorescence for a finite layer)

    I_j = G · I_px · σ_j · m_e · f(χ_0 + χ_j) · A_above,j,        f(x) = (1 − e^{−x}) / x,

where σ_j is the component's production cross-section times detector efficiency (cm²/g),
χ_0 = μ(E_0) M / sin ψ_in and χ_j = μ(E_j) M / sin ψ_out are the layer's optical depths for the
exciting and the emitted photons, and A_above,j = exp(−Σ_above (χ_0 + χ_j)) is the Beer-Lambert
attenuation through every layer above. Each line attenuates at its own energy, so a hidden
pigment shows weaker and its line ratios (Pb Lα/Lβ, Pb L/M) shift with the depth. Mass
attenuation coefficients come from ``xraylib.CS_Total_CP``. G is the instrument sensitivity,
calibrated so that a 50 µm lead-white layer over chalk gives ``PB_L_REFERENCE_RATE`` of Pb L;
I_px is a per-pixel intensity (tube distance, surface relief).

Rayleigh and Compton scatter use the same layer integral with ``xraylib.CS_Rayl_CP`` /
``CS_Compt_CP`` at E_0 in place of σ_j, scaled by ``SCATTER_SOLID_ANGLE``; the scattered
continuum follows the Compton rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xraylib
from dwellwise.simulators.pigments import Pigment, binder, get_pigment
from dwellwise.simulators.spectra import SpectrumModel

PSI_IN_DEG = 40.0
"""Incidence angle of the beam to the surface, degrees."""
PSI_OUT_DEG = 40.0
"""Take-off angle of the detector to the surface, degrees."""
PB_L_REFERENCE_RATE = 30_000.0
"""Detected Pb L rate of a 50 µm lead-white layer over chalk at unit intensity, counts/s."""
SCATTER_SOLID_ANGLE = 0.35
"""Ratio of scatter to fluorescence per unit cross-section at 100° (form-factor suppression)."""
CONTINUUM_PER_COMPTON = 1.2
"""Scattered continuum photons per Compton photon (Rh tube, 50 kV, no filter)."""


def _f(x: np.ndarray) -> np.ndarray:
    """(1 − e^{−x})/x, continuous at 0."""
    x = np.asarray(x, dtype=float)
    small = x < 1e-6
    return np.where(small, 1.0 - x / 2, -np.expm1(-x) / np.where(small, 1.0, x))


@dataclass
class LayerOptics:
    """Per-pigment optical constants of one layer's palette for one spectrum model."""

    mu_in: np.ndarray
    """``(P,)`` attenuation at E_0 per gram of pigment (binder included) / sin ψ_in, cm²/g."""
    mu_out: np.ndarray
    """``(J, P)`` attenuation at each component energy / sin ψ_out, cm²/g."""
    element_mass: np.ndarray
    """``(J, P)`` grams of the component's element per gram of pigment (0 for scatter)."""
    rayleigh: np.ndarray
    """``(P,)`` Rayleigh cross-section at E_0 per gram of pigment, cm²/g."""
    compton: np.ndarray
    """``(P,)`` Compton cross-section at E_0 per gram of pigment, cm²/g."""


def layer_optics(pigments: Sequence[Pigment], model: SpectrumModel) -> LayerOptics:
    """Optical constants of a palette, binder included (its mass rides on each pigment)."""
    b = binder()
    per_pigment_binder = b.mass_fraction / (1.0 - b.mass_fraction)
    e0 = model.excitation_kev
    s_in, s_out = np.sin(np.radians(PSI_IN_DEG)), np.sin(np.radians(PSI_OUT_DEG))
    energies = [c.energy_kev for c in model.components]

    def mu(formula: str, e: float) -> float:
        return xraylib.CS_Total_CP(formula, e)

    n_p, n_j = len(pigments), len(model.components)
    mu_in = np.empty(n_p)
    mu_out = np.empty((n_j, n_p))
    element_mass = np.zeros((n_j, n_p))
    rayleigh = np.empty(n_p)
    compton = np.empty(n_p)
    z_of_group = [g.z for g in model.groups]
    for p, pig in enumerate(pigments):
        mu_in[p] = (mu(pig.formula, e0) + per_pigment_binder * mu(b.formula, e0)) / s_in
        for j, e in enumerate(energies):
            mu_out[j, p] = (mu(pig.formula, e) + per_pigment_binder * mu(b.formula, e)) / s_out
        fractions = pig.mass_fractions()
        for j, comp in enumerate(model.components):
            if comp.group >= 0:
                element_mass[j, p] = fractions.get(z_of_group[comp.group], 0.0)
        rayleigh[p] = xraylib.CS_Rayl_CP(pig.formula, e0) + per_pigment_binder * xraylib.CS_Rayl_CP(
            b.formula, e0
        )
        compton[p] = xraylib.CS_Compt_CP(
            pig.formula, e0
        ) + per_pigment_binder * xraylib.CS_Compt_CP(b.formula, e0)
    return LayerOptics(mu_in, mu_out, element_mass, rayleigh, compton)


class PaintStack:
    """Turns per-pixel pigment masses of a layer stack into detected component rates."""

    def __init__(
        self,
        model: SpectrumModel,
        palettes: Sequence[Sequence[Pigment]],
        gain: float | None = None,
    ) -> None:
        """``gain`` is the instrument sensitivity G; by default it is calibrated so that
        50 µm of lead white over chalk gives ``PB_L_REFERENCE_RATE`` of Pb L."""
        self.model = model
        self.optics = [layer_optics(p, model) for p in palettes]
        self.sigma = np.array([c.detected_cross_section for c in model.components])
        self._scatter_eff = float(model.response.efficiency(compton_like(model)))
        self.gain = _calibrated_gain(model) if gain is None else gain

    def component_rates(self, masses: Sequence[np.ndarray], intensity: np.ndarray) -> np.ndarray:
        """Detected rates ``(J, N)`` counts/s from pigment masses of each layer, top first
        (``(P_layer, N)`` g/cm² of pigment, binder excluded) and intensity ``(N,)``."""
        n_j = self.model.n_components
        n = intensity.shape[0]
        rates = np.zeros((n_j, n))
        scatter = np.zeros((2, n))
        above = np.zeros((n_j, n))  # optical depth of the layers above, per component
        above_scatter = np.zeros(n)
        lines = self.model.group_of_component >= 0
        for optics, m in zip(self.optics, masses, strict=True):
            m = np.asarray(m, dtype=float).reshape(len(optics.mu_in), n)
            chi_in = optics.mu_in @ m
            chi_out = optics.mu_out @ m
            depth = chi_in[None, :] + chi_out
            emit = (optics.element_mass @ m) * _f(depth) * np.exp(-above)
            rates[lines] += self.sigma[lines, None] * emit[lines]
            scatter_depth = chi_in + chi_out[-1]  # continuum row sits near E_0
            weight = _f(scatter_depth) * np.exp(-above_scatter)
            scatter[0] += (optics.rayleigh @ m) * weight
            scatter[1] += (optics.compton @ m) * weight
            above += depth
            above_scatter += scatter_depth
        scatter *= SCATTER_SOLID_ANGLE * self._scatter_eff
        rates[~lines] = np.vstack([scatter, CONTINUUM_PER_COMPTON * scatter[1:2]])
        return self.gain * rates * intensity[None, :]


def _calibrated_gain(model: SpectrumModel) -> float:
    """G such that 50 µm lead white over 185 µm chalk gives ``PB_L_REFERENCE_RATE`` of Pb L."""
    lead_white, chalk = get_pigment("lead_white"), get_pigment("calcium_carbonate")
    ref_model = SpectrumModel(["Pb_L"], axis=model.axis, response=model.response)
    ref = PaintStack(ref_model, [[lead_white], [chalk]], gain=1.0)
    masses = [
        np.array([[pigment_mass(lead_white, 50.0)]]),
        np.array([[pigment_mass(chalk, 185.0)]]),
    ]
    rates = ref.component_rates(masses, np.ones(1))
    return PB_L_REFERENCE_RATE / float(rates[ref_model.group_of_component == 0].sum())


def compton_like(model: SpectrumModel) -> float:
    """Energy at which scattered photons are detected, keV (between Compton and Rayleigh)."""
    return model.excitation_kev * 0.97


def pigment_mass(pigment: Pigment, thickness_um: float | np.ndarray) -> np.ndarray:
    """Pigment mass per area (g/cm²) in a paint layer of this thickness (binder included in
    the layer, excluded from the returned mass)."""
    b = binder()
    # Volume-weighted density of the dry paint, then the pigment's share of its mass.
    v_pig = (1.0 - b.mass_fraction) / pigment.density
    v_bind = b.mass_fraction / b.density
    paint_density = 1.0 / (v_pig + v_bind)
    return np.asarray(thickness_um) * 1e-4 * paint_density * (1.0 - b.mass_fraction)
