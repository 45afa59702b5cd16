"""``dwellwise scan``: run a raster or adaptive scan without the daemon."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from dwellwise.cliargs import UsageError, duration_arg, positive_float_arg, shape_arg
from dwellwise.cube import decode_strings


def add_scan_parser(sub) -> None:
    scan = sub.add_parser(
        "scan", help="run a raster or adaptive scan (simulated beamline) into a cube file"
    )
    scan.add_argument("--sim", action="store_true", help="use the simulated beamline")
    scan.add_argument("--scene", default="astronaut", help="painting scene or image file (--sim)")
    scan.add_argument("--shape", type=shape_arg, default=(48, 48), help="HxW pixels, e.g. 48x48")
    scan.add_argument("--pixel-size", type=positive_float_arg, default=0.5, help="pitch, mm")
    scan.add_argument(
        "--budget", type=duration_arg, default=None, help="total time for everything (60, 2min); required"
    )
    scan.add_argument("--t0", type=duration_arg, default=0.005, help="first-pass dwell (5ms)")
    scan.add_argument("--policy", default="auto", help="dwell policy (see `--policy list`)")
    scan.add_argument("--mode", choices=["adaptive", "raster"], default="adaptive")
    scan.add_argument("--passes", type=int, default=2, help="passes in adaptive mode (>= 1)")
    scan.add_argument(
        "--weights", default=None, help="element weights: Fe_K=2,Pb_L=1 or one number per element"
    )
    scan.add_argument(
        "--speedup", type=positive_float_arg, default=1.0, help="simulated time per wall second"
    )
    scan.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    scan.add_argument("--out", type=Path, default=None, help="cube file to write (.h5); required")
    scan.add_argument("--overwrite", action="store_true", help="replace an existing cube file")
    scan.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_weights(text: str | None) -> dict[str, float] | list[float] | None:
    """``"Fe_K=2,Pb_L=1"`` -> mapping; ``"1,1,2"`` -> list; ``None`` -> None."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        return [float(p) for p in parts]
    except ValueError:
        raise UsageError(
            f"cannot read --weights {text!r}: write Fe_K=2,Pb_L=1 or one number per element"
        ) from None


def cmd_scan(args: argparse.Namespace) -> int:
    from bluesky import RunEngine
    from bluesky.utils import RunEngineInterrupted

    from dwellwise.planners import adaptive_scan, budget_raster_scan, list_policies
    from dwellwise.planners.progress import ScanProgress

    if args.policy == "list":
        for name, summary in list_policies().items():
            print(f"{name:<16} {summary}")
        return 0
    missing = [flag for flag, value in (("--budget", args.budget), ("--out", args.out)) if value is None]
    if missing:
        raise UsageError(f"{' and '.join(missing)} required (e.g. --budget 2min --out scan.h5)")
    if not args.sim:
        raise UsageError("only the simulated beamline exists yet: pass --sim")
    out: Path = args.out
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"output directory {out.parent} does not exist")
    if args.passes < 1:
        raise UsageError(f"--passes must be >= 1, got {args.passes}")
    bl = _beamline(args)
    bl.sdd.file_path = str(out)
    try:
        if args.mode == "raster":
            plan = budget_raster_scan(
                bl.stage, bl.sdd, shape=args.shape, pixel_size=args.pixel_size, budget=args.budget
            )
        else:
            plan = adaptive_scan(
                bl.stage,
                bl.sdd,
                shape=args.shape,
                pixel_size=args.pixel_size,
                budget=args.budget,
                t0=args.t0,
                policy=args.policy,
                passes=args.passes,
                weights=parse_weights(args.weights),
            )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    RE = RunEngine({})
    if not args.quiet:
        RE.subscribe(ScanProgress())
    start = time.perf_counter()
    try:
        RE(plan)
    except RunEngineInterrupted:
        print(
            "\ninterrupted: aborting the scan; every completed row stays in the file",
            file=sys.stderr,
        )
        RE.abort("interrupted from the command line")
    used = (time.perf_counter() - start) * bl.clock.speedup
    _print_summary(out, used, args.budget)
    return 0


def _beamline(args: argparse.Namespace):
    from dwellwise.drivers.sim import sim_beamline

    h, w = args.shape
    try:
        return sim_beamline(
            args.scene,
            shape=(h, w),
            pixel_size=args.pixel_size,
            speedup=args.speedup,
            seed=args.seed,
        )
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None


def _print_summary(path: Path, used_s: float, budget_s: float) -> None:
    with h5py.File(path, "r") as f:
        status = bytes(f["entry/scan_status"][()]).decode().strip()
        passes = f["entry/passes"]
        print(f"wrote {path}: {status}, {used_s:.1f} s of the {budget_s:g} s budget")
        for n in sorted(passes, key=int):
            g = passes[n]
            rows = int(g["rows_complete"][...].sum())
            if rows == 0:
                print(f"  pass {n}: not run")
                continue
            done = g["rows_complete"][...]
            planned = g["dwell_planned"][...][done]
            print(
                f"  pass {n}: {rows}/{done.size} rows, planned dwell mean "
                f"{planned.mean() * 1e3:.2f} ms (min {planned.min() * 1e3:.2f}, "
                f"max {planned.max() * 1e3:.2f})"
            )
        if "entry/truth" in f:
            rates = estimated_roi_rates(f)
            truth = f["entry/truth/roi_rates"][...]
            rmse = np.sqrt(np.mean((rates - truth) ** 2, axis=(1, 2)))
            mean = truth.mean(axis=(1, 2))
            elements = decode_strings(f["entry/truth/elements"][...])
            print("  ROI-rate RMSE against the truth, counts/s (% of the element's mean rate):")
            parts = [
                f"{el} {r:.4g} ({100 * r / m:.1f} %)" if m > 0 else f"{el} {r:.4g}"
                for el, r, m in zip(elements, rmse, mean, strict=True)
            ]
            for i in range(0, len(parts), 4):
                print("    " + ", ".join(parts[i : i + 4]))


def estimated_roi_rates(f: h5py.File) -> np.ndarray:
    """Per-pixel ROI rates ``(C, H, W)`` counts/s: all passes' ROI counts over their live time."""
    passes = f["entry/passes"]
    counts = sum(passes[n]["roi_counts"][...].astype(np.float64) for n in passes)
    live = sum(passes[n]["live_time"][...] for n in passes)
    return np.divide(counts, live, out=np.zeros_like(counts), where=live > 0)
