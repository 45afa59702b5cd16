"""Figures of merit of an elemental map against its truth, paper 002 §4.5.

Maps are ``(H, W)`` arrays of counts/s (predicted and true). Per element:

- **SSIM** (:func:`ssim`): ``skimage.metrics.structural_similarity`` with its defaults (7×7
  uniform window, K1 = 0.01, K2 = 0.03) and ``data_range`` = the true map's range
  ``max − min``, the same as scoring both maps after dividing by the truth's range, as paper
  002 shows its maps normalised to 0..1 (its Fig. 5.2).
- **Pearson correlation** (:func:`pearson`) over the pixels.
- **Slope** (:func:`slope`) α of ``y_pred = α · y_true``, least squares through the origin:
  ``α = Σ y_pred·y_true / Σ y_true²``.
- **|z| interval fractions** (:func:`z_fractions`): paper 002 divides the error by ``σ`` of the
  true value; its truth is counts, whose standard deviation is ``sqrt(y)`` (the same scale as
  its adaptive L1 loss). Here ``z = |ŷ − y| · t / sqrt(max(y · t, 1))``: the error in counts over
  the Poisson standard deviation of the true counts at the pixel's live time ``t`` (a true count
  below 1 is given σ = 1). Fractions of pixels in [0, 1], (1, 2], (2, 3], (3, ∞).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel
from skimage.metrics import structural_similarity

Z_EDGES = (1.0, 2.0, 3.0)
"""Upper edges of the first three |z| intervals (paper 002 Tables 5.5, 5.8)."""
Z_LABELS = ("0-1", "1-2", "2-3", ">3")
"""Names of the four |z| intervals."""


def _pair(pred: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"predicted map {p.shape} and true map {t.shape} differ in shape")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise ValueError("maps must be finite (no NaN or inf pixels)")
    return p, t


def ssim(pred: ArrayLike, truth: ArrayLike) -> float:
    """SSIM of a predicted ``(H, W)`` map against the truth (``data_range`` = truth's range);
    NaN for a constant truth (no range to compare on). Needs H, W ≥ 7."""
    p, t = _pair(pred, truth)
    if p.ndim != 2 or min(p.shape) < 7:
        raise ValueError(f"SSIM needs a 2-D map of at least 7×7 pixels, got shape {p.shape}")
    data_range = float(t.max() - t.min())
    if data_range == 0:
        return float("nan")
    return float(structural_similarity(t, p, data_range=data_range))


def pearson(pred: ArrayLike, truth: ArrayLike) -> float:
    """Pearson correlation over pixels; NaN for a constant truth, 0 for a constant prediction
    (no linear association with a truth that varies)."""
    p, t = _pair(pred, truth)
    p, t = p.ravel() - p.mean(), t.ravel() - t.mean()
    st, sp = float(np.sqrt(np.dot(t, t))), float(np.sqrt(np.dot(p, p)))
    if st == 0:
        return float("nan")
    if sp == 0:
        return 0.0
    return float(np.dot(p, t) / (sp * st))


def slope(pred: ArrayLike, truth: ArrayLike) -> float:
    """α of ``pred = α · truth`` by least squares through the origin; NaN for an all-zero truth."""
    p, t = _pair(pred, truth)
    tt = float(np.dot(t.ravel(), t.ravel()))
    return float(np.dot(p.ravel(), t.ravel()) / tt) if tt > 0 else float("nan")


def z_scores(pred: ArrayLike, truth: ArrayLike, live_time: ArrayLike) -> np.ndarray:
    """``|ŷ − y| · t / sqrt(max(y · t, 1))`` per pixel (rates in counts/s, ``t`` seconds,
    broadcast to the maps)."""
    p, t = _pair(pred, truth)
    live = np.broadcast_to(np.asarray(live_time, dtype=np.float64), p.shape)
    if np.any(live <= 0):
        raise ValueError("z-scores need a live time > 0 s at every pixel")
    return np.abs(p - t) * live / np.sqrt(np.maximum(t * live, 1.0))


def z_fractions(pred: ArrayLike, truth: ArrayLike, live_time: ArrayLike) -> np.ndarray:
    """``(4,)`` fractions of pixels with |z| in [0, 1], (1, 2], (2, 3], (3, ∞)."""
    z = z_scores(pred, truth, live_time).ravel()
    counts = [
        np.count_nonzero(z <= Z_EDGES[0]),
        np.count_nonzero((z > Z_EDGES[0]) & (z <= Z_EDGES[1])),
        np.count_nonzero((z > Z_EDGES[1]) & (z <= Z_EDGES[2])),
        np.count_nonzero(z > Z_EDGES[2]),
    ]
    return np.asarray(counts, dtype=np.float64) / z.size


class ElementScores(BaseModel):
    """The paper-002 measures of one element map."""

    ssim: float
    """Structural similarity, −1..1 (NaN for a constant truth)."""
    pearson: float
    """Pearson correlation, −1..1 (NaN for a constant truth)."""
    slope: float
    """α of ``y_pred = α · y_true`` (1 = no scale error)."""
    z: tuple[float, float, float, float]
    """Fractions of pixels with |z| in [0, 1], (1, 2], (2, 3], (3, ∞)."""


def score_map(pred: ArrayLike, truth: ArrayLike, live_time: ArrayLike) -> ElementScores:
    """All four measures of one ``(H, W)`` map (counts/s) with its live time (seconds)."""
    return ElementScores(
        ssim=ssim(pred, truth),
        pearson=pearson(pred, truth),
        slope=slope(pred, truth),
        z=tuple(float(v) for v in z_fractions(pred, truth, live_time)),
    )


def score_maps(
    pred: ArrayLike, truth: ArrayLike, live_time: ArrayLike, names: Sequence[str]
) -> dict[str, ElementScores]:
    """Measures of every map of a ``(k, H, W)`` stack, keyed by ``names``."""
    p, t = _pair(pred, truth)
    if p.ndim != 3 or p.shape[0] != len(names):
        raise ValueError(f"expected ({len(names)}, H, W) stacks, got {p.shape}")
    return {name: score_map(p[i], t[i], live_time) for i, name in enumerate(names)}


class ElementSummary(BaseModel):
    """An element's measures averaged over the scenes where it is present."""

    scenes: int
    """Number of scenes averaged (0: the element appears in none; the measures are NaN)."""
    ssim: float
    """Mean SSIM."""
    pearson: float
    """Mean Pearson correlation."""
    slope: float
    """Mean slope α."""
    z: tuple[float, float, float, float]
    """Mean |z| interval fractions."""


def summarise(
    per_scene: Sequence[tuple[np.ndarray, dict[str, ElementScores]]], names: Sequence[str]
) -> dict[str, ElementSummary]:
    """Average each element's scores over the scenes where it is present: ``per_scene`` holds
    ``(present (k,) bool, scores by name)`` per scene."""
    out = {}
    for i, name in enumerate(names):
        rows = [s[name] for present, s in per_scene if present[i]]
        if not rows:
            nan = float("nan")
            out[name] = ElementSummary(scenes=0, ssim=nan, pearson=nan, slope=nan, z=(nan,) * 4)
            continue
        z = np.mean([r.z for r in rows], axis=0)
        out[name] = ElementSummary(
            scenes=len(rows),
            ssim=float(np.nanmean([r.ssim for r in rows])),
            pearson=float(np.nanmean([r.pearson for r in rows])),
            slope=float(np.nanmean([r.slope for r in rows])),
            z=tuple(float(v) for v in z),
        )
    return out


def mean_over(summary: dict[str, ElementSummary], names: Sequence[str], field: str) -> float:
    """Mean of one measure (``ssim``, ``pearson``, ``slope``) over ``names`` (NaN if any is
    missing, so a target without a scene is never silently dropped)."""
    return float(np.mean([getattr(summary[n], field) for n in names]))


def mean_scored(
    summary: dict[str, ElementSummary], names: Sequence[str], field: str
) -> tuple[float, list[str]]:
    """Mean of one measure over the families of ``names`` scored on at least one scene, and
    the families never present (left out of the mean, and to be reported as such)."""
    scored = [n for n in names if summary[n].scenes > 0]
    missing = [n for n in names if summary[n].scenes == 0]
    if not scored:
        return float("nan"), missing
    return float(np.mean([getattr(summary[n], field) for n in scored])), missing
