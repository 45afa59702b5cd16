"""PNG figures for people: element maps of a cube."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_element_maps(
    maps: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    unit: str = "counts",
    clip_percentile: float | None = None,
) -> Path:
    """Save ``(C, H, W)`` maps as a grid of images with colour bars, one per element;
    ``clip_percentile`` (e.g. 99.5) tops each colour scale there, so that a few hot pixels do
    not darken the rest of the map."""
    n = len(names)
    cols = min(n, 6)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, m, name in zip(axes.ravel(), maps, names, strict=False):
        m = np.asarray(m, dtype=np.float64)
        finite = m[np.isfinite(m)]
        vmin = vmax = None
        if not np.any(finite > 0):  # nothing of this element: black on a 0-1 scale, said so
            vmin, vmax, name = 0.0, 1.0, f"{name} (none)"
        elif clip_percentile is not None:
            vmin = 0.0
            vmax = max(float(np.percentile(finite, clip_percentile)), float(finite.max()) * 1e-3)
        im = ax.imshow(m, cmap="inferno", interpolation="nearest", vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label(unit, fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def save_dwell_maps(maps: Sequence[np.ndarray], path: str | Path, *, title: str = "") -> Path:
    """Save the planned dwell map of each pass (seconds, shown in ms) side by side."""
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for i, (ax, m) in enumerate(zip(axes[0], maps, strict=True)):
        im = ax.imshow(np.asarray(m) * 1e3, cmap="viridis", interpolation="nearest")
        ax.set_title(f"pass {i + 1} dwell", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label("ms", fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def save_budget_timeline(
    row_end_s: Sequence[np.ndarray], budget_s: float, path: str | Path, *, title: str = ""
) -> Path:
    """Save the budget timeline: rows done against instrument time used, one line per pass."""
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    done = 0
    for i, ends in enumerate(row_end_s):
        t = np.sort(np.asarray(ends)[np.isfinite(ends)])
        if t.size:
            ax.step(t, done + np.arange(1, t.size + 1), where="post", label=f"pass {i + 1}")
            done += t.size
    ax.axvline(budget_s, color="crimson", linestyle="--", label=f"budget {budget_s:g} s")
    ax.set_xlabel("instrument time used, s")
    ax.set_ylabel("rows done (all passes)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_pigment_maps(
    probabilities: np.ndarray, names: Sequence[str], path: str | Path, *, title: str = ""
) -> Path:
    """Save ``(P, H, W)`` pigment probabilities (0..1, one colour scale for all) as a grid."""
    n = len(names)
    cols = min(n, 6)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, m, name in zip(axes.ravel(), probabilities, names, strict=False):
        im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label("probability", fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
