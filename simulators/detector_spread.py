"""A spread of detectors for training data: each block of simulated pixels is counted on its
own random silicon drift detector, so that models learn element signatures rather than one
response's exact peak shape (resolution, low-energy tails and step, line ratios)."""

from __future__ import annotations

import numpy as np
from dwellwise.simulators.response import SDDResponse
from dwellwise.simulators.spectra import SpectrumModel
from pydantic import BaseModel, Field, model_validator

_RANGES = ("fwhm_mn_ka_ev", "short_tail", "short_tail_sigmas", "long_tail", "long_tail_sigmas", "step")


class DetectorSpread(BaseModel):
    """How the detector varies between blocks of training pixels. Each block is counted on its
    own random detector (resolution, low-energy tails and step, line ratios), so the networks
    learn element signatures rather than one response's exact peak shape; the held-out scenes
    and every other simulation keep the nominal detector."""

    fwhm_mn_ka_ev: tuple[float, float] = (135.0, 160.0)
    """Resolution at Mn Kα, eV FWHM, uniform."""
    short_tail: tuple[float, float] = (0.0, 0.08)
    """Share of each peak in its short low-energy tail, uniform."""
    short_tail_sigmas: tuple[float, float] = (0.5, 2.0)
    """Decay length of the short tail, Gaussian σ, uniform."""
    long_tail: tuple[float, float] = (0.0, 0.04)
    """Share of each peak in its long low-energy tail, uniform."""
    long_tail_sigmas: tuple[float, float] = (5.0, 20.0)
    """Decay length of the long tail, Gaussian σ, uniform."""
    step: tuple[float, float] = (0.0, 0.01)
    """Share of each peak in the flat shelf below it, uniform."""
    line_ratio_sigma: float = Field(default=0.08, ge=0)
    """Log-normal spread of each line cluster's rate (line libraries and matrix absorption
    shift the ratios within a family by several %)."""
    block_pixels: int = Field(default=2048, ge=1)
    """Pixels counted on one random detector."""

    @model_validator(mode="after")
    def _ordered(self) -> DetectorSpread:
        for name in _RANGES:
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range 0 <= low <= high, got {(lo, hi)}")
        if self.short_tail[1] + self.long_tail[1] + self.step[1] >= 1:
            raise ValueError("the tails and step must leave the Gaussian a share of every peak")
        return self

    def draw(self, rng: np.random.Generator) -> SDDResponse:
        """One random detector."""
        return SDDResponse(**{name: float(rng.uniform(*getattr(self, name))) for name in _RANGES})

    @property
    def nominal(self) -> bool:
        """Every block on the simulator's nominal detector (no spread at all)."""
        return self.model_dump(exclude={"block_pixels"}) == NOMINAL_DETECTOR.model_dump(
            exclude={"block_pixels"}
        )


NOMINAL_DETECTOR = DetectorSpread(
    fwhm_mn_ka_ev=(145.0, 145.0), short_tail=(0.0, 0.0), long_tail=(0.0, 0.0), step=(0.0, 0.0),
    line_ratio_sigma=0.0,
)  # fmt: skip
"""No spread: every pixel on the simulator's nominal detector (the recipe of the weights shipped
before 2026-11-23)."""


def spread_basis(
    model: SpectrumModel, spread: DetectorSpread, rng: np.random.Generator
) -> tuple[np.ndarray | None, np.ndarray]:
    """The basis ``(J, E)`` of ``model``'s components on one random detector of ``spread``
    (None for a spread that is nominal) and ``(J,)`` factors on the component rates that spread
    the line ratios (1 for the scatter terms)."""
    if spread.nominal:
        return None, np.ones(model.n_components)
    response = spread.draw(rng)
    variant = SpectrumModel(
        model.elements, axis=model.axis, response=response, excitation_kev=model.excitation_kev
    )
    ratios = np.exp(rng.normal(0.0, spread.line_ratio_sigma, model.n_components))
    ratios[model.group_of_component < 0] = 1.0
    return variant.basis, ratios
