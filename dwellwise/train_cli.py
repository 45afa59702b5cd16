"""``dwellwise train maps`` and ``dwellwise train pigments``: retrain the shipped analysis models.

The flags common to both live here; the training itself lives in
:mod:`dwellwise.models.map_training` and :mod:`dwellwise.models.pigment_training`, imported only
when the command runs (torch is slow to import).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dwellwise.cliargs import UsageError


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train the analysis models on simulated spectra")
    what = train.add_subparsers(dest="what", required=True)
    maps = what.add_parser("maps", help="elemental-map networks (FCN, FCN+, 1DCNN, 1DCNN+)")
    _common(maps)
    maps.add_argument(
        "--arch",
        default="1dcnn+",
        choices=["fcn", "fcn+", "1dcnn", "1dcnn+", "all"],
        help="which architecture to train (default 1dcnn+, the one analyze uses)",
    )
    maps.add_argument(
        "--long-dwell",
        action="store_true",
        help="train the long-dwell network instead (0.1-2 s pixels; analyze uses it for pixels "
        "of 0.15 s live time or more; written as maps_<arch>_long.pt)",
    )
    maps.add_argument(
        "--linear-skip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add a fixed linear unmixing (ridge regression on the training spectra) to the "
        "network's output, so that it learns the correction to the best linear estimate "
        "(default: as the shipped weights, on for 1dcnn+ only)",
    )
    pigments = what.add_parser("pigments", help="pigment classifier (1D CNN of paper 004)")
    _common(pigments)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="weights file to write (default: the weights shipped in the package)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data recipe and training")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default: those of the shipped weights)",
    )
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N"
    )
    p.add_argument("--quick", action="store_true", help="tiny configuration, seconds on a CPU")


def cmd_train(args: argparse.Namespace) -> int:
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.out is not None and not args.out.parent.is_dir():
        raise UsageError(f"folder {args.out.parent} for --out does not exist")
    if args.what == "maps":
        from dwellwise.models.map_training import train_from_cli
    else:
        from dwellwise.models.pigment_training import train_from_cli
    return train_from_cli(args)
