"""Painting scenes: RGB image -> pigment layers -> element rate maps (ground truth).

The visible paint follows the image: each pixel's colour is compared with every pigment's
typical colour by CIEDE2000 (scikit-image), similarity s = (100 − ΔE00)/100, and the pigments
with s ≥ ``threshold`` are mixed in proportion to s (paper 003, ganX). Unlike ganX, intensity
varies per pixel (paint thickness and a smooth intensity field), a hidden under-painting lies
below the visible one, and everything sits on a chalk ground; :mod:`dwellwise.simulators.paint`
turns the stack into detected rates with Beer-Lambert attenuation of every line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from dwellwise.simulators.lines import groups_for_element
from dwellwise.simulators.paint import PaintStack, pigment_mass
from dwellwise.simulators.pigments import Pigment, get_pigment, pigments_with_role, rgb_array
from dwellwise.simulators.procedural import label_painting, smooth_field
from dwellwise.simulators.spectra import SpectrumModel
from skimage import color, data, io, transform

SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel")
"""scikit-image sample images that ship with the package (no download)."""
PROCEDURAL = "procedural"
TOP_THICKNESS_UM = (12.0, 45.0)
"""Range of the visible paint layer's thickness, µm."""
HIDDEN_THICKNESS_UM = (25.0, 70.0)
"""Range of the hidden paint layer's thickness, µm."""
GROUND_THICKNESS_UM = 185.0
"""Chalk ground, µm (150-200 µm as in paper 004)."""
MIN_ELEMENT_RATE = 1.0
"""An element family is part of the scene when its peak rate exceeds this, counts/s."""


def scene_names() -> list[str]:
    """Built-in scene names; a path to an image file is accepted too."""
    return [*SAMPLE_IMAGES, PROCEDURAL]


@dataclass
class Scene:
    """A simulated painting: pigment layers and the element rates they produce."""

    name: str
    """Scene name or image path."""
    rgb: np.ndarray
    """``(H, W, 3)`` visible colours, 0..1."""
    palettes: list[list[Pigment]]
    """Pigments of each layer, top first (visible, hidden, ground)."""
    masses: list[np.ndarray]
    """Pigment mass of each layer, ``(P_layer, H, W)`` g/cm²."""
    intensity: np.ndarray
    """``(H, W)`` relative excitation intensity."""
    model: SpectrumModel
    """Spectrum model of the scene's element channels."""
    stack: PaintStack = field(repr=False)
    """Layer physics for this model and these palettes."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.intensity.shape

    @property
    def elements(self) -> tuple[str, ...]:
        """Element channel labels, e.g. ``("Ca_K", "Fe_K", "Pb_L", ...)``."""
        return self.model.elements

    def component_rates(self, rows: slice = slice(None)) -> np.ndarray:
        """Detected component rates ``(J, h, W)`` counts/s for a block of rows."""
        h = np.arange(self.shape[0])[rows].size
        n = h * self.shape[1]
        masses = [m[:, rows].reshape(m.shape[0], n) for m in self.masses]
        rates = self.stack.component_rates(masses, self.intensity[rows].reshape(n))
        return rates.reshape(-1, h, self.shape[1])

    @cached_property
    def _truth(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.shape
        rates = np.zeros((len(self.elements), h, w))
        roi = np.zeros_like(rates)
        group = self.model.group_of_component
        step = max(1, 262_144 // w)
        for r0 in range(0, h, step):
            comp = self.component_rates(slice(r0, r0 + step))
            for c in range(len(self.elements)):
                rates[c, r0 : r0 + step] = comp[group == c].sum(axis=0)
            roi[:, r0 : r0 + step] = self.model.roi_rates(comp)
        return rates, roi

    @property
    def rates(self) -> np.ndarray:
        """``(C, H, W)`` detected rate of each element family, counts/s."""
        return self._truth[0]

    @property
    def roi_rates(self) -> np.ndarray:
        """``(C, H, W)`` expected count rate in each element's ROI window, counts/s."""
        return self._truth[1]


def load_rgb(source: str) -> np.ndarray:
    """An RGB image in 0..1 from a built-in name or an image file path."""
    if source in SAMPLE_IMAGES:
        img = getattr(data, source)()
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(
                f"unknown scene {source!r}: use one of {', '.join(scene_names())} "
                "or the path of an image file (PNG, JPEG, TIFF)"
            )
        try:
            img = io.imread(path)
        except Exception as exc:  # imageio raises many types for a non-image
            raise ValueError(f"{source}: not a readable image file ({exc})") from None
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4) or min(img.shape[:2]) < 2:
        raise ValueError(f"{source}: expected an RGB(A) image, got an array of shape {img.shape}")
    img = img[..., :3].astype(float)
    return img / (255.0 if img.max() > 1.0 else 1.0)


def ciede2000_mixture(rgb: np.ndarray, pigments: list[Pigment], threshold: float) -> np.ndarray:
    """Mixture weights ``(P, H, W)`` summing to 1: CIEDE2000 similarity of each pixel's colour
    to each pigment's, thresholded (paper 003); the nearest pigment when none passes."""
    h, w, _ = rgb.shape
    quant = np.round(rgb.reshape(-1, 3) * 63).astype(np.int64)
    keys = quant @ np.array([4096, 64, 1])
    unique, inverse = np.unique(keys, return_inverse=True)
    colours = np.stack([unique // 4096, (unique // 64) % 64, unique % 64], axis=-1) / 63.0
    lab_px = color.rgb2lab(colours[None])[0]
    lab_pig = color.rgb2lab(rgb_array(pigments)[None])[0]
    delta = color.deltaE_ciede2000(lab_px[:, None, :], lab_pig[None, :, :])
    sim = np.clip((100.0 - delta) / 100.0, 0.0, 1.0)
    weights = np.where(sim >= threshold, sim, 0.0)
    none = weights.sum(axis=1) == 0
    weights[none, np.argmax(sim[none], axis=1)] = 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    return weights[inverse.ravel()].T.reshape(len(pigments), h, w)


def load_scene(
    scene: str = "astronaut",
    shape: tuple[int, int] = (64, 64),
    seed: int = 0,
    *,
    threshold: float = 0.8,
    hidden: bool = True,
) -> Scene:
    """Build a scene: a built-in image name, ``procedural``, or an image file path."""
    h, w = _check_shape(shape)
    rng = np.random.default_rng(seed)
    top = [p for p in pigments_with_role("top")]
    if scene == PROCEDURAL:
        labels = label_painting((h, w), len(top), rng)
        rgb = rgb_array(top)[labels]
    else:
        rgb = transform.resize(load_rgb(scene), (h, w), anti_aliasing=True, order=1)
    mix = ciede2000_mixture(rgb, top, threshold)
    thickness = _field_between((h, w), TOP_THICKNESS_UM, rng)
    top_mass = np.stack([mix[i] * pigment_mass(p, thickness) for i, p in enumerate(top)])
    palettes, masses = [top], [top_mass]
    if hidden:
        under = pigments_with_role("hidden")
        labels = label_painting((h, w), len(under) + 1, rng)  # last label = bare ground
        t_hidden = _field_between((h, w), HIDDEN_THICKNESS_UM, rng)
        hidden_mass = np.stack(
            [(labels == i) * pigment_mass(p, t_hidden) for i, p in enumerate(under)]
        )
        palettes.append(under)
        masses.append(hidden_mass)
    chalk = get_pigment("calcium_carbonate")
    palettes.append([chalk])
    masses.append(np.full((1, h, w), float(pigment_mass(chalk, GROUND_THICKNESS_UM))))
    intensity = 1.0 + 0.12 * smooth_field((h, w), min(h, w) / 5, rng)
    intensity = np.clip(intensity, 0.6, 1.4)
    model = _scene_model(palettes, masses, intensity)
    return Scene(
        name=scene,
        rgb=rgb,
        palettes=palettes,
        masses=[m.astype(np.float32) for m in masses],
        intensity=intensity,
        model=model,
        stack=PaintStack(model, palettes),
    )


def _scene_model(palettes, masses, intensity) -> SpectrumModel:
    """Spectrum model holding every element family whose peak rate exceeds MIN_ELEMENT_RATE."""
    zs = sorted({z for pal in palettes for p in pal for z in p.mass_fractions()})
    labels = [g.label for z in zs for g in groups_for_element(z)]
    probe_model = SpectrumModel(labels)
    stack = PaintStack(probe_model, palettes)
    n = intensity.size
    flat = [m.reshape(m.shape[0], n) for m in masses]
    rates = stack.component_rates(flat, intensity.reshape(n))
    group = probe_model.group_of_component
    peak = [rates[group == c].sum(axis=0).max() for c in range(len(labels))]
    keep = [lab for lab, p in zip(labels, peak, strict=True) if p > MIN_ELEMENT_RATE]
    return SpectrumModel(keep)


def _field_between(shape, bounds: tuple[float, float], rng) -> np.ndarray:
    lo, hi = bounds
    f = smooth_field(shape, min(shape) / 6, rng)
    return lo + (hi - lo) * (np.tanh(f) + 1.0) / 2.0


def _check_shape(shape) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be two integers (H, W), got {shape!r}") from None
    if h < 2 or w < 2:
        raise ValueError(f"scene shape must be at least 2x2 pixels, got {h}x{w}")
    return h, w
