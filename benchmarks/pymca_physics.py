"""Held-out scenes recorded with another code's detector physics: PyMca's fluorescence model.

The networks and the linear fit learn our simulator's spectra. To see how they fare on spectra
they were not built from, :class:`PymcaRecorder` records the same held-out scenes with the line
groups and scatter peaks of PyMca's ``McaTheory`` (its own line energies and ratios from its
element database, its escape-peak model, and hypermet peaks: Gaussian plus short tail, long tail
and step, PyMca's default shape parameters), while our simulator supplies only what PyMca does not
model: the per-pixel photon rate of each element family and of each scatter term (the scene), and
the bremsstrahlung continuum shape. Each family's rate is its photons recorded wherever they fall,
as our truth defines it, so truth and model outputs stay comparable.

Needs the optional ``pymca`` extra (``pip install dwellwise[pymca]``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from dwellwise.models.map_data import Recording, count_with_truth, family_sums
from dwellwise.simulators.detector import ChannelSampler
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.lines import EXCITATION_KEV
from dwellwise.simulators.spectra import RH_KB_KEV, RH_KB_OVER_KA, SpectrumModel

HYPERMET_ALL = 15
"""PyMca's hypermet flag: Gaussian (1) + short tail (2) + long tail (4) + step (8)."""
FANO = 0.114
"""Fano factor of silicon, as our response and PyMca's default use."""


def pymca_missing() -> str | None:
    """Why PyMca cannot be used here (a message for the user), or None when it can."""
    try:
        import PyMca5  # noqa: F401
    except ImportError as exc:
        return f"PyMca is not installed ({exc}); `pip install dwellwise[pymca]` adds it"
    return None


@dataclass(frozen=True)
class PymcaShapes:
    """Unit-area spectra of PyMca's model on one axis."""

    families: dict[str, np.ndarray]
    """Family label (``Fe_K``) -> ``(E,)`` shape of all its photons (escape peaks included)."""
    rayleigh: np.ndarray
    """``(E,)`` elastic scatter of the Rh tube's Kα and Kβ."""
    compton: np.ndarray
    """``(E,)`` Compton scatter of the same."""


def pymca_shapes(
    axis: EnergyAxis,
    families: Sequence[str],
    fwhm_mn_ka_ev: float = 145.0,
    hypermet: int = HYPERMET_ALL,
) -> PymcaShapes:
    """PyMca's shape of each family in ``families`` that has a line on ``axis`` (excited by
    Rh Kα), and of the scatter peaks of Rh Kα and Kβ, for a detector of ``fwhm_mn_ka_ev`` at
    Mn Kα (5.895 keV)."""
    ka = _columns(axis, families, EXCITATION_KEV, fwhm_mn_ka_ev, hypermet)
    kb = _columns(axis, families, RH_KB_KEV, fwhm_mn_ka_ev, hypermet)
    shapes = {}
    for label in families:
        col = ka.get(label.replace("_", " "))
        if col is not None and col.sum() > 0:
            shapes[label] = _unit(col)
    w = np.array([1.0, RH_KB_OVER_KA]) / (1.0 + RH_KB_OVER_KA)
    rayleigh = w[0] * _unit(ka["Scatter Peak000"]) + w[1] * _unit(kb["Scatter Peak000"])
    compton = w[0] * _unit(ka["Scatter Compton000"]) + w[1] * _unit(kb["Scatter Compton000"])
    return PymcaShapes(shapes, rayleigh, compton)


def _columns(
    axis: EnergyAxis,
    families: Sequence[str],
    excitation_kev: float,
    fwhm_mn_ka_ev: float,
    hypermet: int,
) -> dict[str, np.ndarray]:
    """PyMca's unit-area column of every peak group and scatter peak (``Fe K``, ``Scatter
    Peak000``, ``Scatter Compton000``) on ``axis`` for one excitation energy."""
    from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory

    logging.getLogger("PyMca5").setLevel(logging.ERROR)
    theory = ClassMcaTheory.McaTheory()
    config = theory.getConfiguration()
    peaks: dict[str, list[str]] = {}
    for label in families:
        symbol, family = label.split("_")
        peaks.setdefault(symbol, []).append(family)
    config["peaks"] = {s: (f if len(f) > 1 else f[0]) for s, f in peaks.items()}
    last = axis.channels - 1
    config["fit"].update(
        xmin=0, xmax=last, stripflag=0, continuum=0, hypermetflag=hypermet, escapeflag=1,
        sumflag=0, scatterflag=1, energy=[excitation_kev], energyweight=[1.0], energyflag=[1],
        energyscatter=[1],
    )  # fmt: skip
    config["detector"].update(
        zero=axis.offset_kev, gain=axis.gain_kev, noise=_noise_kev(fwhm_mn_ka_ev), fano=FANO
    )
    theory.setConfiguration(config)
    x = np.arange(axis.channels, dtype=float)
    theory.setData(x=x, y=np.ones_like(x), xmin=0, xmax=last)
    theory.estimate()
    matrix = theory.getPeakMatrixContribution(theory.parameters)
    return dict(zip(theory.PARAMETERS[theory.NGLOBAL :], matrix.T, strict=True))


def _unit(column: np.ndarray) -> np.ndarray:
    column = np.clip(np.asarray(column, dtype=float), 0.0, None)
    return column / column.sum()


def _noise_kev(fwhm_mn_ka_ev: float) -> float:
    """PyMca's electronic noise (keV, a FWHM) for a detector of ``fwhm_mn_ka_ev`` at Mn Kα:
    FWHM² = noise² + (2.3548² · 3.85 eV · Fano · E)."""
    fano_term = 2.3548**2 * 0.00385 * FANO * 5.895  # keV²
    return float(np.sqrt((fwhm_mn_ka_ev / 1000.0) ** 2 - fano_term))


@dataclass
class PymcaRecorder:
    """A :data:`~dwellwise.models.map_data.Recorder` with PyMca's peaks (see the module)."""

    fwhm_mn_ka_ev: float = 145.0
    """Detector resolution, eV FWHM at Mn Kα."""
    hypermet: int = HYPERMET_ALL
    """PyMca's peak shape flag (1: Gaussian only; :data:`HYPERMET_ALL`: with tails and step)."""
    fallbacks: set[str] = field(default_factory=set)
    """Families PyMca has no line for on an axis; they keep our simulator's shape."""
    _cache: dict = field(default_factory=dict, repr=False)

    def _basis(self, model: SpectrumModel) -> np.ndarray:
        """``(C + 3, E)``: each family, Rayleigh, Compton (PyMca's), continuum (ours); each row
        holds the share of the component's photons inside the axis, as our basis does."""
        key = (model.axis, model.elements)
        if key not in self._cache:
            shapes = pymca_shapes(model.axis, model.elements, self.fwhm_mn_ka_ev, self.hypermet)
            ours = model.element_basis
            rows = []
            for i, label in enumerate(model.elements):
                if label in shapes.families:
                    rows.append(shapes.families[label] * min(ours[i].sum(), 1.0))
                else:
                    self.fallbacks.add(label)
                    rows.append(ours[i])
            continuum = model.basis[[c.label for c in model.components].index("continuum")]
            rows += [shapes.rayleigh, shapes.compton, continuum]
            self._cache[key] = np.asarray(rows)
        return self._cache[key]

    def expected_spectra(self, model: SpectrumModel, component_rates: np.ndarray) -> np.ndarray:
        """Expected count-rate spectra ``(N, E)`` on ``model.axis`` (counts/s per channel) of
        ``(J, N)`` component rates of ``model``, with PyMca's peaks."""
        return self._basis_rates(model, component_rates).T @ self._basis(model)

    def _basis_rates(self, model: SpectrumModel, component_rates: np.ndarray) -> np.ndarray:
        """``(C + 3, N)`` rates of the rows of :meth:`_basis`, counts/s."""
        scatter = model.group_of_component < 0
        labels = [c.label for c in model.components if c.group < 0]
        order = [labels.index(s) for s in ("rayleigh", "compton", "continuum")]
        per_family = family_sums(model, component_rates, model.elements)
        return np.concatenate([per_family, component_rates[scatter][order]])

    def __call__(
        self,
        model: SpectrumModel,
        component_rates: np.ndarray,
        shape: tuple[int, int],
        live_time_s: float,
        names: Sequence[str],
        rng: np.random.Generator,
    ) -> Recording:
        n = shape[0] * shape[1]
        rates = component_rates.reshape(model.n_components, n)
        basis_rates = self._basis_rates(model, rates)
        per_family = basis_rates[: len(model.elements)]
        live = np.full(n, live_time_s)
        counts, photons = count_with_truth(
            ChannelSampler(self._basis(model)), basis_rates, live, rng, model.axis.channels
        )
        index = {label: i for i, label in enumerate(model.elements)}
        detected = np.zeros((len(names), n))
        expected = np.zeros((len(names), n))
        for k, name in enumerate(names):
            if name in index:
                detected[k] = photons[index[name]] / live_time_s
                expected[k] = per_family[index[name]]
        return counts, live, detected.reshape(-1, *shape), expected.reshape(-1, *shape)

