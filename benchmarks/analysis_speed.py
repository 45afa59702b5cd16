"""``dwellwise bench analysis-speed``: spectra per second of the element-map models, side by
side on the same simulated cube, recorded in ``benchmarks/RESULTS.md``.

One cube of Poisson spectra (4096 channels, 10 ms live time) of a simulated painting; every
method maps the same spectra in memory:

* our linear fit (:class:`~dwellwise.models.linear_fit.LinearFit`) on the CPU, with 1 and with
  all torch threads, without background (the configuration PyMca's figure assumes) and with
  the smooth background; set-up (line library, normal equations) is timed with the fit;
* PyMca's ``FastXRFLinearFit`` (optional ``pymca`` extra) with a fit configuration of the same
  element families, the Rh Kα scatter peaks, the same detector resolution and fit range, no
  background, unweighted, with its refit of negative areas;
* the shipped 1DCNN+ (``load_map_model``) when its weights exist;
* GPU rows for both of ours when CUDA is available.

Each time is the best of a few repeats (other sessions share the machine's cores). The last
column is the mean Pearson correlation with the simulation's truth over the element families
that have at least 20 counts a pixel, so that a fast method is also seen to be a right one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from dwellwise.benchmarks.results import markdown_table, record_section

FULL = {"shape": (128, 160), "repeats": 3}
"""20,480 spectra."""
QUICK = {"shape": (32, 32), "repeats": 1}
SCENE = "astronaut"
DWELL_S = 0.01
"""Live time per pixel, seconds."""
MIN_COUNTS_PER_PIXEL = 20.0
"""Families with fewer mean counts a pixel are left out of the Pearson column (noise rules)."""


@dataclass
class Row:
    method: str
    device: str
    threads: str
    seconds: float
    spectra: int
    pearson: float | None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.spectra / self.seconds


@dataclass
class Data:
    counts: np.ndarray
    """``(N, E)`` uint32."""
    live: np.ndarray
    """``(N,)`` seconds."""
    truth: dict[str, np.ndarray]
    """Family -> ``(N,)`` true rate, counts/s."""
    elements: tuple[str, ...]
    shape: tuple[int, int]


def simulate(shape: tuple[int, int], seed: int = 0) -> Data:
    """Poisson spectra of the benchmark scene, ``DWELL_S`` live time each."""
    from dwellwise.simulators.detector import PoissonSDD
    from dwellwise.simulators.scenes import load_scene

    scene = load_scene(SCENE, shape, seed=seed)
    detector = PoissonSDD(scene.model)
    rates = scene.component_rates().reshape(scene.model.n_components, -1)
    acq = detector.acquire(rates, live_time=DWELL_S, rng=np.random.default_rng(seed))
    truth = scene.rates.reshape(len(scene.elements), -1)
    return Data(
        counts=acq.counts,
        live=acq.live_time,
        truth=dict(zip(scene.elements, truth, strict=True)),
        elements=scene.elements,
        shape=shape,
    )


def mean_pearson(data: Data, maps: dict[str, np.ndarray]) -> float | None:
    """Mean Pearson correlation with the truth over the well-exposed families."""
    rs = []
    for name, truth in data.truth.items():
        if name not in maps or truth.mean() * DWELL_S < MIN_COUNTS_PER_PIXEL:
            continue
        rs.append(np.corrcoef(maps[name].ravel(), truth)[0, 1])
    return float(np.mean(rs)) if rs else None


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


# -- the methods --------------------------------------------------------------------------------
def linear_rows(data: Data, repeats: int) -> list[Row]:
    import torch
    from dwellwise.models.linear_fit import LinearFit

    rows = []
    configs = [("cpu", threads) for threads in sorted({1, torch.get_num_threads()})]
    if torch.cuda.is_available():
        configs.append(("cuda", None))
    for device, threads in configs:
        for terms, label in ((0, "no background"), (4, "4-term background")):

            def run(device=device, terms=terms, threads=threads) -> np.ndarray:
                fit = LinearFit(
                    elements=data.elements, device=device, background_terms=terms, threads=threads
                )
                out = fit.predict(data.counts, data.live)
                if device == "cuda":
                    torch.cuda.synchronize()
                return out

            run()  # warm-up (imports, CUDA context, cached line library)
            seconds, out = best_time(run, repeats)
            maps = {e: out[:, i] for i, e in enumerate(data.elements)}
            rows.append(
                Row(
                    f"linear fit (ours), {label}",
                    device,
                    "-" if threads is None else str(threads),
                    seconds,
                    data.counts.shape[0],
                    mean_pearson(data, maps),
                )
            )
    return rows


def pymca_config(elements: tuple[str, ...]):
    """A PyMca fit configuration with our families, scatter, detector and fit range; no
    background, unweighted."""
    from dwellwise.models.linear_fit import FIT_WINDOW_KEV
    from dwellwise.simulators.energy import EnergyAxis
    from dwellwise.simulators.lines import EXCITATION_KEV
    from dwellwise.simulators.response import SDDResponse
    from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory

    axis = EnergyAxis()
    config = ClassMcaTheory.McaTheory().getConfiguration()
    peaks: dict[str, list[str]] = {}
    for label in elements:
        symbol, family = label.split("_")
        peaks.setdefault(symbol, []).append(family)
    config["peaks"] = {s: (f if len(f) > 1 else f[0]) for s, f in peaks.items()}
    config["fit"].update(
        xmin=int(axis.channel_of(FIT_WINDOW_KEV[0])),
        xmax=int(axis.channel_of(FIT_WINDOW_KEV[1])),
        stripflag=0,
        continuum=0,
        hypermetflag=1,
        escapeflag=1,
        sumflag=0,
        fitweight=0,
        energy=[EXCITATION_KEV],
        energyweight=[1.0],
        energyflag=[1],
        energyscatter=[1],
        scatterflag=1,
    )
    response = SDDResponse()
    config["detector"].update(
        zero=axis.offset_kev,
        gain=axis.gain_kev,
        noise=float(np.sqrt(response.electronic_noise_ev2)) / 1000.0,
        fano=0.114,
    )
    return config


def pymca_row(data: Data, repeats: int) -> tuple[Row | None, str]:
    try:
        from PyMca5.PyMcaPhysics.xrf import FastXRFLinearFit
        from PyMca5.PyMcaPhysics.xrf.XRFBatchFitOutput import OutputBuffer
    except ImportError as exc:
        return None, f"PyMca not installed ({exc}); `pip install dwellwise[pymca]` adds it"
    logging.getLogger("PyMca5").setLevel(logging.ERROR)
    h, w = data.shape
    cube = data.counts.reshape(h, w, -1)
    config = pymca_config(data.elements)

    def run():
        fast = FastXRFLinearFit.FastXRFLinearFit()
        fast.setFitConfiguration(config)
        buffer = OutputBuffer()
        with buffer.saveContext():
            out = fast.fitMultipleSpectra(
                y=cube, weight=0, refit=1, concentrations=0, outbuffer=buffer, save=False
            )
        return out

    seconds, out = best_time(run, repeats)
    labels = [label.replace(" ", "_") for label in out.labels("parameters")]
    params = out["parameters"]
    live = data.live.reshape(h, w)
    maps = {lab: (params[i] / live).ravel() for i, lab in enumerate(labels)}
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "BLAS default")
    row = Row(
        "PyMca FastXRFLinearFit, no background",
        "cpu",
        threads,
        seconds,
        data.counts.shape[0],
        mean_pearson(data, maps),
    )
    return row, ""


def network_rows(data: Data, repeats: int) -> tuple[list[Row], str]:
    import torch

    try:
        from dwellwise.models.element_nets import load_map_model
    except ModuleNotFoundError as exc:
        if exc.name != "dwellwise.models.element_nets":
            raise
        return [], "1DCNN+: not available yet (no elemental-map network in this installation)"
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        try:
            model = load_map_model(device=device)
        except FileNotFoundError:
            return [], "1DCNN+: not available yet (no trained weights; `dwellwise train maps`)"
        from dwellwise.models.calibration import resample_counts
        from dwellwise.simulators.energy import EnergyAxis

        def run(model=model, device=device) -> np.ndarray:
            x = resample_counts(data.counts, EnergyAxis(), model.axis)
            out = model.predict(x, data.live)
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        run()
        seconds, out = best_time(run, repeats)
        maps = {e: out[:, i] for i, e in enumerate(model.names)}
        rows.append(
            Row(
                f"{model.label} (ours)",
                device,
                str(torch.get_num_threads()) if device == "cpu" else "-",
                seconds,
                data.counts.shape[0],
                mean_pearson(data, maps),
            )
        )
    return rows, ""


# -- report ------------------------------------------------------------------------------------
def table(rows: list[Row], reference: Row | None) -> str:
    headers = ["method", "device", "threads", "spectra/s", "× PyMca", "mean Pearson vs truth"]
    body = []
    for r in rows:
        ratio = f"{r.rate / reference.rate:.2f}" if reference is not None else "-"
        pearson = "-" if r.pearson is None else f"{r.pearson:.4f}"
        body.append([r.method, r.device, r.threads, f"{r.rate:,.0f}", ratio, pearson])
    return markdown_table(headers, body)


def main(quick: bool = False) -> int:
    cfg = QUICK if quick else FULL
    started = time.perf_counter()
    data = simulate(cfg["shape"])
    n = data.counts.shape[0]
    print(
        f"analysis-speed: {SCENE} {cfg['shape'][0]}x{cfg['shape'][1]} = {n:,} spectra", flush=True
    )
    notes = []
    pymca, note = pymca_row(data, cfg["repeats"])
    if note:
        notes.append(note)
    rows = linear_rows(data, cfg["repeats"])
    nets, note = network_rows(data, cfg["repeats"])
    if note:
        notes.append(note)
    rows += nets
    if pymca is not None:
        rows.append(pymca)
    load = os.getloadavg()
    body = table(rows, pymca)
    families = ", ".join(data.elements)
    intro = (
        f"{n:,} simulated spectra ({SCENE}, {cfg['shape'][0]}×{cfg['shape'][1]} px, 4096 "
        f"channels, {DWELL_S * 1e3:g} ms live time each, {data.counts.sum() / n:.0f} counts a "
        f"spectrum), fitted in memory on {os.cpu_count()} CPU cores (load average "
        f"{load[0]:.1f} at the end: other sessions share them); best of {cfg['repeats']} runs, "
        f"set-up included. Families fitted by every method: {families}; fit range "
        "1.0-21.0 keV, Rh Kα Rayleigh and Compton in the model. Pearson: mean over the families "
        f"with ≥ {MIN_COUNTS_PER_PIXEL:g} counts a pixel.\n\n"
    )
    text = intro + body + ("\n\n" + "\n".join(f"- {x}" for x in notes) if notes else "")
    print("## Analysis speed\n\n" + text + "\n", flush=True)
    if not quick:
        record_section(
            "analysis-speed", "## Analysis speed (`dwellwise bench analysis-speed`)\n\n" + text
        )
    print(f"analysis-speed benchmark: {time.perf_counter() - started:.0f} s", flush=True)
    return 0
