"""The public entry point: :func:`allocate_dwell` turns first-pass counts into a dwell map."""

from __future__ import annotations

from typing import Any

import numpy as np
from dwellwise.planners.policies import DwellProblem, get_policy
from dwellwise.planners.waterfill import check_bounds, fit_mean
from dwellwise.planners.weights import default_weights
from numpy.typing import ArrayLike

_MEAN_RTOL = 1e-9


def allocate_dwell(
    first_counts: ArrayLike,
    t0: float | ArrayLike,
    mean_dwell: float,
    *,
    policy: str = "auto",
    weights: ArrayLike | None = None,
    min_dwell: float = 0.0,
    max_dwell: float | None = None,
    seed: int | None = None,
    **options: Any,
) -> np.ndarray:
    """Additional dwell per pixel (seconds) for the next pass.

    ``first_counts``: ``(C, H, W)`` or ``(H, W)`` counts (≥ 0) from passes of live time ``t0``
    seconds (> 0, scalar or ``(H, W)``). Returns ``(H, W)`` float64 seconds with mean
    ``mean_dwell`` (to 1e-9 relative) and every value in ``[min_dwell, max_dwell]``.
    ``weights`` ``(C,)`` weigh the elements sharing the dwell (default: equal relative error,
    :mod:`dwellwise.planners.weights`). Extra keyword ``options`` go to the policy (e.g.
    ``rates=`` for ``oracle``, ``deadline=`` seconds for learned policies). Raises ``ValueError``
    on invalid input or infeasible bounds.
    """
    counts = _counts(first_counts)
    shape = counts.shape[1:]
    t0_map = _t0(t0, shape)
    hi = np.inf if max_dwell is None else float(max_dwell)
    check_bounds(float(mean_dwell), float(min_dwell), hi)
    w = default_weights(counts, t0_map) if weights is None else _weights(weights, counts.shape[0])
    info = get_policy(policy)
    problem = DwellProblem(
        counts=counts,
        t0=t0_map,
        mean_dwell=float(mean_dwell),
        weights=w,
        min_dwell=float(min_dwell),
        max_dwell=hi,
        seed=seed,
        options=dict(options),
    )
    dwell = np.asarray(info.func(problem), dtype=np.float64)
    if dwell.shape != shape:
        raise RuntimeError(f"policy {policy!r} returned shape {dwell.shape}, expected {shape}")
    dwell = fit_mean(dwell, problem.mean_dwell, problem.min_dwell, problem.max_dwell)
    _check_result(dwell, problem)
    return dwell


def _counts(first_counts: ArrayLike) -> np.ndarray:
    raw = np.asarray(first_counts)
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"first_counts must be numeric, got dtype {raw.dtype}")
    counts = raw.astype(np.float64)
    if counts.ndim == 2:
        counts = counts[None]
    if counts.ndim != 3:
        raise ValueError(f"first_counts must be (C, H, W) or (H, W), got shape {raw.shape}")
    if min(counts.shape) == 0:
        raise ValueError(f"first_counts must not be empty, got shape {raw.shape}")
    if not np.all(np.isfinite(counts)):
        bad = np.count_nonzero(~np.isfinite(counts))
        raise ValueError(f"first_counts has {bad} NaN/inf values")
    if counts.min() < 0:
        raise ValueError(f"first_counts must be ≥ 0, found {counts.min()}")
    return counts


def _t0(t0: float | ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(t0, dtype=np.float64)
    if arr.ndim != 0 and arr.shape != shape:
        raise ValueError(f"t0 must be a scalar or of shape {shape} (H, W), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() <= 0:
        raise ValueError(f"t0 must be finite and > 0 s, found minimum {arr.min()}")
    return np.array(np.broadcast_to(arr, shape))


def _weights(weights: ArrayLike, n_channels: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != n_channels:
        raise ValueError(f"weights has {w.size} entries but first_counts has {n_channels} channels")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, ≥ 0 and not all 0, got {w.tolist()}")
    return w


def _check_result(dwell: np.ndarray, problem: DwellProblem) -> None:
    T = problem.mean_dwell
    mean = float(dwell.mean())
    if abs(mean - T) > _MEAN_RTOL * T or dwell.min() < problem.min_dwell or (
        dwell.max() > problem.max_dwell
    ):
        raise RuntimeError(
            f"dwell map violates its contract: mean {mean} s (want {T} s), range "
            f"[{dwell.min()}, {dwell.max()}] s (bounds [{problem.min_dwell}, {problem.max_dwell}])"
        )
