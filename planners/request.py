"""Scan requests, validated before anything moves.

Plans build one of these from their keyword arguments; the daemon and the CLI reuse them. Every
refusal is a :class:`ScanRefused` (a ``ValueError``) whose message says what would fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from dwellwise.planners.policies import get_policy, list_policies
from dwellwise.planners.schedule import Geometry
from dwellwise.simulators.kinematics import Kinematics
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NEEDS_TRUTH = frozenset({"oracle"})
"""Policies that only work with the true rates of a simulation (benchmarks), not in a scan."""


class ScanRefused(ValueError):
    """A scan request that cannot run as asked; the message says what would fit."""


class Region(BaseModel):
    """Where to scan."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    shape: tuple[int, int]
    """Region size ``(H, W)`` in pixels (rows, columns)."""
    pixel_size: float = Field(gt=0, allow_inf_nan=False)
    """Pitch, mm (> 0)."""
    origin: tuple[float, float] = (0.0, 0.0)
    """Centre of pixel (0, 0), ``(x, y)`` mm."""

    @field_validator("shape")
    @classmethod
    def _positive(cls, shape: tuple[int, int]) -> tuple[int, int]:
        if min(shape) < 1:
            raise ValueError(f"shape must be at least 1x1 pixels, got {shape[0]}x{shape[1]}")
        return shape

    def geometry(self) -> Geometry:
        return Geometry(shape=self.shape, pixel_size=self.pixel_size, origin=self.origin)


class RasterRequest(Region):
    """One uniform pass."""

    dwell: float = Field(gt=0, allow_inf_nan=False)
    """Dwell per pixel, seconds."""


class AdaptiveRequest(Region):
    """A first uniform pass, then passes whose dwell a policy decides, inside a hard budget."""

    budget: float = Field(gt=0, allow_inf_nan=False)
    """Total instrument time for everything (passes, motion, compute, overhead), seconds."""
    t0: float = Field(gt=0, allow_inf_nan=False)
    """First-pass dwell per pixel, seconds."""
    policy: str = "auto"
    """Dwell policy (see ``dwellwise.planners.list_policies()``)."""
    passes: int = Field(default=2, ge=1, le=16)
    """Number of passes (1: only the uniform first pass)."""
    weights: tuple[float, ...] | None = None
    """Per-element weights in the detector's element order, or None for equal relative error."""
    deadline: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Instrument seconds allowed for the compute between passes (None: chosen from the budget)."""

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, policy: str) -> str:
        get_policy(policy)  # raises ValueError listing the valid names
        if policy in NEEDS_TRUTH:
            usable = ", ".join(name for name in list_policies() if name not in NEEDS_TRUTH)
            raise ValueError(
                f"policy {policy!r} needs the true rates, which no scan has (it is the limit that "
                f"benchmarks compare against); choose one of: {usable}"
            )
        return policy


def parse_request(model: type[BaseModel], **fields) -> BaseModel:
    """Build a request, turning pydantic's errors into one readable :class:`ScanRefused`."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        raise ScanRefused(f"invalid scan request: {problems}") from None


def resolve_weights(
    weights: Sequence[float] | Mapping[str, float] | None, elements: Sequence[str]
) -> tuple[float, ...] | None:
    """Weights in element order from a sequence (one per element) or a ``{element: w}`` map."""
    if weights is None:
        return None
    elements = list(elements)
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(elements))
        if unknown:
            raise ScanRefused(f"weights name unknown elements {unknown}; the detector has {elements}")
        values = [float(weights.get(el, 0.0)) for el in elements]
    else:
        values = [float(w) for w in np.asarray(weights, dtype=float).reshape(-1)]
        if len(values) != len(elements):
            raise ScanRefused(
                f"weights has {len(values)} values but the detector has {len(elements)} elements "
                f"{elements}; give one weight per element or a mapping element -> weight"
            )
    arr = np.asarray(values)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
        raise ScanRefused(f"weights must be finite, >= 0 and not all 0, got {values}")
    return tuple(values)


def check_dwell(dwell: float, geom: Geometry, kin: Kinematics, what: str = "t0") -> None:
    """A fly-scanned pixel cannot dwell less than pitch / v_max."""
    shortest = kin.min_dwell(geom.pixel_size)
    if dwell < shortest * (1 - 1e-9):
        raise ScanRefused(
            f"{what} = {dwell * 1e3:.4g} ms is shorter than pitch / v_max = "
            f"{geom.pixel_size} mm / {kin.v_max} mm/s = {shortest * 1e3:.4g} ms; "
            f"use {what} >= {shortest * 1e3:.4g} ms or a larger pixel size"
        )


def check_region(geom: Geometry, limits, kin: Kinematics) -> None:
    """The region, with run-up room at full speed on both sides, must lie inside the limits."""
    (xl, xh), (yl, yh) = limits
    margin = kin.v_max**2 / (2 * kin.a_max)
    half = geom.pixel_size / 2
    x_lo, x_hi = geom.xs[0] - half - margin, geom.xs[-1] + half + margin
    y_lo, y_hi = geom.ys[0], geom.ys[-1]
    if x_lo < xl or x_hi > xh or y_lo < yl or y_hi > yh:
        raise ScanRefused(
            f"region x [{geom.xs[0]:.3f}, {geom.xs[-1]:.3f}] mm, y [{y_lo:.3f}, {y_hi:.3f}] mm "
            f"needs x in [{x_lo:.3f}, {x_hi:.3f}] mm with the {margin:.3g} mm run-up at full speed, "
            f"outside the stage limits x [{xl}, {xh}] mm, y [{yl}, {yh}] mm; move the origin "
            "or scan a smaller region"
        )
