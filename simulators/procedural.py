"""Procedural paintings from a seed: gradients, blobs and brush strokes.

Used for scenes that need no image and for the hidden under-painting of every scene.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import disk


def smooth_field(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field, zero mean, unit standard deviation, correlation ~``scale_px``."""
    field = ndimage.gaussian_filter(
        rng.standard_normal(shape), sigma=max(scale_px, 0.5), mode="wrap"
    )
    return (field - field.mean()) / (field.std() + 1e-12)


def label_painting(shape: tuple[int, int], n_labels: int, rng: np.random.Generator) -> np.ndarray:
    """A painting as a label image ``(H, W)`` of values ``0..n_labels-1``: a two-label
    gradient background, thresholded blobs, then brush strokes on top."""
    h, w = shape
    size = float(min(h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / max(h, w)
    ramp += 0.15 * smooth_field(shape, size / 8, rng)
    a, b = rng.choice(n_labels, size=2, replace=n_labels < 2)
    labels = np.where(ramp > np.median(ramp), a, b).astype(np.int64)
    for _ in range(int(rng.integers(3, 7))):
        blob = smooth_field(shape, size / rng.uniform(6, 14), rng) > rng.uniform(0.8, 1.6)
        labels[blob] = rng.integers(n_labels)
    for _ in range(int(rng.integers(4, 10))):
        _stroke(labels, int(rng.integers(n_labels)), rng)
    return labels


def _stroke(labels: np.ndarray, value: int, rng: np.random.Generator) -> None:
    """Paint one curved brush stroke of constant width in place."""
    h, w = labels.shape
    size = min(h, w)
    radius = max(1.0, rng.uniform(0.01, 0.04) * size)
    pos = rng.uniform([0, 0], [h, w])
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.uniform(0.3, 0.9) * size / radius * 2)):
        heading += rng.normal(0, 0.25)
        pos = pos + radius * 0.5 * np.array([np.sin(heading), np.cos(heading)])
        rr, cc = disk(tuple(pos), radius, shape=labels.shape)
        labels[rr, cc] = value
