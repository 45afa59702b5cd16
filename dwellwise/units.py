"""Parsing of the quantities people type: durations and image shapes."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|s|min|h)?\s*$")
_SCALE = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, None: 1.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float) -> float:
    """``"10ms"``, ``"2.5s"``, ``"1e-3"``, ``"2min"`` -> seconds. Must be positive."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise ValueError(
                f"cannot read duration {text!r}: write a number with an optional unit "
                "us, ms, s, min or h (e.g. 10ms, 2.5s)"
            )
        value = float(match.group(1)) * _SCALE[match.group(2)]
    if not value > 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return value


def parse_shape(text: str) -> tuple[int, int]:
    """``"64x48"`` -> ``(64, 48)`` as (H, W) pixels, each at least 2."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"cannot read shape {text!r}: write HxW in pixels, e.g. 64x64")
    h, w = int(match.group(1)), int(match.group(2))
    if h < 2 or w < 2:
        raise ValueError(f"shape must be at least 2x2 pixels, got {h}x{w}")
    return h, w
