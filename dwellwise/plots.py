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
) -> Path:
    """Save ``(C, H, W)`` maps as a grid of images with colour bars, one per element."""
    n = len(names)
    cols = min(n, 6)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, m, name in zip(axes.ravel(), maps, names, strict=False):
        im = ax.imshow(m, cmap="inferno", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label(unit, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
