"""Training and held-out data for the pigment classifier: simulated two-layer paint over chalk.

The recipe follows paper 004 (Xu et al.): a top pigment layer, a bottom pigment layer and a
calcium-carbonate ground of 150-200 µm. The paper's simulation puts one pigment in each layer
(top 50-200 µm, bottom 100-150 µm, on a 10 µm grid); its mock-ups mix 1-5 pigments per layer
(Table 2, mass fractions down to 5 %) with tops of 30-200 µm. Here half of the layers hold one
pigment and half a mixture of 2-3 (fractions ≥ 5 %), a share of the layers are thinner (tops of
10-50 µm, bottoms of 20-100 µm, like dwellwise's own scenes and the mock-ups' thin strips), some
layers carry chalk as an extender, and some pixels have no bottom layer (bare ground).
:class:`~dwellwise.simulators.paint.PaintStack` turns each stack into detected component rates
with Beer-Lambert attenuation of every line and Rayleigh/Compton scatter from each formula's
cross-sections; pigment masses come from :func:`~dwellwise.simulators.paint.pigment_mass`.

**Classes** are the 11 pigments of paper 004 Table 1 other than calcium carbonate: the chalk
ground is under every pixel, so as a class it would always be 1 (the paper's network also has 11
outputs). Chalk used as an extender carries no label.

**Labels.** ``present`` is the paper's definition: the pigment is in some layer. ``labels`` (what
the network is trained on and scored against) asks more: the pigment is in some layer *and* its
fluorescence would be detectable in a reference measurement of that pixel, i.e. the net counts it
adds to one of its element's ROI windows reach the Currie detection limit
``2.71 + 4.65 sqrt(B)`` (B: the counts from everything else in that window) at
``reference_live_time_s``. A pigment buried under 100 µm of vermilion sends no photon through;
asking a network to report it would score the physics, not the network.

**Count levels.** The simulator's instrument gives 30,000 counts/s of Pb L for 50 µm of lead
white over chalk (``PB_L_REFERENCE_RATE``), i.e. 2,000-50,000 counts/s in all depending on the
paint. Paper 004 measured 10 s per point with an XGLab ELIO at 40 kV / 40 µA; assuming the few
thousand counts/s such a low-power instrument collects, its spectra hold some 10⁴-10⁵ counts.
This simulator collects that in about 1 s of live time (held-out spectra at 1 s: median 2.2·10⁴
counts, 10-90 %: 0.8-3.9·10⁴ over 2.8-23 keV), so the reference measurement is 1 s. Training live
times are drawn log-uniformly between 0.02 s and 3 s (about 10²-10⁵ counts: dwellwise's own
adaptive dwells up to the paper's exposure) at a per-pixel intensity of 0.6-1.4. The benchmark
scores 0.02, 0.1, 1 and 3 s: the hard pairs do not improve from 1 s to 3 s, they are limited by
the physics, not by the count level.

**Counts.** The training path draws Poisson counts per channel of the model's own axis from the
expected spectrum (a channel of a Poisson process is Poisson, so this equals photon counting
followed by rebinning, without the cost), each block of spectra on its own random detector
(``recipe.detector``, :class:`~dwellwise.simulators.detector_spread.DetectorSpread`). The
held-out path (``end_to_end=True``) counts photons
with :class:`~dwellwise.simulators.detector.PoissonSDD` on the detector's 4096-channel default
calibration, dead time included, and resamples them onto the model's axis with
:func:`~dwellwise.models.calibration.resample_counts`, as ``dwellwise analyze`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from dwellwise.models.calibration import resample_counts
from dwellwise.simulators.detector import PoissonSDD
from dwellwise.simulators.detector_spread import DetectorSpread, spread_basis
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.lines import groups_for_element
from dwellwise.simulators.paint import PaintStack, pigment_mass
from dwellwise.simulators.pigments import Pigment, get_pigment, pigment_database
from dwellwise.simulators.spectra import SpectrumModel
from pydantic import BaseModel, Field, model_validator

GROUND_KEY = "calcium_carbonate"
"""The ground (and extender) pigment: present under every pixel, not a class."""
PAPER = "004"
"""Paper whose Table 1 defines the classes."""
CURRIE_CONSTANT = 2.71
"""Constant term of the Currie detection limit, counts."""
CURRIE_FACTOR = 4.65
"""Factor of sqrt(background) in the Currie detection limit (5 % false positives and negatives)."""


def pigment_classes() -> tuple[str, ...]:
    """Keys of the 11 classes: paper 004's Table 1 pigments without the chalk ground."""
    return tuple(
        key for key, p in pigment_database().items() if PAPER in p.papers and key != GROUND_KEY
    )


class PigmentRecipe(BaseModel, frozen=True):
    """How simulated paint stacks are drawn (paper 004's simulation and mock-ups)."""

    top_thickness_um: tuple[float, float] = (50.0, 200.0)
    """Thickness range of the top pigment layer, µm (paper 004 simulation)."""
    bottom_thickness_um: tuple[float, float] = (100.0, 150.0)
    """Thickness range of the bottom pigment layer, µm (paper 004 simulation)."""
    ground_thickness_um: tuple[float, float] = (150.0, 200.0)
    """Thickness range of the chalk ground, µm (paper 004)."""
    thickness_step_um: float = Field(10.0, ge=0)
    """Thickness grid, µm (the paper's 10 µm); 0 draws thicknesses continuously."""
    thin_layer_fraction: float = Field(0.3, ge=0, le=1)
    """Share of layers drawn from the thin ranges instead (each layer on its own)."""
    thin_top_thickness_um: tuple[float, float] = (10.0, 50.0)
    """Thin top layers, µm (mock-up strips from 30 µm; dwellwise scenes 12-45 µm)."""
    thin_bottom_thickness_um: tuple[float, float] = (20.0, 100.0)
    """Thin bottom layers, µm (dwellwise scenes hide 25-70 µm)."""
    single_pigment_fraction: float = Field(0.5, ge=0, le=1)
    """Share of layers holding one pigment (the paper's simulation); the rest are mixtures."""
    max_pigments_per_layer: int = Field(3, ge=1)
    """Largest number of class pigments in a mixture."""
    min_mass_fraction: float = Field(0.05, gt=0, le=0.5)
    """Smallest mass fraction of a pigment in a mixture (paper 004 Table 2 goes down to 5 %)."""
    extender_fraction: float = Field(0.15, ge=0, le=1)
    """Share of layers with chalk as an extender (10-50 % of the layer's pigment mass)."""
    bare_ground_fraction: float = Field(0.1, ge=0, le=1)
    """Share of pixels without a bottom layer (the top layer lies on the ground)."""
    live_time_s: tuple[float, float] = (0.02, 3.0)
    """Live time range, seconds, drawn log-uniformly."""
    intensity: tuple[float, float] = (0.6, 1.4)
    """Per-pixel relative excitation intensity (tube distance, relief), drawn uniformly."""
    reference_live_time_s: float = Field(1.0, gt=0)
    """Live time of the reference measurement that decides whether a pigment is detectable."""
    detector: DetectorSpread = DetectorSpread()
    """How the detector varies between blocks of spectra on the fast (training) path; the
    photon-counting path (``end_to_end``, the held-out sets) keeps the nominal detector."""

    @model_validator(mode="after")
    def _ranges(self) -> PigmentRecipe:
        for name in (
            "top_thickness_um",
            "bottom_thickness_um",
            "ground_thickness_um",
            "thin_top_thickness_um",
            "thin_bottom_thickness_um",
            "live_time_s",
            "intensity",
        ):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < low <= high, got ({lo}, {hi})")
        if self.max_pigments_per_layer * self.min_mass_fraction > 1:
            raise ValueError("max_pigments_per_layer × min_mass_fraction must not exceed 1")
        return self


TRAINING_RECIPE = PigmentRecipe()
"""The recipe the shipped weights are trained on."""
HELDOUT_RECIPE = TRAINING_RECIPE.model_copy(update={"thickness_step_um": 0.0})
"""Held-out draws: thicknesses off the training grid (and other seeds, see SEEDS)."""

TRAIN_STREAM = 1
"""Training stacks of seed s come from ``numpy.random.default_rng([s, TRAIN_STREAM])``."""
VALIDATION_STREAM = 2
"""Validation stacks (early stopping, thresholds) of seed s: ``[s, VALIDATION_STREAM]``."""
HELDOUT_STREAM = 3
"""Held-out stacks of seed s: ``[s, HELDOUT_STREAM]`` (never drawn by training)."""
MOCKUP_STREAM = 4
"""Held-out mock-up stacks (paper 004 Table 2) of seed s: ``[s, MOCKUP_STREAM]``."""


@dataclass(frozen=True)
class PaintLayers:
    """Drawn paint stacks of N pixels; fractions are of the layer's pigment mass."""

    top: np.ndarray
    """``(N, P + 1)`` mass fractions in the top layer, classes then chalk."""
    bottom: np.ndarray
    """``(N, P + 1)`` mass fractions in the bottom layer (all 0: bare ground)."""
    top_um: np.ndarray
    """``(N,)`` top layer thickness, µm."""
    bottom_um: np.ndarray
    """``(N,)`` bottom layer thickness, µm (0 for bare ground)."""
    ground_um: np.ndarray
    """``(N,)`` chalk ground thickness, µm."""
    intensity: np.ndarray
    """``(N,)`` relative excitation intensity."""


@dataclass(frozen=True)
class PigmentSamples:
    """Simulated spectra with their targets."""

    counts: np.ndarray
    """``(N, E)`` float32 counts per channel on ``axis``."""
    live_time: np.ndarray
    """``(N,)`` live time, seconds."""
    expected: np.ndarray
    """``(N, E)`` float32 expected count rate per channel, counts/s (for redrawing noise)."""
    labels: np.ndarray
    """``(N, P)`` uint8: pigment in the stack and detectable at the reference live time."""
    present: np.ndarray
    """``(N, P)`` uint8: pigment in some layer (paper 004's definition)."""
    layers: PaintLayers
    """The stacks the spectra come from."""
    axis: EnergyAxis
    """Energy calibration of ``counts``."""
    names: tuple[str, ...]
    """Class keys, in column order."""

    def __len__(self) -> int:
        return self.counts.shape[0]

    def redraw(self, rng: np.random.Generator, recipe: PigmentRecipe) -> PigmentSamples:
        """Same stacks, new live times and new Poisson counts (fresh noise for an epoch)."""
        live = draw_live_time(len(self), rng, recipe)
        counts = rng.poisson(self.expected * live[:, None].astype(np.float32))
        return PigmentSamples(
            counts=counts.astype(np.float32),
            live_time=live,
            expected=self.expected,
            labels=self.labels,
            present=self.present,
            layers=self.layers,
            axis=self.axis,
            names=self.names,
        )


class PigmentPhysics:
    """Spectrum model, paint stack and ROI windows for the class pigments on one axis."""

    def __init__(self, axis: EnergyAxis) -> None:
        self.names = pigment_classes()
        self.pigments: list[Pigment] = [get_pigment(k) for k in self.names]
        self.chalk = get_pigment(GROUND_KEY)
        palette = [*self.pigments, self.chalk]
        zs = sorted({z for p in palette for z in p.mass_fractions()})
        labels = [g.label for z in zs for g in groups_for_element(z)]
        self.axis = axis
        # Rates do not depend on the axis; the detector model (default 4096 channels) gives the
        # ROI windows for detectability and the photon-counting path, `model` the fast basis.
        self.detector_model = SpectrumModel(labels)
        self.model = SpectrumModel(labels, axis=axis)
        self.stack = PaintStack(self.detector_model, [palette, palette, [self.chalk]])
        self.families = self._families()

    def _families(self) -> list[np.ndarray]:
        """For each class, its element channels whose main line lies on the model's axis."""
        lowest = self.axis.offset_kev
        out = []
        for pig in self.pigments:
            zs = set(pig.mass_fractions())
            idx = [
                c
                for c, g in enumerate(self.detector_model.groups)
                if g.z in zs and g.main_energy_kev >= lowest
            ]
            if not idx:
                raise ValueError(f"{pig.key} has no fluorescence line above {lowest} keV")
            out.append(np.array(idx))
        return out

    def masses(self, layers: PaintLayers) -> list[np.ndarray]:
        """Pigment masses per layer, ``(P + 1, N)`` g/cm², top first, then the ground."""
        palette = [*self.pigments, self.chalk]
        return [
            _mixture_masses(palette, layers.top, layers.top_um),
            _mixture_masses(palette, layers.bottom, layers.bottom_um),
            pigment_mass(self.chalk, layers.ground_um)[None, :],
        ]

    def component_rates(self, layers: PaintLayers) -> np.ndarray:
        """Detected component rates ``(J, N)``, counts/s."""
        return self.stack.component_rates(self.masses(layers), layers.intensity)

    def detectable(self, layers: PaintLayers, reference_live_time_s: float) -> np.ndarray:
        """``(N, P)`` bool: the class is in the stack and its net ROI counts at the reference
        live time reach the Currie limit in at least one of its element windows."""
        masses = self.masses(layers)
        full = self.detector_model.roi_rates(self.stack.component_rates(masses, layers.intensity))
        n, n_cls = layers.top.shape[0], len(self.names)
        out = np.zeros((n, n_cls), dtype=bool)
        t = reference_live_time_s
        for li in (0, 1):
            for p in range(n_cls):
                rows = np.flatnonzero(masses[li][p] > 0)
                if rows.size == 0:
                    continue
                without = [m[:, rows].copy() for m in masses]
                without[li][p] = 0.0
                rest = self.detector_model.roi_rates(
                    self.stack.component_rates(without, layers.intensity[rows])
                )
                fam = self.families[p]
                net = (full[fam][:, rows] - rest[fam]) * t
                limit = CURRIE_CONSTANT + CURRIE_FACTOR * np.sqrt(np.maximum(rest[fam] * t, 0))
                out[rows, p] |= np.any(net >= limit, axis=0)
        return out


@cache
def physics(axis: EnergyAxis) -> PigmentPhysics:
    """The (cached) physics of the class pigments on an axis."""
    return PigmentPhysics(axis)


def _mixture_masses(palette: list[Pigment], fractions: np.ndarray, thickness_um: np.ndarray):
    """Pigment masses ``(P, N)`` g/cm² of layers mixing ``palette`` by mass ``fractions``
    ``(N, P)``: the paint's volume is the sum of each pigment's paint volume, so
    ``m_p = w_p / Σ_q (w_q / pigment_mass(q, t))``."""
    per_pigment = np.stack([pigment_mass(p, thickness_um) for p in palette], axis=1)  # (N, P)
    safe = np.where(per_pigment > 0, per_pigment, 1.0)
    inverse_density = np.sum(np.where(per_pigment > 0, fractions / safe, 0.0), axis=1)
    total = np.where(
        inverse_density > 0, 1.0 / np.where(inverse_density > 0, inverse_density, 1), 0
    )
    return (fractions * total[:, None]).T


def _draw_thickness(rng, lo_hi, thin, step, n) -> np.ndarray:
    lo = np.where(thin, lo_hi[1][0], lo_hi[0][0])
    hi = np.where(thin, lo_hi[1][1], lo_hi[0][1])
    if step > 0:
        k = np.floor((hi - lo) / step).astype(np.int64)
        return lo + step * rng.integers(0, k + 1)
    return rng.uniform(lo, hi)


def _draw_mixture(rng, n_classes: int, recipe: PigmentRecipe) -> np.ndarray:
    """Mass fractions ``(P + 1,)`` of one layer (classes, then chalk as extender)."""
    out = np.zeros(n_classes + 1)
    if rng.random() < recipe.single_pigment_fraction or recipe.max_pigments_per_layer == 1:
        k = 1
    else:
        k = int(rng.integers(2, recipe.max_pigments_per_layer + 1))
    chosen = rng.choice(n_classes, size=k, replace=False)
    w = recipe.min_mass_fraction + (1.0 - k * recipe.min_mass_fraction) * rng.dirichlet(np.ones(k))
    out[chosen] = w
    if rng.random() < recipe.extender_fraction:
        chalk = rng.uniform(0.1, 0.5)
        out[:n_classes] *= 1.0 - chalk
        out[n_classes] = chalk
    return out


def draw_layers(n: int, rng: np.random.Generator, recipe: PigmentRecipe) -> PaintLayers:
    """Draw ``n`` paint stacks from the recipe."""
    n_cls = len(pigment_classes())
    top = np.stack([_draw_mixture(rng, n_cls, recipe) for _ in range(n)])
    bottom = np.stack([_draw_mixture(rng, n_cls, recipe) for _ in range(n)])
    bare = rng.random(n) < recipe.bare_ground_fraction
    bottom[bare] = 0.0
    thin_top = rng.random(n) < recipe.thin_layer_fraction
    thin_bottom = rng.random(n) < recipe.thin_layer_fraction
    step = recipe.thickness_step_um
    top_um = _draw_thickness(
        rng, (recipe.top_thickness_um, recipe.thin_top_thickness_um), thin_top, step, n
    )
    bottom_um = _draw_thickness(
        rng, (recipe.bottom_thickness_um, recipe.thin_bottom_thickness_um), thin_bottom, step, n
    )
    bottom_um = np.where(bare, 0.0, bottom_um)
    ground_um = _draw_thickness(
        rng, (recipe.ground_thickness_um, recipe.ground_thickness_um), np.zeros(n, bool), step, n
    )
    intensity = rng.uniform(*recipe.intensity, size=n)
    return PaintLayers(top, bottom, top_um, bottom_um, ground_um, intensity)


def draw_live_time(n: int, rng: np.random.Generator, recipe: PigmentRecipe) -> np.ndarray:
    """Live times ``(n,)`` seconds, log-uniform over the recipe's range."""
    lo, hi = recipe.live_time_s
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))


def spectra_from_layers(
    layers: PaintLayers,
    *,
    rng: np.random.Generator,
    recipe: PigmentRecipe,
    axis: EnergyAxis,
    live_time_s: float | np.ndarray | None = None,
    end_to_end: bool = False,
    chunk: int = 256,
) -> PigmentSamples:
    """Spectra, labels and truth for given paint stacks. ``live_time_s`` fixes the live time
    (seconds, scalar or ``(N,)``); by default it is drawn from the recipe."""
    phys = physics(axis)
    n = layers.top.shape[0]
    rates = phys.component_rates(layers)
    if end_to_end:
        expected = phys.model.expected_spectra(rates).astype(np.float32)
    else:
        expected = _spread_spectra(phys.model, rates, recipe.detector, rng)
    if live_time_s is None:
        live = draw_live_time(n, rng, recipe)
    else:
        live = np.broadcast_to(np.asarray(live_time_s, dtype=float), (n,)).copy()
        if np.any(live <= 0) or not np.all(np.isfinite(live)):
            raise ValueError("live times must be finite and > 0 seconds")
    if end_to_end:
        sdd = PoissonSDD(phys.detector_model)
        counts = np.empty((n, axis.channels), dtype=np.float32)
        for s in range(0, n, chunk):
            acq = sdd.acquire(rates[:, s : s + chunk], live_time=live[s : s + chunk], rng=rng)
            counts[s : s + chunk] = resample_counts(acq.counts, phys.detector_model.axis, axis)
    else:
        counts = rng.poisson(expected * live[:, None].astype(np.float32)).astype(np.float32)
    labels = phys.detectable(layers, recipe.reference_live_time_s)
    present = (layers.top[:, : len(phys.names)] > 0) | (layers.bottom[:, : len(phys.names)] > 0)
    return PigmentSamples(
        counts=counts,
        live_time=live,
        expected=expected,
        labels=labels.astype(np.uint8),
        present=present.astype(np.uint8),
        layers=layers,
        axis=axis,
        names=phys.names,
    )


def _spread_spectra(
    model: SpectrumModel, rates: np.ndarray, spread: DetectorSpread, rng: np.random.Generator
) -> np.ndarray:
    """Expected spectra ``(N, E)`` float32 of ``(J, N)`` component rates, each block of
    ``spread.block_pixels`` on its own random detector."""
    n = rates.shape[1]
    out = np.empty((n, model.axis.channels), dtype=np.float32)
    for s in range(0, n, spread.block_pixels):
        block = rates[:, s : s + spread.block_pixels]
        basis, ratios = spread_basis(model, spread, rng)
        basis = model.basis if basis is None else basis
        out[s : s + block.shape[1]] = (block * ratios[:, None]).T @ basis
    return out


def simulate_pigment_spectra(
    n: int,
    *,
    seed: int | Sequence[int],
    axis: EnergyAxis,
    recipe: PigmentRecipe = TRAINING_RECIPE,
    live_time_s: float | None = None,
    end_to_end: bool = False,
) -> PigmentSamples:
    """``n`` simulated two-layer spectra drawn from ``recipe``; ``seed`` seeds
    ``numpy.random.default_rng`` (an int or e.g. ``[seed, TRAIN_STREAM]``)."""
    if n < 1:
        raise ValueError(f"need at least one spectrum, got n={n}")
    rng = np.random.default_rng(seed)
    layers = draw_layers(n, rng, recipe)
    return spectra_from_layers(
        layers, rng=rng, recipe=recipe, axis=axis, live_time_s=live_time_s, end_to_end=end_to_end
    )


# -- paper 004 Table 2: the mock-up mixtures (VG + SA, the emerald-green stand-in, summed) -------
MOCKUP_TOPS: dict[str, dict[str, float]] = {
    "Top 1": {"lead_white": 55, "carmine": 10, "prussian_blue": 25, "cobalt_blue": 10},
    "Top 2": {"vermilion": 30, "carmine": 30, "cobalt_blue": 40},
    "Top 3": {"vermilion": 39, "chrome_yellow": 6, "iron_oxide": 39, "emerald_green": 16},
    "Top 4": {"vermilion": 100},
}
"""Top-layer mixtures of the mock-ups, mass %."""
MOCKUP_BOTTOMS: dict[str, dict[str, float]] = {
    "Bottom 1A": {"zinc_white": 10, "lead_white": 10, "red_lead": 10, "vermilion": 70},
    "Bottom 1B": {"zinc_white": 10, "lead_white": 20, "red_lead": 50, "vermilion": 20},
    "Bottom 1C": {"zinc_white": 10, "lead_white": 50, "red_lead": 20, "vermilion": 20},
    "Bottom 2A": {"zinc_white": 10, "lead_white": 85, "vermilion": 5},
    "Bottom 2B": {"zinc_white": 10.7, "lead_white": 88.7, "vermilion": 0.6},
    "Bottom 2C": {"zinc_white": 10, "lead_white": 50, "vermilion": 40},
    "Bottom 3A": {"zinc_white": 10, "lead_white": 15, "cobalt_blue": 15, "chrome_oxide_green": 60},
    "Bottom 3B": {"zinc_white": 10, "lead_white": 15, "cobalt_blue": 60, "chrome_oxide_green": 15},
    "Bottom 3C": {"zinc_white": 10, "lead_white": 60, "cobalt_blue": 15, "chrome_oxide_green": 15},
    "Bottom 4A": {"zinc_white": 10, "lead_white": 45, "chrome_yellow": 15, "emerald_green": 30},
    "Bottom 4B": {"zinc_white": 10, "lead_white": 30, "chrome_yellow": 30, "emerald_green": 30},
    "Bottom 4C": {"zinc_white": 10, "lead_white": 15, "chrome_yellow": 15, "emerald_green": 60},
    "Bottom 5A": {"zinc_white": 10, "vermilion": 5, "chrome_yellow": 5, "emerald_green": 80},
    "Bottom 5B": {"zinc_white": 78, "vermilion": 6, "chrome_yellow": 6, "emerald_green": 10},
    "Bottom 5C": {"zinc_white": 10, "vermilion": 15, "chrome_yellow": 15, "emerald_green": 60},
    "Bottom 6": {"vermilion": 100},
}
"""Bottom-layer mixtures of the mock-ups, mass %."""
MOCKUP_TOP_THICKNESS_UM = (30.0, 200.0)
"""Top-layer thickness range of the mock-ups, µm."""


def mockup_layers(n: int, rng: np.random.Generator, recipe: PigmentRecipe) -> PaintLayers:
    """``n`` stacks of paper 004's mock-ups: a Table 2 top over a Table 2 bottom over chalk,
    tops 30-200 µm, bottoms and ground from the recipe's main ranges (continuous draws)."""
    names = pigment_classes()
    n_cls = len(names)

    def row(mix: dict[str, float]) -> np.ndarray:
        out = np.zeros(n_cls + 1)
        for key, pct in mix.items():
            out[names.index(key)] = pct
        return out / out.sum()

    tops = np.stack([row(m) for m in MOCKUP_TOPS.values()])
    bottoms = np.stack([row(m) for m in MOCKUP_BOTTOMS.values()])
    top = tops[rng.integers(0, len(tops), size=n)]
    bottom = bottoms[rng.integers(0, len(bottoms), size=n)]
    return PaintLayers(
        top=top,
        bottom=bottom,
        top_um=rng.uniform(*MOCKUP_TOP_THICKNESS_UM, size=n),
        bottom_um=rng.uniform(*recipe.bottom_thickness_um, size=n),
        ground_um=rng.uniform(*recipe.ground_thickness_um, size=n),
        intensity=rng.uniform(*recipe.intensity, size=n),
    )


def simulate_mockup_spectra(
    n: int,
    *,
    seed: int | Sequence[int],
    axis: EnergyAxis,
    recipe: PigmentRecipe = HELDOUT_RECIPE,
    live_time_s: float | None = None,
    end_to_end: bool = False,
) -> PigmentSamples:
    """``n`` spectra of paper 004's mock-up stacks (:func:`mockup_layers`)."""
    if n < 1:
        raise ValueError(f"need at least one spectrum, got n={n}")
    rng = np.random.default_rng(seed)
    layers = mockup_layers(n, rng, recipe)
    return spectra_from_layers(
        layers, rng=rng, recipe=recipe, axis=axis, live_time_s=live_time_s, end_to_end=end_to_end
    )
