"""The ``dwellwise`` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dwellwise.analyze_cli import add_analyze_parser, cmd_analyze
from dwellwise.cliargs import UsageError, duration_arg, positive_float_arg, shape_arg
from dwellwise.daemon.cli import add_daemon_parsers, cmd_console, cmd_keygen, cmd_serve
from dwellwise.hardware_cli import add_check_hardware_parser, cmd_check_hardware
from dwellwise.scan_cli import add_scan_parser, cmd_scan
from dwellwise.train_cli import add_train_parser, cmd_train


class _Parser(argparse.ArgumentParser):
    """argparse, with a hint where a value that starts with '-' was taken for a flag."""

    def error(self, message: str):
        if message.endswith("expected one argument"):
            message += " (a value that starts with '-' is written with '=', e.g. --dwell=-5ms)"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dwellwise", description="Adaptive-dwell MA-XRF scanning of paintings."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate a uniform scan of a painting into a cube file")
    sim.add_argument(
        "--scene",
        default="astronaut",
        help="built-in scene (astronaut, chelsea, coffee, rocket, "
        "immunohistochemistry, colorwheel, procedural) or an image file",
    )
    sim.add_argument("--shape", type=shape_arg, default=(64, 64), help="HxW pixels, e.g. 64x64")
    sim.add_argument("--dwell", type=duration_arg, default=0.01, help="live time per pixel (10ms)")
    sim.add_argument("--out", type=Path, required=True, help="cube file to write (.h5)")
    sim.add_argument("--seed", type=int, default=0, help="random seed")
    sim.add_argument("--pixel-size", type=positive_float_arg, default=0.5, help="pixel pitch, mm")
    sim.add_argument("--png", type=Path, default=None, help="also save the element maps as PNG")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_scan_parser(sub)
    add_daemon_parsers(sub)
    add_train_parser(sub)
    add_analyze_parser(sub)
    add_check_hardware_parser(sub)
    demo = sub.add_parser(
        "demo", help="run the daemon in-process, scan a painting adaptively, write files + PNGs"
    )
    demo.add_argument("--out", type=Path, default=Path("out"), help="folder for the results")
    demo.add_argument("--scene", default=None, help="painting scene (default astronaut)")
    demo.add_argument("--shape", type=shape_arg, default=None, help="HxW pixels (default 32x32)")
    demo.add_argument("--budget", type=duration_arg, default=None, help="budget (default 60 s)")
    demo.add_argument("--speedup", type=positive_float_arg, default=None, help="default 5")
    bench = sub.add_parser("bench", help="run a benchmark and record it in benchmarks/RESULTS.md")
    bench.add_argument("which", choices=sorted(BENCHMARKS), help="which benchmark")
    bench.add_argument("--quick", action="store_true", help="small configuration (CI)")
    return parser


def cmd_simulate(args: argparse.Namespace) -> int:
    from dwellwise.plots import save_element_maps
    from dwellwise.simulate import read_roi_counts, simulate_scan
    from dwellwise.simulators.scenes import load_scene

    out: Path = args.out
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; name the cube file to write, e.g. {out / 'cube.h5'}")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.exists() or not out.parent.is_dir():
        raise UsageError(f"output directory {out.parent} does not exist")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.png is not None and not args.png.parent.is_dir():
        raise UsageError(f"PNG directory {args.png.parent} does not exist")
    try:
        scene = load_scene(args.scene, args.shape, seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        summary = simulate_scan(
            scene,
            out,
            dwell=args.dwell,
            pixel_size=args.pixel_size,
            seed=args.seed,
            overwrite=args.overwrite,
            progress=_progress_bar("simulate"),
        )
    except (PermissionError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None
    print(
        f"wrote {summary.path}  ({args.shape[0]}x{args.shape[1]} px, dwell {args.dwell * 1e3:g} ms,"
        f" {summary.total_counts:,} counts, {summary.seconds:.1f} s)"
    )
    print(f"{'element':<8} {'min':>7} {'max':>8}  ROI counts per pixel")
    for name, (lo, hi) in summary.roi_count_range.items():
        print(f"{name:<8} {lo:>7d} {hi:>8d}")
    if args.png is not None:
        save_element_maps(
            read_roi_counts(out),
            summary.elements,
            args.png,
            title=f"{args.scene}: ROI counts at {args.dwell * 1e3:g} ms",
        )
        print(f"element maps: {args.png}")
    return 0


BENCHMARKS = {
    "simulator": "dwellwise.benchmarks.simulator",
    "dwell": "dwellwise.benchmarks.dwell_cli",
    "acquisition": "dwellwise.benchmarks.acquisition_cli",
    "analysis-speed": "dwellwise.benchmarks.analysis_speed",
    "element-maps": "dwellwise.benchmarks.element_maps",
    "element-maps-pymca": "dwellwise.benchmarks.element_maps_pymca",
    "pigments": "dwellwise.benchmarks.pigments",
    "pigments-pymca": "dwellwise.benchmarks.pigments_pymca",
    "pigments-ceiling": "dwellwise.benchmarks.pigments_ceiling",
    "zaber": "dwellwise.benchmarks.zaber_serial",
    "hardware-faults": "dwellwise.benchmarks.hardware_faults",
}
"""Benchmark name -> module with ``main(quick: bool) -> int`` (imported only when run)."""


def cmd_bench(args: argparse.Namespace) -> int:
    return importlib.import_module(BENCHMARKS[args.which]).main(quick=args.quick)


def _progress_bar(label: str):
    def show(done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def cmd_demo(args: argparse.Namespace) -> int:
    from dwellwise.daemon.demo import main as demo_main

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    request = {
        key: value
        for key, value in (
            ("scene", args.scene),
            ("shape", list(args.shape) if args.shape else None),
            ("budget", args.budget),
            ("speedup", args.speedup),
        )
        if value is not None
    }
    return demo_main(args.out, request)


COMMANDS = {
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "scan": cmd_scan,
    "bench": cmd_bench,
    "serve": cmd_serve,
    "console": cmd_console,
    "keygen": cmd_keygen,
    "train": cmd_train,
    "analyze": cmd_analyze,
    "check-hardware": cmd_check_hardware,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 with a one-line reason
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"dwellwise {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(
            f"dwellwise {args.command}: error: not enough memory ({exc}); ask for a smaller "
            "scene or cube",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:  # the reader (``| head``) left: not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit flush quiet
        return 0


if __name__ == "__main__":
    sys.exit(main())
