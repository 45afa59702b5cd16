"""Expected XRF spectra: a basis of unit-area components and the linear model built on it.

A *component* is a set of fluorescence lines of one element family that lie close together in
energy (Kα1+Kα2, Lβ1+Lβ2, ...) or one scatter term of the tube (Rayleigh, Compton, continuum).
Lines in a component share one attenuation factor in a paint layer, so a layered scene can shift
line ratios (Lα/Lβ) while the spectrum stays a linear map of component rates:
``spectrum[E] = Σ_j rate_j · basis[j, E]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.lines import EXCITATION_KEV, LineGroup, line_group
from dwellwise.simulators.response import SDDResponse

RH_KB_KEV = 22.724
"""Rh Kβ line of the tube, keV."""
RH_KB_OVER_KA = 0.18
"""Tube Rh Kβ/Kα intensity ratio."""
TUBE_KV = 50.0
"""Tube voltage, kV: end point of the bremsstrahlung continuum."""
SCATTER_ANGLE_DEG = 100.0
"""Angle between the incident beam and the detector axis (40° in, 40° out)."""
COMPTON_DOPPLER_FWHM_KEV = 0.35
"""Doppler broadening of the Compton peak, keV FWHM (added in quadrature)."""
CLUSTER_GAP_KEV = 0.15
"""Lines of one family closer than this share a component (one attenuation factor)."""
SCATTER_COMPONENTS = ("rayleigh", "compton", "continuum")


def compton_energy(energy_kev: float, angle_deg: float = SCATTER_ANGLE_DEG) -> float:
    """Energy of a photon Compton-scattered through ``angle_deg``, keV."""
    return energy_kev / (1.0 + energy_kev / 510.999 * (1.0 - np.cos(np.radians(angle_deg))))


@dataclass(frozen=True)
class Component:
    """One column of the spectrum basis."""

    label: str
    """``Fe_K@6.40`` for a line cluster, or ``rayleigh``/``compton``/``continuum``."""
    energy_kev: float
    """Intensity-weighted energy, keV (used for attenuation)."""
    group: int
    """Index of its element channel, or -1 for scatter."""
    weight: float
    """Share of its element family's detected photons when unattenuated (1 for scatter)."""
    detected_cross_section: float
    """Σ over its lines of production cross-section × detector efficiency, cm²/g (0 for
    scatter): detected photons per unit incident flux and unit mass of the element."""


class SpectrumModel:
    """Pure-element and scatter spectra on an energy axis, and the linear model built on them.

    ``elements`` are channel labels (``Fe_K``, ``Pb_L``, ``Pb_M``...). Rates are *detected*
    photon rates, counts/s: an element rate is the rate of all photons of that family that the
    detector records, wherever their energy falls.
    """

    def __init__(
        self,
        elements: Sequence[str],
        axis: EnergyAxis | None = None,
        response: SDDResponse | None = None,
        excitation_kev: float = EXCITATION_KEV,
    ) -> None:
        if len(set(elements)) != len(elements):
            raise ValueError(f"element channels must be unique, got {list(elements)}")
        self.elements: tuple[str, ...] = tuple(elements)
        self.axis = axis or EnergyAxis()
        self.response = response or SDDResponse()
        self.excitation_kev = excitation_kev
        self.groups: tuple[LineGroup, ...] = tuple(line_group(e, excitation_kev) for e in elements)
        self.components, self.basis = self._build()

    # -- construction -------------------------------------------------------------------------
    def _build(self) -> tuple[tuple[Component, ...], np.ndarray]:
        components: list[Component] = []
        rows: list[np.ndarray] = []
        for gi, group in enumerate(self.groups):
            energies = np.array([ln.energy_kev for ln in group.lines])
            detected = np.array(
                [ln.cross_section for ln in group.lines]
            ) * self.response.efficiency(energies)
            share = detected / detected.sum()
            for members in _clusters(energies):
                w = share[members].sum()
                shape = sum(share[m] * self.response.peak(self.axis, energies[m]) for m in members)
                e_mean = float(np.dot(share[members], energies[members]) / w)
                components.append(
                    Component(
                        f"{group.label}@{e_mean:.2f}",
                        e_mean,
                        gi,
                        float(w),
                        float(detected[members].sum()),
                    )
                )
                rows.append(shape / w)
        for name, shape in self._scatter_shapes().items():
            components.append(Component(name, self.excitation_kev, -1, 1.0, 0.0))
            rows.append(shape)
        return tuple(components), np.asarray(rows)

    def _scatter_shapes(self) -> dict[str, np.ndarray]:
        r, ax, e0 = self.response, self.axis, self.excitation_kev
        norm = 1.0 + RH_KB_OVER_KA
        rayleigh = (r.peak(ax, e0) + RH_KB_OVER_KA * r.peak(ax, RH_KB_KEV)) / norm
        compton = (
            r.peak(ax, compton_energy(e0), COMPTON_DOPPLER_FWHM_KEV)
            + RH_KB_OVER_KA * r.peak(ax, compton_energy(RH_KB_KEV), COMPTON_DOPPLER_FWHM_KEV)
        ) / norm
        return {"rayleigh": rayleigh, "compton": compton, "continuum": self._continuum()}

    def _continuum(self) -> np.ndarray:
        """Scattered tube bremsstrahlung: Kramers (E_max − E)/E times detector efficiency,
        normalised over 0.5 keV..E_max so the part inside the axis has its true share."""
        fine = np.linspace(0.5, TUBE_KV, 2000)
        density = (TUBE_KV - fine) / fine * self.response.efficiency(fine)
        total = np.trapezoid(density, fine)
        centers = self.axis.centers
        inside = (centers > 0.5) & (centers < TUBE_KV)
        out = np.zeros(self.axis.channels)
        out[inside] = np.interp(centers[inside], fine, density) * self.axis.gain_kev / total
        return out

    # -- views ---------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return len(self.components)

    @cached_property
    def group_of_component(self) -> np.ndarray:
        """``(J,)`` element channel index of each component, -1 for scatter."""
        return np.array([c.group for c in self.components])

    @cached_property
    def element_basis(self) -> np.ndarray:
        """``(C, E)`` unit-area spectrum of each element family, unattenuated line ratios."""
        out = np.zeros((len(self.elements), self.axis.channels))
        for comp, row in zip(self.components, self.basis, strict=True):
            if comp.group >= 0:
                out[comp.group] += comp.weight * row
        return out

    @cached_property
    def roi_windows(self) -> np.ndarray:
        """``(C, 2)`` inclusive channel range of each element's ROI: its strongest line ± 1 FWHM."""
        out = np.zeros((len(self.elements), 2), dtype=np.int64)
        for i, group in enumerate(self.groups):
            e, fwhm = group.main_energy_kev, float(self.response.fwhm_kev(group.main_energy_kev))
            lo, hi = self.axis.channel_of(e - fwhm), self.axis.channel_of(e + fwhm)
            out[i] = np.clip([lo, hi], 0, self.axis.channels - 1)
        return out

    @cached_property
    def roi_matrix(self) -> np.ndarray:
        """``(C, E)`` 0/1 matrix: ROI counts = ``roi_matrix @ spectrum``."""
        out = np.zeros((len(self.elements), self.axis.channels))
        for i, (lo, hi) in enumerate(self.roi_windows):
            out[i, lo : hi + 1] = 1.0
        return out

    # -- the linear model ----------------------------------------------------------------------
    def component_rates(
        self,
        element_rates: np.ndarray,
        scatter_rates: np.ndarray | Sequence[float] | None = None,
    ) -> np.ndarray:
        """Split element rates ``(C, ...)`` into component rates ``(J, ...)`` with unattenuated
        line ratios. ``scatter_rates`` is ``(3, ...)`` or 3 numbers (Rayleigh, Compton,
        continuum, counts/s); default none."""
        element_rates = np.asarray(element_rates, dtype=float)
        if element_rates.shape[0] != len(self.elements):
            raise ValueError(
                f"element rates have {element_rates.shape[0]} channels, model has "
                f"{len(self.elements)} ({', '.join(self.elements)})"
            )
        tail = element_rates.shape[1:]
        out = np.zeros((self.n_components, *tail))
        weights = np.array([c.weight for c in self.components])
        lines = self.group_of_component >= 0
        out[lines] = element_rates[self.group_of_component[lines]] * weights[lines].reshape(
            -1, *([1] * len(tail))
        )
        if scatter_rates is not None:
            s = np.asarray(scatter_rates, dtype=float)
            s = s.reshape(3, *([1] * len(tail))) if s.ndim == 1 else s
            out[~lines] = np.broadcast_to(s, (3, *tail))
        return out

    def expected_spectra(self, component_rates: np.ndarray) -> np.ndarray:
        """Expected count-rate spectra, counts/s per channel: ``(J, ...) -> (..., E)``."""
        rates = np.asarray(component_rates, dtype=float)
        return np.tensordot(rates, self.basis, axes=(0, 0))

    def expected_cube(
        self, element_rates: np.ndarray, scatter_rates: np.ndarray | Sequence[float] | None = None
    ) -> np.ndarray:
        """Element rate maps ``(C, H, W)`` counts/s -> expected spectrum cube ``(H, W, E)``
        counts/s per channel."""
        return self.expected_spectra(self.component_rates(element_rates, scatter_rates))

    @cached_property
    def roi_response(self) -> np.ndarray:
        """``(C, J)``: expected ROI counts per photon of each component."""
        return self.roi_matrix @ self.basis.T

    def roi_rates(self, component_rates: np.ndarray) -> np.ndarray:
        """Expected ROI count rate of each element, counts/s: ``(J, ...) -> (C, ...)``.
        Includes everything that falls in the window (overlapping lines, scatter)."""
        return np.tensordot(self.roi_response, np.asarray(component_rates, dtype=float), axes=1)


def _clusters(energies: np.ndarray) -> list[np.ndarray]:
    """Group line indices whose energies are within ``CLUSTER_GAP_KEV`` of a neighbour."""
    order = np.argsort(energies)
    splits = np.flatnonzero(np.diff(energies[order]) > CLUSTER_GAP_KEV) + 1
    return [np.sort(c) for c in np.split(order, splits)]


def element_spectrum(label: str, axis: EnergyAxis | None = None, **kwargs) -> np.ndarray:
    """Unit-area spectrum of one element family on any energy axis, e.g. ``element_spectrum("Fe_K")``."""
    return SpectrumModel([label], axis=axis, **kwargs).element_basis[0]
