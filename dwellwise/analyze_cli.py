"""``dwellwise analyze FILE.h5 [--models maps,pigments] [--png DIR] [--device auto]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from dwellwise.cliargs import UsageError


def add_analyze_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="element maps and pigment maps of a cube file, written into it (PyXRF layout)",
    )
    p.add_argument("file", type=Path, help="cube file (.h5) of a finished scan")
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated: maps (the element-map network, or the linear fit without "
        "trained weights), pigments, linear (default maps,pigments; pigments are skipped "
        "with a note when no pigment weights are installed)",
    )
    p.add_argument("--png", type=Path, default=None, help="folder for PNG maps")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--chunk-pixels",
        type=_positive_int,
        default=None,
        help="spectra analysed at a time (bounds memory; default 4096)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_models(text: str | None) -> tuple[str, ...] | None:
    """``"maps,pigments"`` -> ``("maps", "pigments")``; ``None`` -> ``None`` (the default)."""
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(","))


def cmd_analyze(args: argparse.Namespace) -> int:
    from dwellwise.analyze import CHUNK_PIXELS, AnalysisError, analyze_cube
    from dwellwise.cli import _progress_bar

    try:
        summary = analyze_cube(
            args.file,
            models=parse_models(args.models),
            png_dir=args.png,
            chunk_pixels=args.chunk_pixels or CHUNK_PIXELS,
            device=args.device,
            progress=None if args.quiet else _progress_bar("analyze"),
        )
    except AnalysisError as exc:
        raise UsageError(str(exc)) from None
    h, w = summary.shape
    print(
        f"analysed {summary.path}  ({h}x{w} px, {summary.seconds:.1f} s, "
        f"{summary.spectra_per_second:,.0f} spectra/s)"
    )
    if summary.maps_model:
        print(
            f"element maps ({summary.maps_model}, counts/s): /xrfmap/detsum/xrf_fit  "
            f"{', '.join(summary.map_names)}"
        )
    if summary.linear_names:
        print(f"linear-fit baseline: /entry/analysis/linear_fit  {', '.join(summary.linear_names)}")
    if summary.pigment_model:
        print(
            f"pigment maps ({summary.pigment_model}): /entry/analysis/pigments  "
            f"{', '.join(summary.pigment_names)}"
        )
    for note in summary.notes:
        print(f"note: {note}")
    for png in summary.pngs:
        print(f"png: {png}")
    return 0
