"""Training and held-out data for the elemental-map networks (:mod:`dwellwise.models.element_nets`).

**Training spectra** are single pixels of random layered paint (a "pixel soup": the networks look
at one spectrum at a time, so pixels need no neighbours): a top layer of 1-3 pigments (Dirichlet
shares, a log-uniform pigment loading from glaze to full paint, 10-200 µm thick), sometimes a
trace pigment, half the time a hidden layer of 1-2 pigments (50-200 µm), and a chalk or gypsum
ground (150-200 µm, paper 004) that may carry traces of celestine. Rates come from
:class:`~dwellwise.simulators.paint.PaintStack` (Beer-Lambert attenuation of every line, scatter
and continuum); counts are Poisson at a log-uniform live time of 5-100 ms per pixel, binned on
the model axis, each block of pixels on its own random detector
(:class:`~dwellwise.simulators.detector_spread.DetectorSpread`: resolution, low-energy tails and
step, line ratios), while the held-out scenes keep the nominal one. The palette is the pigment database plus :data:`EXTRA_PIGMENTS`: the database has
no manganese or strontium pigment and little potassium, so Mn K, Sr K and K K would never appear.

**The truth** of a pixel is the number of photons of each family that the detector recorded
(drawn per line component, wherever its energy falls), divided by the live time: the rate a
perfect spectrum fit would report, the analogue of paper 002's ground truth (a PyMca fit of the
very spectra). Its mean is the expected rate (``Scene.rates``); both are kept.

**Held-out scenes** are never used in training: the scikit-image painting scenes of
:func:`~dwellwise.simulators.scenes.load_scene` (a different scene style: CIEDE2000 colour
mixtures, database pigments only, a network never sees one) and spatial random-mixture scenes
drawn from their own seed stream, acquired on the default detector calibration (4096 channels of
10 eV), or on an odd one, and resampled like ``dwellwise analyze`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.sparse as sp
from dwellwise.models.element_nets import MODEL_AXIS, OUTPUTS, TARGETS
from dwellwise.simulators.detector import ChannelSampler
from dwellwise.simulators.detector_spread import DetectorSpread, spread_basis
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.lines import groups_for_element, line_group
from dwellwise.simulators.paint import PaintStack, pigment_mass
from dwellwise.simulators.pigments import Pigment, pigment_database
from dwellwise.simulators.procedural import label_painting, smooth_field
from dwellwise.simulators.scenes import SAMPLE_IMAGES, load_scene
from dwellwise.simulators.spectra import SpectrumModel
from pydantic import BaseModel, Field


def _extra(key: str, name: str, formula: str, rgb, density: float, role, notes: str) -> Pigment:
    return Pigment(
        key=key,
        name=name,
        formula=formula,
        rgb=rgb,
        density=density,
        papers=[],
        aliases=[],
        role=list(role),
        notes=notes,
    )


EXTRA_PIGMENTS: tuple[Pigment, ...] = (
    _extra(
        "raw_umber",
        "Raw umber",
        "(Fe2O3)2(MnO2)1",
        (115, 74, 18),
        3.3,
        ["top", "hidden"],
        "Iron oxide with manganese dioxide (5-20 % MnO2).",
    ),
    _extra(
        "manganese_violet",
        "Manganese violet",
        "NH4MnP2O7",
        (130, 60, 140),
        2.6,
        ["top"],
        "Ammonium manganese pyrophosphate, from 1868.",
    ),
    _extra(
        "strontium_yellow",
        "Strontium yellow",
        "SrCrO4",
        (240, 220, 60),
        3.9,
        ["top", "hidden"],
        "Strontium chromate; Sr K with Cr K.",
    ),
    _extra(
        "smalt",
        "Smalt",
        "(SiO2)10(K2O)2CoO",
        (50, 70, 160),
        2.5,
        ["top"],
        "Potassium cobalt glass; K K, Co K and Si K.",
    ),
    _extra(
        "green_earth",
        "Green earth (celadonite)",
        "KMgFeSi4O12H2",
        (110, 130, 90),
        2.8,
        ["top", "hidden"],
        "K(Mg,Fe)Si4O10(OH)2; K K with Fe K.",
    ),
    _extra(
        "orpiment",
        "Orpiment",
        "As2S3",
        (230, 180, 40),
        3.5,
        ["top"],
        "Arsenic sulfide; As K with S K.",
    ),
    _extra(
        "verdigris",
        "Verdigris",
        "CuC4H6O4",
        (60, 150, 120),
        1.9,
        ["top", "hidden"],
        "Copper acetate.",
    ),
    _extra(
        "gypsum",
        "Gypsum (gesso)",
        "CaSO6H4",
        (240, 240, 236),
        2.32,
        ["ground"],
        "CaSO4·2H2O, the ground of icons and Italian panels; S K with Ca K.",
    ),
    _extra(
        "celestine",
        "Celestine",
        "SrSO4",
        (235, 235, 240),
        3.96,
        ["trace"],
        "Strontium sulfate, the usual strontium impurity of gypsum and chalk grounds.",
    ),
)
"""Pigments the recipe adds to the database (only here: ``pigments.json`` is not changed), so
that manganese, strontium and potassium appear in the training data."""


@cache
def palette() -> tuple[Pigment, ...]:
    """Every pigment of the recipe: the database, then :data:`EXTRA_PIGMENTS`."""
    return (*pigment_database().values(), *EXTRA_PIGMENTS)


class MixtureRecipe(BaseModel):
    """How random layered-paint pixels are drawn (the data recipe of the shipped weights)."""

    top_thickness_um: tuple[float, float] = (10.0, 200.0)
    """Top layer thickness range, µm, log-uniform (paper 004: 30-200 µm; thin glazes too)."""
    top_pigments: tuple[int, int] = (1, 3)
    """Fewest and most pigments mixed in the top layer."""
    loading: tuple[float, float] = (0.02, 1.0)
    """Pigment loading of a paint layer (1 = full paint), log-uniform: dilute glazes to body."""
    trace_probability: float = Field(default=0.3, ge=0, le=1)
    """Chance that a top layer carries one more pigment as a trace."""
    trace_fraction: tuple[float, float] = (0.002, 0.05)
    """Share of a trace pigment in its layer's pigment mass, log-uniform."""
    hidden_probability: float = Field(default=0.5, ge=0, le=1)
    """Chance of a hidden layer under the top one."""
    hidden_thickness_um: tuple[float, float] = (50.0, 200.0)
    """Hidden layer thickness range, µm, uniform (paper 004: 50-200 µm)."""
    ground_thickness_um: tuple[float, float] = (150.0, 200.0)
    """Ground thickness range, µm, uniform (paper 004: 150-200 µm)."""
    gypsum_probability: float = Field(default=0.4, ge=0, le=1)
    """Chance that the ground is gypsum rather than chalk."""
    celestine_probability: float = Field(default=0.5, ge=0, le=1)
    """Chance that the ground carries celestine (SrSO4) as a trace."""
    intensity: tuple[float, float] = (0.6, 1.4)
    """Relative excitation intensity range (as in the scenes), uniform."""
    live_time_s: tuple[float, float] = (0.005, 0.100)
    """Live time per pixel, seconds, log-uniform."""
    detector: DetectorSpread = DetectorSpread()
    """How the detector varies between blocks of pixels."""


@dataclass(frozen=True)
class SpectraSet:
    """Simulated pixels: spectra and their truth."""

    counts: np.ndarray
    """``(N, E)`` counts on ``axis`` (uint16 or uint32)."""
    live_time: np.ndarray
    """``(N,)`` live time, seconds."""
    detected: np.ndarray
    """``(N, k)`` float32 photons of each family the detector recorded / live time, counts/s."""
    expected: np.ndarray
    """``(N, k)`` float32 expected detected rate of each family, counts/s."""
    names: tuple[str, ...]
    """Family of each truth column."""
    axis: EnergyAxis
    """Calibration of ``counts``."""

    def __len__(self) -> int:
        return int(self.counts.shape[0])


def all_families(pigments: Sequence[Pigment]) -> list[str]:
    """Every detectable family of every element in the pigments (``Si_K`` … ``Pb_M``)."""
    zs = sorted({z for p in pigments for z in p.mass_fractions()})
    return [g.label for z in zs for g in groups_for_element(z)]


def count_with_truth(
    sampler: ChannelSampler,
    component_rates: np.ndarray,
    live_time: np.ndarray,
    rng: np.random.Generator,
    n_channels: int,
    dtype=np.uint32,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counting like :class:`~dwellwise.simulators.detector.PoissonSDD` (preset live
    time, no pile-up) that also returns the truth: ``(counts (N, E), photons (J, N))`` where
    ``photons`` are all recorded photons of each component, inside the axis or not."""
    rates = np.asarray(component_rates, dtype=float)
    n_comp, n_pix = rates.shape
    photons = rng.poisson(rates * live_time[None, :])
    inside = rng.binomial(photons, np.clip(sampler.area, 0.0, 1.0)[:, None])
    pixels = np.arange(n_pix, dtype=np.int32)
    rows, channels = [], []
    for j in np.flatnonzero(inside.any(axis=1)):
        rows.append(np.repeat(pixels, inside[j]))
        channels.append(sampler.sample(int(j), int(rows[-1].size), rng))
    row = np.concatenate(rows) if rows else np.zeros(0, np.int32)
    chan = np.concatenate(channels).astype(np.int32) if channels else np.zeros(0, np.int32)
    data = np.ones(row.size, dtype=np.uint32)
    counts = sp.coo_matrix((data, (row, chan)), shape=(n_pix, n_channels)).toarray()
    if dtype != np.uint32:
        if counts.max(initial=0) > np.iinfo(dtype).max:
            raise OverflowError(f"a channel holds more counts than {np.dtype(dtype)} can")
        counts = counts.astype(dtype)
    return counts, photons


def family_sums(
    model: SpectrumModel, per_component: np.ndarray, names: Sequence[str]
) -> np.ndarray:
    """``(J, N)`` per-component values -> ``(k, N)`` sums per family in ``names`` (0 for a
    family the model lacks)."""
    out = np.zeros((len(names), per_component.shape[1]))
    group = model.group_of_component
    for i, name in enumerate(names):
        if name in model.elements:
            out[i] = per_component[group == model.elements.index(name)].sum(axis=0)
    return out


class PixelSimulator:
    """Draws random layered-paint pixels of the recipe and counts their spectra."""

    def __init__(
        self,
        recipe: MixtureRecipe | None = None,
        axis: EnergyAxis = MODEL_AXIS,
        names: Sequence[str] = OUTPUTS,
    ) -> None:
        self.recipe = recipe or MixtureRecipe()
        self.axis = axis
        self.names = tuple(names)
        self.pigments = palette()
        keys = [p.key for p in self.pigments]
        self.top = np.array([i for i, p in enumerate(self.pigments) if "top" in p.role])
        self.hidden = np.array([i for i, p in enumerate(self.pigments) if "hidden" in p.role])
        self.chalk = keys.index("calcium_carbonate")
        self.gypsum = keys.index("gypsum")
        self.celestine = keys.index("celestine")
        self.model = SpectrumModel(all_families(self.pigments), axis=axis)
        self.stack = PaintStack(self.model, [self.pigments] * 3)
        self.sampler = ChannelSampler(self.model.basis)
        self.mass_per_um = np.array([float(pigment_mass(p, 1.0)) for p in self.pigments])
        """g/cm² of each pigment in a 1 µm layer of its full paint."""

    def carriers(self, family: str) -> np.ndarray:
        """Indices of top-layer pigments that contain the family's element."""
        z = family_z(family)
        return np.array([i for i in self.top if z in self.pigments[i].mass_fractions()])

    def layer_masses(
        self, n: int, rng: np.random.Generator, force: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Pigment masses ``(P, n)`` g/cm² of the top, hidden and ground layers of ``n`` random
        pixels. ``force`` (``(n,)`` pigment indices or -1) puts a chosen pigment in the top."""
        r, n_p = self.recipe, len(self.pigments)
        cols = np.arange(n)
        top = np.zeros((n_p, n))
        thick = _log_uniform(rng, r.top_thickness_um, n)
        load = _log_uniform(rng, r.loading, n)
        k = rng.integers(r.top_pigments[0], r.top_pigments[1] + 1, size=n)
        picks = rng.choice(self.top, size=(n, r.top_pigments[1]))
        if force is not None:
            picks[force >= 0, 0] = force[force >= 0]
        share = rng.gamma(1.0, size=picks.shape) * (np.arange(picks.shape[1])[None, :] < k[:, None])
        share /= share.sum(axis=1, keepdims=True)
        for j in range(picks.shape[1]):
            p = picks[:, j]
            np.add.at(top, (p, cols), share[:, j] * load * thick * self.mass_per_um[p])
        trace = rng.random(n) < r.trace_probability
        p = rng.choice(self.top, size=n)
        frac = _log_uniform(rng, r.trace_fraction, n)
        np.add.at(top, (p[trace], cols[trace]), (frac * top.sum(axis=0))[trace])

        hidden = np.zeros((n_p, n))
        has = rng.random(n) < r.hidden_probability
        thick = rng.uniform(*r.hidden_thickness_um, size=n) * _log_uniform(rng, r.loading, n)
        two = rng.random(n) < 0.5
        a, b = rng.choice(self.hidden, size=n), rng.choice(self.hidden, size=n)
        w = np.where(two, rng.uniform(0.2, 0.8, size=n), 1.0)
        np.add.at(hidden, (a[has], cols[has]), (w * thick * self.mass_per_um[a])[has])
        np.add.at(hidden, (b[has], cols[has]), ((1 - w) * thick * self.mass_per_um[b])[has])

        ground = np.zeros((n_p, n))
        thick = rng.uniform(*r.ground_thickness_um, size=n)
        base = np.where(rng.random(n) < r.gypsum_probability, self.gypsum, self.chalk)
        ground[base, cols] = thick * self.mass_per_um[base]
        cel = rng.random(n) < r.celestine_probability
        frac = _log_uniform(rng, r.trace_fraction, n)
        ground[self.celestine, cel] = (frac * ground.sum(axis=0))[cel]
        return [top, hidden, ground]

    def simulate(self, n: int, rng: np.random.Generator) -> SpectraSet:
        """``n`` random pixels counted at random live times, each block of
        ``recipe.detector.block_pixels`` on its own random detector; truth for :attr:`names`."""
        counts, live_all, detected, expected = [], [], [], []
        for start in range(0, n, self.recipe.detector.block_pixels):
            m = min(self.recipe.detector.block_pixels, n - start)
            masses = self.layer_masses(m, rng)
            intensity = rng.uniform(*self.recipe.intensity, size=m)
            rates = self.stack.component_rates(masses, intensity)
            live = _log_uniform(rng, self.recipe.live_time_s, m)
            basis, ratios = spread_basis(self.model, self.recipe.detector, rng)
            sampler = self.sampler if basis is None else ChannelSampler(basis)
            rates *= ratios[:, None]
            c, photons = count_with_truth(
                sampler, rates, live, rng, self.axis.channels, dtype=np.uint16
            )
            counts.append(c)
            live_all.append(live)
            detected.append(family_sums(self.model, photons, self.names).T / live[:, None])
            expected.append(family_sums(self.model, rates, self.names).T)
        return SpectraSet(
            counts=np.concatenate(counts),
            live_time=np.concatenate(live_all),
            detected=np.concatenate(detected).astype(np.float32),
            expected=np.concatenate(expected).astype(np.float32),
            names=self.names,
            axis=self.axis,
        )


def family_z(family: str) -> int:
    """Atomic number of a family label such as ``Fe_K``."""
    return line_group(family).z


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    lo, hi = bounds
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))


def training_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent random streams of the training and the validation pixels of a seed."""
    train, val = np.random.SeedSequence([seed, 0x6D6170]).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(val)


# -- held-out scenes ---------------------------------------------------------------------------
HELDOUT_ENTROPY = 0x48454C44
"""Root of the held-out seed stream; training streams never use it."""
EVAL_LIVE_TIME_S = 0.020
"""Dwell (live time) of every held-out pixel: 20 ms, the median of paper 002's Table 5.1."""
ODD_AXIS = EnergyAxis(channels=2048, gain_kev=0.0201, offset_kev=-0.012)
"""A calibration unlike the default detector's, for one held-out scene."""


@dataclass(frozen=True)
class EvalScene:
    """A held-out scene as an acquired cube with its truth."""

    name: str
    """``astronaut#11``, ``mixture#3``..."""
    style: str
    """``painting`` (scikit-image image, :func:`load_scene`) or ``mixture`` (random layers)."""
    counts: np.ndarray
    """``(H·W, E)`` uint32 counts on ``axis``, pixels in row-major order."""
    axis: EnergyAxis
    """Detector calibration of ``counts``."""
    live_time: np.ndarray
    """``(H·W,)`` seconds."""
    shape: tuple[int, int]
    """``(H, W)``."""
    detected: np.ndarray
    """``(k, H, W)`` recorded photons of each family / live time, counts/s."""
    expected: np.ndarray
    """``(k, H, W)`` expected detected rates, counts/s (``Scene.rates``)."""
    names: tuple[str, ...]
    """Families of the truth maps."""

    def present(self, min_counts: float = 1.0, min_share: float = 0.01) -> np.ndarray:
        """``(k,)`` bool: families of which at least ``min_share`` of the pixels expect at least
        ``min_counts`` detected counts in their dwell (an element a map can show)."""
        counts = self.expected * self.live_time.reshape(self.shape)[None]
        return (counts >= min_counts).mean(axis=(1, 2)) >= min_share


Recording = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(counts (H·W, E) uint32, live_time (H·W,) s, detected (k, H, W), expected (k, H, W))``,
rates in counts/s."""
Recorder = Callable[
    [SpectrumModel, np.ndarray, tuple[int, int], float, Sequence[str], np.random.Generator],
    Recording,
]
"""Detector physics that records a held-out scene: ``(model, component_rates (J, H·W) counts/s,
shape, live_time_s, names, rng) -> Recording`` on ``model.axis``."""


def record_on_model(
    model: SpectrumModel,
    component_rates: np.ndarray,
    shape: tuple[int, int],
    live_time_s: float,
    names: Sequence[str],
    rng: np.random.Generator,
) -> Recording:
    """The default :data:`Recorder`: Poisson counts on the scene's own spectrum model (the
    physics the networks are trained on)."""
    n = shape[0] * shape[1]
    rates = component_rates.reshape(model.n_components, n)
    live = np.full(n, live_time_s)
    counts, photons = count_with_truth(
        ChannelSampler(model.basis), rates, live, rng, model.axis.channels
    )
    detected = (family_sums(model, photons, names) / live_time_s).reshape(len(names), *shape)
    expected = family_sums(model, rates, names).reshape(len(names), *shape)
    return counts, live, detected, expected


def painting_scene(
    image: str,
    seed: int,
    shape: tuple[int, int],
    names: Sequence[str] = OUTPUTS,
    live_time_s: float = EVAL_LIVE_TIME_S,
    record: Recorder = record_on_model,
) -> EvalScene:
    """A :func:`load_scene` painting acquired on the default detector calibration."""
    scene = load_scene(image, shape, seed=seed)
    rng = np.random.default_rng([HELDOUT_ENTROPY, seed, 1])
    counts, live, detected, expected = record(
        scene.model, scene.component_rates(), shape, live_time_s, names, rng
    )
    return EvalScene(
        f"{image}#{seed}",
        "painting",
        counts,
        scene.model.axis,
        live,
        shape,
        detected,
        expected,
        tuple(names),
    )


def mixture_scene(
    index: int,
    shape: tuple[int, int],
    recipe: MixtureRecipe | None = None,
    names: Sequence[str] = OUTPUTS,
    live_time_s: float = EVAL_LIVE_TIME_S,
    axis: EnergyAxis | None = None,
    featured: Sequence[str] = (),
    record: Recorder = record_on_model,
) -> EvalScene:
    """A held-out random-mixture scene: regions of a procedural painting each get a random layer
    stack of the recipe (the first regions carry a pigment of each ``featured`` family), with
    smooth thickness and intensity fields; acquired on ``axis`` (default detector calibration)."""
    rng = np.random.default_rng([HELDOUT_ENTROPY, index, 2])
    axis = axis or EnergyAxis()
    sim = PixelSimulator(recipe, axis=axis, names=names)
    h, w = shape
    n_regions = 8
    force = np.full(n_regions, -1)
    for i, family in enumerate(featured[:n_regions]):
        force[i] = rng.choice(sim.carriers(family))
    stacks = sim.layer_masses(n_regions, rng, force=force)
    top_labels = label_painting(shape, n_regions, rng).ravel()
    hidden_labels = label_painting(shape, n_regions, rng).ravel()
    ground_label = int(rng.integers(n_regions))
    thickness = [np.exp(0.25 * smooth_field(shape, min(shape) / 6, rng)).ravel() for _ in range(3)]
    masses = [
        stacks[0][:, top_labels] * thickness[0],
        stacks[1][:, hidden_labels] * thickness[1],
        stacks[2][:, [ground_label]] * thickness[2],
    ]
    intensity = np.clip(1.0 + 0.12 * smooth_field(shape, min(shape) / 5, rng), 0.6, 1.4).ravel()
    rates = sim.stack.component_rates(masses, intensity)
    counts, live, detected, expected = record(sim.model, rates, shape, live_time_s, names, rng)
    label = f"mixture#{index}" + ("" if axis == EnergyAxis() else " (odd calibration)")
    return EvalScene(label, "mixture", counts, axis, live, shape, detected, expected, tuple(names))


def heldout_scenes(
    shape: tuple[int, int] = (64, 64),
    *,
    images: Sequence[str] = SAMPLE_IMAGES,
    n_mixtures: int = 6,
    names: Sequence[str] = OUTPUTS,
    odd_calibration: bool = True,
    live_time_s: float = EVAL_LIVE_TIME_S,
    record: Recorder = record_on_model,
) -> Iterator[EvalScene]:
    """The held-out evaluation set, one scene at a time (a cube is tens of MB): each
    scikit-image painting (seed 11, 12…), then ``n_mixtures`` mixture scenes that feature two
    targets each in turn, so all 12 targets appear; the last one on :data:`ODD_AXIS`.
    ``record`` is the detector physics (default: the simulator the networks train on)."""
    for i, image in enumerate(images):
        yield painting_scene(image, 11 + i, shape, names, live_time_s, record)
    for i in range(n_mixtures):
        featured = [TARGETS[(2 * i) % len(TARGETS)], TARGETS[(2 * i + 1) % len(TARGETS)]]
        odd = odd_calibration and i == n_mixtures - 1
        yield mixture_scene(
            i,
            shape,
            names=names,
            live_time_s=live_time_s,
            axis=ODD_AXIS if odd else None,
            featured=featured,
            record=record,
        )


def carrier_check() -> dict[str, int]:
    """How many top-layer pigments of the recipe carry each target (all must be > 0)."""
    sim_pigments = palette()
    out = {}
    for family in TARGETS:
        z = family_z(family)
        out[family] = sum(1 for p in sim_pigments if "top" in p.role and z in p.mass_fractions())
    return out


@dataclass(frozen=True)
class CubeAdaptedFit:
    """The linear fit as ``dwellwise analyze`` sets it up for each cube
    (:meth:`~dwellwise.models.linear_fit.LinearFit.for_spectrum`: the families its sum spectrum
    shows plus the 12 targets, channels weighted by the inverse sum spectrum, on the cube's own
    calibration). :func:`predict_scene` builds one per scene."""

    label: str = "linear fit"
    """Row name in the benchmark tables."""
    device: str = "cpu"
    """Torch device of the fit."""

    def for_scene(self, scene: EvalScene):
        """The :class:`~dwellwise.models.linear_fit.LinearFit` for this scene's cube."""
        from dwellwise.models.linear_fit import LinearFit

        total = scene.counts.sum(axis=0, dtype=np.float64)
        fit = LinearFit.for_spectrum(total, scene.axis, device=self.device)
        fit.label = self.label
        return fit


def predict_scene(predictor, scene: EvalScene) -> np.ndarray:
    """Apply a :class:`~dwellwise.models.predictor.SpectrumPredictor` (or a
    :class:`CubeAdaptedFit`) to a held-out scene as ``dwellwise analyze`` does (resample the cube
    onto the predictor's axis, predict): ``(k, H, W)`` float64 counts/s for ``scene.names`` (0
    for a family the predictor does not map)."""
    from dwellwise.models.calibration import resample_counts

    if isinstance(predictor, CubeAdaptedFit):
        predictor = predictor.for_scene(scene)
    counts = resample_counts(scene.counts, scene.axis, predictor.axis)
    rates = np.asarray(predictor.predict(counts, scene.live_time), dtype=np.float64)
    out = np.zeros((len(scene.names), scene.counts.shape[0]))
    for i, name in enumerate(scene.names):
        if name in predictor.names:
            out[i] = rates[:, predictor.names.index(name)]
    return out.reshape(len(scene.names), *scene.shape)
