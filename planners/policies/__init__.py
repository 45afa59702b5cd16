"""Dwell policies: each turns first-pass counts into a per-pixel dwell map.

A policy is a callable registered under its public name with :func:`register`. It receives the
validated problem (:class:`DwellProblem`) and returns an ``(H, W)`` float64 map of additional dwell
in seconds; :func:`dwellwise.planners.allocate_dwell` checks the mean and bounds afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class DwellProblem:
    """One allocation problem, already validated."""

    counts: np.ndarray
    """First-pass counts, ``(C, H, W)`` float64 (a 2-D input is given a leading axis of 1)."""
    t0: np.ndarray
    """Live time already spent per pixel, ``(H, W)`` float64 seconds."""
    mean_dwell: float
    """Required mean of the returned additional dwell, seconds."""
    weights: np.ndarray
    """Per-channel weights ``(C,)``, non-negative, resolved from the caller's choice."""
    min_dwell: float
    """Lower bound of every pixel's additional dwell, seconds."""
    max_dwell: float
    """Upper bound of every pixel's additional dwell, seconds (``inf`` when unbounded)."""
    seed: int | None
    """Seed for anything random the policy does."""
    options: dict[str, Any] = field(default_factory=dict)
    """Policy-specific keyword options (e.g. ``rates=`` for the oracle, ``deadline=``)."""


class DwellPolicy(Protocol):
    def __call__(self, problem: DwellProblem) -> np.ndarray: ...


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    """Public name used by ``allocate_dwell(policy=...)``."""
    summary: str
    """One-line description shown by :func:`list_policies`."""
    func: DwellPolicy
    """The implementation."""
    fits: Callable[[DwellProblem], bool] | None = None
    """Optional predicate: can the policy answer this problem within its deadline on this machine
    (e.g. a learned policy's training time estimate against ``options["deadline"]``)? ``None``
    means the policy makes no such promise; ``auto`` then does not choose it."""


_REGISTRY: dict[str, PolicyInfo] = {}


def register(
    name: str, summary: str, *, fits: Callable[[DwellProblem], bool] | None = None
) -> Callable[[DwellPolicy], DwellPolicy]:
    """Decorator that registers a policy under ``name`` with a one-line ``summary``.

    ``fits`` is the optional deadline predicate described in :attr:`PolicyInfo.fits`.
    """

    def wrap(func: DwellPolicy) -> DwellPolicy:
        _REGISTRY[name] = PolicyInfo(name=name, summary=summary, func=func, fits=fits)
        return func

    return wrap


def get_policy(name: str) -> PolicyInfo:
    """Look up a policy, with an error that lists the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown dwell policy {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        ) from None


def is_registered(name: str) -> bool:
    """Whether a policy of that name is registered (optional policies may be absent)."""
    return name in _REGISTRY


def list_policies() -> dict[str, str]:
    """Names of all registered policies with their one-line descriptions."""
    return {name: info.summary for name, info in sorted(_REGISTRY.items())}
