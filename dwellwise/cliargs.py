"""Argument types and the usage error shared by the ``dwellwise`` subcommands."""

from __future__ import annotations

import argparse

from dwellwise.units import parse_duration, parse_shape


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def shape_arg(text: str) -> tuple[int, int]:
    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value
