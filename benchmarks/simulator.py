"""Spectra per second at 4096 channels: dwellwise's generator vs ganX's Monte Carlo.

``dwellwise bench simulator``. Both generators draw spectra of the same painting in the same
run. ganX (paper 003, Algorithm 5) draws a fixed 400 photons per pixel with
``rng.choice(E, size=(s, 400), p=h)`` and a 2-D bincount by ``np.add.at``; it is given its best
case, one distribution for the whole block, so its figure is an upper bound. dwellwise draws
Poisson counts with per-pixel intensity, every line attenuated on its own, and dead time, at
the same mean of 400 counts per spectrum, and again at the painting's own 10 ms rates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from dwellwise.benchmarks.results import markdown_table, record_section
from dwellwise.simulators.detector import PoissonSDD
from dwellwise.simulators.scenes import load_scene

GANX_PHOTONS = 400


def ganx_spectra(h: np.ndarray, n_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """ganX's DISTRTOXRF: ``n_pixels`` spectra of 400 photons drawn from distribution ``h``."""
    hist2d = rng.choice(h.size, size=(n_pixels, GANX_PHOTONS), p=h, axis=-1)
    count = np.zeros((n_pixels, h.size), dtype=np.int64)
    indexing = (np.ones_like(hist2d).T * np.arange(len(hist2d))).T
    np.add.at(count, (indexing, hist2d), 1)
    return count


def _best_rate(fn: Callable[[], int], repeats: int) -> float:
    """Best spectra per second over ``repeats`` runs of ``fn`` (which returns spectra made)."""
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def run(shape: tuple[int, int] = (128, 128), repeats: int = 3, seed: int = 0) -> list[list[object]]:
    scene = load_scene("astronaut", shape, seed=seed)
    model = scene.model
    detector = PoissonSDD(model)
    rates = scene.component_rates().reshape(model.n_components, -1)
    n_pix = rates.shape[1]
    mean_rate = rates.sum(axis=0).mean()
    live_400 = GANX_PHOTONS / mean_rate
    h = model.expected_spectra(rates).mean(axis=0)
    h /= h.sum()
    rng = np.random.default_rng(seed)

    def ganx() -> int:
        ganx_spectra(h, n_pix, rng)
        return n_pix

    def ours(live: float) -> Callable[[], int]:
        def go() -> int:
            detector.acquire(rates, live_time=live, rng=rng)
            return n_pix

        return go

    blocks = np.array_split(np.arange(n_pix), max(2, n_pix // 2048))
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(blocks))]

    def ours_threads(live: float) -> Callable[[], int]:
        def one(i: int) -> int:
            detector.acquire(rates[:, blocks[i]], live_time=live, rng=streams[i])
            return blocks[i].size

        def go() -> int:
            with ThreadPoolExecutor(max_workers=2) as pool:
                return sum(pool.map(one, range(len(blocks))))

        return go

    ganx_rate = _best_rate(ganx, repeats)
    rows: list[list[object]] = [
        ["ganX Monte Carlo (400 photons, 1 thread)", 400, "no", f"{ganx_rate:,.0f}", "1.0"]
    ]
    cases = [
        ("dwellwise Poisson, 1 thread", live_400, ours),
        ("dwellwise Poisson, 2 threads", live_400, ours_threads),
        ("dwellwise Poisson at 10 ms, 1 thread", 0.01, ours),
        ("dwellwise Poisson at 10 ms, 2 threads", 0.01, ours_threads),
    ]
    for label, live, make in cases:
        rate = _best_rate(make(live), repeats)
        counts = mean_rate * live
        rows.append([label, f"{counts:.0f}", "yes", f"{rate:,.0f}", f"{rate / ganx_rate:.1f}"])
    return rows


def main(quick: bool = False) -> int:
    shape = (48, 48) if quick else (128, 128)
    rows = run(shape=shape, repeats=2 if quick else 3)
    headers = ["generator", "mean counts/spectrum", "Poisson + dead time", "spectra/s", "× ganX"]
    table = markdown_table(headers, rows)
    body = (
        "## Simulator throughput (`dwellwise bench simulator`)\n\n"
        f"4096 channels, astronaut scene {shape[0]}×{shape[1]}, best of repeats, same run.\n\n"
        + table
    )
    print(table)
    if not quick:
        print(f"recorded in {record_section('simulator', body)}")
    return 0
