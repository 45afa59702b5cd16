"""A uniform raster scan of a simulated painting, written to a cube file (``dwellwise simulate``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from dwellwise.cube import CubeWriter
from dwellwise.simulators.detector import Acquisition, PoissonSDD
from dwellwise.simulators.scenes import Scene

BLOCK_PIXELS = 8192
"""Pixels simulated at once: bounds memory to ~0.3 GiB per worker at 4096 channels."""


@dataclass(frozen=True)
class SimulationSummary:
    """What ``dwellwise simulate`` reports."""

    path: Path
    """The cube file written."""
    elements: tuple[str, ...]
    """Element channels."""
    roi_count_range: dict[str, tuple[int, int]]
    """Per element: min and max ROI counts per pixel."""
    total_counts: int
    """All counts in the cube."""
    seconds: float
    """Wall time taken, seconds."""


def acquire_rows(
    scene: Scene, detector: PoissonSDD, dwell: float, seed: int, threads: int = 2
) -> Iterator[tuple[int, Acquisition]]:
    """Yield ``(row, acquisition)`` for every row in order; blocks of rows are simulated in
    parallel with independent random streams (same seed -> same result, any thread count)."""
    h, w = scene.shape
    rows_per_block = max(1, BLOCK_PIXELS // w)
    starts = list(range(0, h, rows_per_block))
    streams = np.random.SeedSequence(seed).spawn(len(starts))

    def block(i: int) -> list[Acquisition]:
        rows = slice(starts[i], starts[i] + rows_per_block)
        rates = scene.component_rates(rows)
        n_rows = rates.shape[1]
        acq = detector.acquire(
            rates.reshape(rates.shape[0], -1),
            live_time=dwell,
            rng=np.random.default_rng(streams[i]),
        )
        return [
            Acquisition(
                acq.counts[r * w : (r + 1) * w],
                acq.live_time[r * w : (r + 1) * w],
                acq.real_time[r * w : (r + 1) * w],
            )
            for r in range(n_rows)
        ]

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending = [pool.submit(block, i) for i in range(min(len(starts), threads + 1))]
        for i in range(len(starts)):
            rows = pending[i].result()
            pending[i] = None  # release memory of finished blocks
            if i + threads + 1 < len(starts):
                pending.append(pool.submit(block, i + threads + 1))
            for r, acq in enumerate(rows):
                yield starts[i] + r, acq


def simulate_scan(
    scene: Scene,
    out: str | Path,
    *,
    dwell: float,
    pixel_size: float = 0.5,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationSummary:
    """Simulate one uniform pass of ``dwell`` seconds live time per pixel and write the cube.

    The file appears under ``out`` only when complete: it is written beside it under a
    temporary name and renamed at the end, and removed if anything fails.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise PermissionError(f"cannot write to directory {out.parent}")
    start = time.perf_counter()
    tmp = out.with_name(f".{out.name}.partial")
    model = scene.model
    detector = PoissonSDD(model)
    h, w = scene.shape
    totals = 0
    try:
        with CubeWriter(
            tmp,
            shape=(h, w),
            axis=model.axis,
            pixel_size=pixel_size,
            elements=model.elements,
            roi_windows=model.roi_windows,
            passes=1,
            truth={"rates": scene.rates, "roi_rates": scene.roi_rates, "elements": scene.elements},
            metadata={
                "scene": scene.name,
                "dwell_s": dwell,
                "seed": seed,
                "mode": "raster",
                "pixel_size_mm": pixel_size,
                "simulated": 1,
            },
        ) as writer:
            writer.set_planned_dwell(1, np.full((h, w), dwell))
            for row, acq in acquire_rows(scene, detector, dwell, seed):
                writer.write_row(1, row, acq.counts, acq.live_time, acq.real_time)
                totals += int(acq.counts.sum(dtype=np.uint64))
                if progress:
                    progress(row + 1, h)
            writer.set_status("completed")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    roi = read_roi_counts(out)
    return SimulationSummary(
        path=out,
        elements=model.elements,
        roi_count_range={
            e: (int(r.min()), int(r.max())) for e, r in zip(model.elements, roi, strict=True)
        },
        total_counts=totals,
        seconds=time.perf_counter() - start,
    )


def read_roi_counts(path: Path, pass_number: int = 1) -> np.ndarray:
    """ROI counts ``(C, H, W)`` of one pass of a cube file."""
    with h5py.File(path, "r") as f:
        return f[f"entry/passes/{pass_number}/roi_counts"][...]
