"""``dwellwise bench element-maps``: the four elemental-map networks of paper 002 and the linear
fit, side by side on held-out simulated scenes, and the 1DCNN+ speed on the CPU.

The held-out set (:func:`dwellwise.models.map_data.heldout_scenes`) is never used in training:
the six scikit-image paintings of ``load_scene`` (a scene style no network sees) and six
random-mixture scenes from their own seed stream (each featuring two of the 12 targets, the last
one acquired on an odd calibration), each pixel counted at 20 ms live time on the default
detector and resampled onto each model's axis as ``dwellwise analyze`` does. An element is scored
on a scene where it is present: at least 1 % of the pixels expect at least 1 count of it.

Two truths: the **expected rate** of each family (``Scene.rates``; counting noise then limits
every method) and the **detected rate** (the photons of each family the detector actually
recorded / live time: what a perfect fit of the very spectra reports, the analogue of paper
002's ground truth, a PyMca fit). Measures of paper 002 §4.5 (:mod:`dwellwise.models.map_metrics`).

Full run: 12 scenes of 64×64 (a few minutes on 2 cores, most of it the linear fit), recorded in
``benchmarks/RESULTS.md``. ``quick``: 3 scenes of 16×16 and a short speed test (CI), printed only.
"""

from __future__ import annotations

import os
import time

import numpy as np
from dwellwise.benchmarks.results import markdown_table, record_section
from dwellwise.models.element_nets import (
    ARCHITECTURES,
    EXTRAS,
    LABELS,
    MODEL_AXIS,
    OUTPUTS,
    TARGETS,
    load_map_model,
    shipped_weights,
)
from dwellwise.models.map_data import CubeAdaptedFit, PixelSimulator, heldout_scenes
from dwellwise.models.map_metrics import Z_LABELS, ElementSummary, mean_scored
from dwellwise.models.map_training import PERFECT_COUNTING, heldout_figures

FULL = {
    "shape": (64, 64),
    "images": None,
    "n_mixtures": 6,
    "speed_spectra": 65_536,
    "long_dwell": True,
}
QUICK = {
    "shape": (16, 16),
    "images": ("astronaut",),
    "n_mixtures": 2,
    "speed_spectra": 4096,
    "long_dwell": False,
}
LONG_DWELLS_S = (0.100, 1.0)
"""Further passes over the same scenes at 100 ms (a museum's usual dwell, where the weak S K and
K K lines reach a count or more per pixel on some scenes) and 1 s (where counting noise no
longer limits the maps and a method's systematic errors show)."""
SSIM_GOAL = 0.98
PEARSON_GOAL = 0.99
BASELINE_MARGIN = 0.01
SPEED_GOAL = 20_000.0
ALL_FAMILIES_FIT = "linear fit, all families"
"""Row of the linear fit on every family of the line library, unweighted (the fallback of a
model that knows nothing of the cube); the baseline of record is the cube-adapted fit."""
TRUTHS = {
    "expected": "expected rate (Scene.rates)",
    "detected": "detected rate (photons recorded / live time; paper 002's setting)",
}


def _predictors(log) -> tuple[list, list[str]]:
    predictors, notes = [], []
    for arch in ARCHITECTURES:
        path = shipped_weights(arch)
        try:
            predictors.append(load_map_model(path, device="cpu"))
        except FileNotFoundError:
            notes.append(
                f"{LABELS[arch]}: no weights at {path} (run `dwellwise train maps --arch all`)"
            )
    try:
        from dwellwise.models.linear_fit import LinearFit
    except ImportError as exc:
        notes.append(f"linear fit: not available ({exc})")
    else:
        predictors.append(CubeAdaptedFit(device="cpu"))
        every_family = LinearFit(device="cpu")
        every_family.label = ALL_FAMILIES_FIT
        predictors.append(every_family)
    for n in notes:
        log(n)
    return predictors, notes


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if not np.isfinite(v) else f"{v:.{digits}f}"


def _mean(summary: dict[str, ElementSummary], field: str) -> tuple[float, list[str]]:
    """Mean over the targets scored on at least one scene, and the targets never present."""
    return mean_scored(summary, TARGETS, field)


def element_table(
    figures: dict, truth: str, field: str, families: tuple[str, ...] = TARGETS
) -> str:
    """Rows: ``families`` (default the 12 targets, with their mean); columns: each method's
    ``field`` (``ssim``, ``pearson``, ``slope``) and the number of scenes it was scored on."""
    labels = list(figures)
    first = figures[labels[0]][truth]
    rows = []
    for name in families:
        rows.append(
            [name, first[name].scenes]
            + [_fmt(getattr(figures[lab][truth][name], field)) for lab in labels]
        )
    if families == TARGETS:
        means = [_mean(figures[lab][truth], field)[0] for lab in labels]
        rows.append(["**mean**", "", *(f"**{_fmt(m)}**" for m in means)])
    return markdown_table(["element", "scenes", *labels], rows)


def z_table(figures: dict, truth: str) -> str:
    """|z| interval fractions per method, averaged over the scored targets."""
    rows = []
    for label, by_truth in figures.items():
        s = by_truth[truth]
        scored = [n for n in TARGETS if s[n].scenes > 0]
        z = np.mean([s[n].z for n in scored], axis=0) if scored else [float("nan")] * 4
        rows.append([label, *(_fmt(v) for v in z)])
    return markdown_table(["method", *(f"|z| {lab}" for lab in Z_LABELS)], rows)


def summary_table(figures: dict) -> str:
    """One row per method: mean SSIM and Pearson over the scored targets against both truths,
    and the S K and K K SSIM (expected truth)."""
    rows = []
    for label, by_truth in figures.items():
        row = [label]
        for truth in TRUTHS:
            for field in ("ssim", "pearson"):
                row.append(_fmt(_mean(by_truth[truth], field)[0]))
        row += [_fmt(by_truth["expected"][n].ssim) for n in ("S_K", "K_K")]
        row.append(sum(by_truth["expected"][n].scenes > 0 for n in TARGETS))
        rows.append(row)
    headers = [
        "method",
        "SSIM (expected)",
        "Pearson (expected)",
        "SSIM (detected)",
        "Pearson (detected)",
        "S_K SSIM",
        "K_K SSIM",
        "targets scored",
    ]
    return markdown_table(headers, rows)


def cpu_speed(n_spectra: int, repeats: int = 3) -> tuple[float, int]:
    """Best spectra/s of the shipped 1DCNN+ ``predict`` on the CPU (realistic simulated
    spectra on its axis), and torch's thread count."""
    import torch

    model = load_map_model(device="cpu")
    data = PixelSimulator(axis=MODEL_AXIS).simulate(n_spectra, np.random.default_rng(7))
    model.predict(data.counts[:1024], data.live_time[:1024])  # warm-up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(data.counts, data.live_time)
        best = max(best, n_spectra / (time.perf_counter() - t))
    return best, torch.get_num_threads()


def gpu_speed(n_spectra: int, repeats: int = 3) -> float | None:
    """Best spectra/s of 1DCNN+ on CUDA (counts already on the host), or None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    model = load_map_model(device="cuda")
    model.batch_size = 65_536
    data = PixelSimulator(axis=MODEL_AXIS).simulate(n_spectra, np.random.default_rng(7))
    model.predict(data.counts, data.live_time)
    best = 0.0
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        model.predict(data.counts, data.live_time)
        torch.cuda.synchronize()
        best = max(best, n_spectra / (time.perf_counter() - t))
    return best


def worst_against_baseline(figures: dict, truth: str) -> tuple[str, float] | None:
    """The element where 1DCNN+ is furthest below the linear fit in mean SSIM against
    ``truth``, and by how much (negative: below); None without both rows."""
    net, base = figures.get("1DCNN+"), figures.get("linear fit")
    if net is None or base is None:
        return None
    diffs = {n: net[truth][n].ssim - base[truth][n].ssim for n in TARGETS if net[truth][n].scenes}
    if not diffs:
        return None
    worst = min(diffs, key=diffs.get)
    return worst, diffs[worst]


def gap_text(figures: dict, truth: str) -> str:
    """The worst element of 1DCNN+ against the linear fit and whether the margin holds ("" when
    a row is missing)."""
    found = worst_against_baseline(figures, truth)
    if found is None:
        return ""
    worst, diff = found
    ok = diff >= -BASELINE_MARGIN
    return (
        f"worst element vs linear fit {worst} {diff:+.3f} SSIM "
        f"({'met' if ok else 'NOT met'}: ≥ −{BASELINE_MARGIN})"
    )


def verdict(figures: dict, speed: float, long_figures: dict | None = None) -> list[str]:
    """The issue's goals, each marked met or NOT met; the margin to the linear fit also at each
    longer live time of ``long_figures`` ``{seconds: figures}``."""
    lines = []
    net = figures.get("1DCNN+")
    for truth, title in TRUTHS.items():
        if net is None:
            lines.append(f"- {title}: 1DCNN+ weights missing")
            continue
        ssim, missing = _mean(net[truth], "ssim")
        pearson, _ = _mean(net[truth], "pearson")
        gap = gap_text(figures, truth)
        gap = f"; {gap}" if gap else ""
        miss = f" (not present in any scene: {', '.join(missing)})" if missing else ""
        if PERFECT_COUNTING in figures and truth == "expected":
            ceiling = figures[PERFECT_COUNTING][truth]
            miss += (
                f"; counting-noise ceiling (the detected photons themselves): mean SSIM "
                f"{_fmt(_mean(ceiling, 'ssim')[0])}, mean Pearson "
                f"{_fmt(_mean(ceiling, 'pearson')[0])}"
            )
        lines.append(
            f"- vs {title}: 1DCNN+ mean SSIM {_fmt(ssim)} "
            f"({'met' if ssim >= SSIM_GOAL else 'NOT met'}: ≥ {SSIM_GOAL}), mean Pearson "
            f"{_fmt(pearson)} ({'met' if pearson >= PEARSON_GOAL else 'NOT met'}: ≥ "
            f"{PEARSON_GOAL}){gap}{miss}"
        )
    for live, long in (long_figures or {}).items():
        for truth, title in TRUTHS.items():
            gap = gap_text(long, truth)
            if gap:
                lines.append(f"- at {live * 1000:.0f} ms, vs {title}: {gap}")
    lines.append(
        f"- 1DCNN+ on the CPU: {speed:,.0f} spectra/s "
        f"({'met' if speed >= SPEED_GOAL else 'NOT met'}: ≥ {SPEED_GOAL:,.0f})"
    )
    return lines


def main(quick: bool = False) -> int:
    cfg = QUICK if quick else FULL
    started = time.perf_counter()
    predictors, notes = _predictors(print)
    if not any(p.label == "1DCNN+" for p in predictors):
        print("no 1DCNN+ weights: nothing to benchmark (train them with `dwellwise train maps`)")
        return 1
    kwargs = {"shape": cfg["shape"], "n_mixtures": cfg["n_mixtures"]}
    if cfg["images"] is not None:
        kwargs["images"] = cfg["images"]
    figures = heldout_figures(
        predictors, heldout_scenes(**kwargs), OUTPUTS, log=print, perfect_counting=True
    )
    long_figures = {
        live: heldout_figures(
            predictors,
            heldout_scenes(**kwargs, live_time_s=live),
            OUTPUTS,
            log=print,
            perfect_counting=True,
        )
        for live in (LONG_DWELLS_S if cfg["long_dwell"] else ())
    }
    speed, threads = cpu_speed(cfg["speed_spectra"])
    gpu = gpu_speed(cfg["speed_spectra"])
    n_scenes = (len(cfg["images"]) if cfg["images"] else 6) + cfg["n_mixtures"]
    h, w = cfg["shape"]
    parts = [
        f"## Elemental maps (`dwellwise bench element-maps`{' --quick' if quick else ''})",
        f"{n_scenes} held-out scenes of {h}×{w} pixels at 20 ms live time (scikit-image "
        "paintings and random-mixture scenes never used in training; one on an odd "
        "calibration), all methods on the same counts. Per element: mean over the scenes where "
        "it is present (≥ 1 % of the pixels expect ≥ 1 count). Shipped weights "
        "(`models/weights/maps_*.pt`). Linear fit = `dwellwise.models.linear_fit.LinearFit` "
        "set up for each cube as `dwellwise analyze` does (`LinearFit.for_spectrum`: the "
        "families the cube's sum spectrum shows plus the 12 targets, channels weighted by the "
        "inverse sum spectrum); `linear fit, all families` fits every family of the line "
        "library, unweighted.",
    ]
    for truth, title in TRUTHS.items():
        for field, name in (("ssim", "SSIM"), ("pearson", "Pearson"), ("slope", "slope α")):
            parts.append(f"### {name} vs {title}\n\n" + element_table(figures, truth, field))
        parts.append(f"### |z| fractions vs {title}\n\n" + z_table(figures, truth))
    parts.append("### Summary at 20 ms\n\n" + summary_table(figures))
    parts.append(
        "### Further families the networks map (not among the issue's 12 targets)\n\n"
        "SSIM vs expected rate at 20 ms:\n\n"
        + element_table(figures, "expected", "ssim", EXTRAS)
        + "".join(
            f"\n\nAt {live * 1000:.0f} ms:\n\n" + element_table(long, "expected", "ssim", EXTRAS)
            for live, long in long_figures.items()
        )
    )
    for live, long in long_figures.items():
        parts.append(
            f"### The same scenes at {live * 1000:.0f} ms live time\n\n"
            + summary_table(long)
            + "\n\nSSIM vs expected rate per element:\n\n"
            + element_table(long, "expected", "ssim")
        )
    load = os.getloadavg()[0]
    speed_line = (
        f"1DCNN+ speed: {speed:,.0f} spectra/s on the CPU ({threads} torch threads, best of 3 "
        f"over {cfg['speed_spectra']:,} spectra on its 400-channel axis, resampling excluded; "
        f"load average {load:.1f} on {os.cpu_count()} cores while measuring)"
    )
    if gpu is not None:
        speed_line += f"; {gpu:,.0f} spectra/s on CUDA"
    parts.append(speed_line + ".")
    parts.append("Goals (issue 6):\n\n" + "\n".join(verdict(figures, speed, long_figures)))
    publish("element-maps", parts, notes, started, quick)
    return 0


def publish(section: str, parts: list[str], notes: list[str], started: float, quick: bool) -> None:
    """Print the report (with its notes and wall time) and, for a full run, record it."""
    if notes:
        parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in notes))
    parts.append(f"Wall time {time.perf_counter() - started:.0f} s.")
    body = "\n\n".join(parts)
    print(body)
    if not quick:
        record_section(section, body)
