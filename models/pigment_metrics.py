"""Per-pigment figures of paper 004 (Table 3, Eq. 3-6) for multi-label predictions.

For each class: accuracy ``(TP + TN) / N``, sensitivity (recall) ``TP / (TP + FN)``, precision
``TP / (TP + FP)`` and F1, their harmonic mean ``2 TP / (2 TP + FP + FN)``. A ratio whose
denominator is zero is undefined and reported as NaN (sensitivity of a class with no positive,
precision of a class never predicted); F1 is 0 when the class has positives or predictions but no
true positive, and NaN only when it has neither (nothing to find, nothing claimed). Macro-F1 is the
mean F1 over the classes where it is defined.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel


class ClassScores(BaseModel):
    """Figures of one pigment class."""

    name: str
    """Pigment key."""
    accuracy: float
    """(TP + TN) / N."""
    sensitivity: float
    """TP / (TP + FN); NaN without positives."""
    precision: float
    """TP / (TP + FP); NaN when never predicted."""
    f1: float
    """2 TP / (2 TP + FP + FN); NaN when the class has neither positives nor predictions."""
    positives: int
    """Samples where the class is truly present (TP + FN)."""
    n: int
    """Samples scored."""


def _binary(a: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be (N, P), got shape {arr.shape}")
    if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{what} must hold 0/1 or booleans")
    return arr.astype(bool)


def confusion_counts(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """``(P, 4)`` int64 columns TP, FP, FN, TN per class from 0/1 arrays ``(N, P)``."""
    t, p = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    tp = np.sum(t & p, axis=0)
    fp = np.sum(~t & p, axis=0)
    fn = np.sum(t & ~p, axis=0)
    tn = np.sum(~t & ~p, axis=0)
    return np.stack([tp, fp, fn, tn], axis=1).astype(np.int64)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def per_class_scores(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    names: Sequence[str],
) -> list[ClassScores]:
    """Accuracy, sensitivity, precision and F1 of each class (paper 004 Table 3)."""
    counts = confusion_counts(y_true, y_pred)
    if len(names) != counts.shape[0]:
        raise ValueError(f"{len(names)} names for {counts.shape[0]} classes")
    out = []
    for name, (tp, fp, fn, tn) in zip(names, counts, strict=True):
        n = int(tp + fp + fn + tn)
        out.append(
            ClassScores(
                name=name,
                accuracy=_ratio(tp + tn, n),
                sensitivity=_ratio(tp, tp + fn),
                precision=_ratio(tp, tp + fp),
                f1=_ratio(2 * tp, 2 * tp + fp + fn),
                positives=int(tp + fn),
                n=n,
            )
        )
    return out


def macro_f1(scores: Sequence[ClassScores]) -> float:
    """Mean F1 over the classes where it is defined (NaN if none is)."""
    f1 = np.array([s.f1 for s in scores], dtype=float)
    f1 = f1[np.isfinite(f1)]
    return float(f1.mean()) if f1.size else float("nan")


def threshold(probabilities: ArrayLike, thresholds: ArrayLike | float = 0.5) -> np.ndarray:
    """Probabilities ``(N, P)`` -> bool ``(N, P)``: present where p ≥ the class threshold."""
    prob = np.asarray(probabilities, dtype=float)
    if prob.ndim != 2:
        raise ValueError(f"probabilities must be (N, P), got shape {prob.shape}")
    th = np.broadcast_to(np.asarray(thresholds, dtype=float), (prob.shape[1],))
    return prob >= th[None, :]


def best_thresholds(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    grid: ArrayLike | None = None,
) -> np.ndarray:
    """Per class, the threshold of ``grid`` with the highest F1 (ties: closest to 0.5).
    Default grid: 0.10, 0.125, ..., 0.90. Choose them on validation data, never on the data
    that is scored."""
    t = _binary(y_true, "y_true")
    prob = np.asarray(probabilities, dtype=float)
    if prob.shape != t.shape:
        raise ValueError(f"probabilities {prob.shape} and y_true {t.shape} differ in shape")
    grid = np.linspace(0.1, 0.9, 33) if grid is None else np.asarray(grid, dtype=float)
    order = grid[np.argsort(np.abs(grid - 0.5), kind="stable")]
    out = np.empty(t.shape[1])
    for c in range(t.shape[1]):
        pred = prob[:, c][:, None] >= order[None, :]
        tp = np.sum(pred & t[:, c][:, None], axis=0)
        fp = np.sum(pred & ~t[:, c][:, None], axis=0)
        fn = np.sum(~pred & t[:, c][:, None], axis=0)
        den = 2 * tp + fp + fn
        f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
        out[c] = order[int(np.argmax(f1))]
    return out


def pair_confusion(
    y_true: ArrayLike, y_pred: ArrayLike, names: Sequence[str], a: str, b: str
) -> tuple[float, float]:
    """For a hard pair: the fraction of samples holding ``a`` but not ``b`` where ``b`` is
    reported, and the fraction holding ``b`` but not ``a`` where ``a`` is reported (NaN when no
    such sample)."""
    t, p = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    ia, ib = list(names).index(a), list(names).index(b)
    only_a = t[:, ia] & ~t[:, ib]
    only_b = t[:, ib] & ~t[:, ia]
    return (
        _ratio(np.sum(only_a & p[:, ib]), np.sum(only_a)),
        _ratio(np.sum(only_b & p[:, ia]), np.sum(only_b)),
    )


def merge_classes(
    y: ArrayLike, names: Sequence[str], groups: Sequence[Sequence[str]]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Fold groups of classes into one class each (present if any member is): e.g. lead white
    and red lead into ``lead_white|red_lead``, what XRF alone can tell apart. Returns the
    ``(N, P')`` bool array and the new names (ungrouped classes first, in their order)."""
    arr = _binary(y, "y")
    names = list(names)
    grouped = [n for g in groups for n in g]
    unknown = [n for n in grouped if n not in names]
    if unknown or len(set(grouped)) != len(grouped):
        raise ValueError(f"groups must name distinct known classes, got {list(groups)}")
    keep = [i for i, n in enumerate(names) if n not in grouped]
    cols = [arr[:, i] for i in keep]
    out_names = [names[i] for i in keep]
    for g in groups:
        cols.append(np.any(arr[:, [names.index(n) for n in g]], axis=1))
        out_names.append("|".join(g))
    return np.stack(cols, axis=1), tuple(out_names)
