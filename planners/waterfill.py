"""Water-filling dwell allocation and an exact mean fixer.

The pooled rate estimate of pixel i after two passes, ``(X0_i + X1_i) / (t0_i + t_i)``, has variance
``ψ_i / (t0_i + t_i)`` (ψ in counts/s, times in seconds). Minimising ``Σ_i score_i / (t0_i + t_i)``
over additional dwells ``t_i ∈ [min_dwell, max_dwell]`` with ``mean(t) = mean_dwell`` is a separable
convex problem; its KKT conditions give, with one Lagrange multiplier ``1/c²``::

    t_i = clip(c · sqrt(score_i) − t0_i, min_dwell, max_dwell)

i.e. ``t0_i + t_i = max(t0_i + min_dwell, c · sqrt(score_i))`` capped at ``t0_i + max_dwell``.
The total ``Σ_i t_i(c)`` is a non-decreasing piecewise-linear function of the water level ``c``;
:func:`solve_level` finds the level exactly by sorting its breakpoints, and :func:`_fix_rounding`
removes the last floating-point residue so that the mean equals the target to ~1e-15 relative.
"""

from __future__ import annotations

import numpy as np

_REL_TOL = 1e-12
"""Relative mismatch of the mean below which a map is accepted as exact."""


def check_bounds(mean_dwell: float, min_dwell: float, max_dwell: float) -> None:
    """Raise ``ValueError`` unless ``0 ≤ min_dwell ≤ mean_dwell ≤ max_dwell`` (seconds)."""
    for name, value in (("mean_dwell", mean_dwell), ("min_dwell", min_dwell)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and ≥ 0 s, got {value!r}")
    if np.isnan(max_dwell):
        raise ValueError("max_dwell must not be NaN")
    if min_dwell > mean_dwell:
        raise ValueError(
            f"infeasible bounds: min_dwell = {min_dwell} s exceeds mean_dwell = {mean_dwell} s"
        )
    if max_dwell < mean_dwell:
        raise ValueError(
            f"infeasible bounds: max_dwell = {max_dwell} s is below mean_dwell = {mean_dwell} s"
        )


def solve_level(
    slope: np.ndarray,
    offset: np.ndarray,
    mean_dwell: float,
    min_dwell: float = 0.0,
    max_dwell: float = np.inf,
) -> np.ndarray:
    """Exact solution of ``mean(clip(c·slope − offset, min_dwell, max_dwell)) = mean_dwell``.

    ``slope ≥ 0`` (s⁻¹ · level units) and ``offset`` (seconds) are arrays of one shape; returns the
    clipped map (seconds, float64, same shape). Pixels with ``slope == 0`` carry no weight in the
    objective; they stay at ``min_dwell`` unless every weighted pixel is saturated at ``max_dwell``,
    in which case they share the remaining time equally. With no weighted pixel at all the map is
    uniform. Requires ``0 ≤ min_dwell ≤ mean_dwell ≤ max_dwell``.
    """
    check_bounds(mean_dwell, min_dwell, max_dwell)
    slope = np.asarray(slope, dtype=np.float64)
    offset = np.broadcast_to(np.asarray(offset, dtype=np.float64), slope.shape)
    if np.any(slope < 0) or not np.all(np.isfinite(slope)):
        raise ValueError("slope must be finite and ≥ 0")
    if not np.all(np.isfinite(offset)):
        raise ValueError("offset must be finite")
    lo, hi, n = float(min_dwell), float(max_dwell), slope.size
    out = np.full(slope.shape, lo)
    if n == 0:
        return out
    if mean_dwell in (lo, hi):  # the bounds leave one feasible map
        out[...] = mean_dwell
        return out

    active = slope > 0
    n_active = int(np.count_nonzero(active))
    need = n * (mean_dwell - lo)  # time above min_dwell that the active pixels must take
    room = n_active * (hi - lo) if n_active else 0.0  # the most they can take (inf if unbounded)
    if room <= need:
        # Every weighted pixel saturates: the rest goes evenly to the weightless pixels.
        out[active] = hi
        if n_active < n:
            out[~active] = min(hi, lo + (need - room) / (n - n_active))
        return _fix_rounding(out, mean_dwell, lo, hi)

    s = slope[active]
    o = offset[active]
    level = _level(s, (lo + o) / s, (hi + o) / s, hi - lo, need)
    out[active] = np.clip(level * s - o, lo, hi)
    return _fix_rounding(out, mean_dwell, lo, hi)


def _level(s: np.ndarray, a: np.ndarray, b: np.ndarray, width: float, need: float) -> float:
    """Level c with ``Σ_i s_i · clip(c − a_i, 0, b_i − a_i) = need`` (``s_i·(b_i − a_i) = width``).

    Quickselect on the breakpoints: a bracket ``[L, U]`` shrinks around the solution; pixels whose
    breakpoints both lie outside it are folded into a constant (saturated) or linear (rising) part,
    so the work is O(n) expected; the last few thousand breakpoints are sorted and the piecewise
    linear total is inverted exactly.
    """
    lower, upper = -np.inf, np.inf
    const, s_lin, sa_lin = 0.0, 0.0, 0.0  # total = const + s_lin·c − sa_lin + (work set's part)
    rng = np.random.default_rng(0)
    while a.size > 2048:
        idx = rng.integers(0, a.size, 255)
        cand = np.concatenate((a[idx], b[idx]))
        cand = cand[(cand > lower) & (cand < upper)]
        if cand.size == 0:
            break
        pivot = float(np.median(cand))
        total = const + s_lin * pivot - sa_lin + float(np.sum(s * np.clip(pivot - a, 0.0, b - a)))
        if total <= need:
            lower = pivot
        else:
            upper = pivot
        sat = b <= lower
        lin = (a <= lower) & (b >= upper)
        keep = ~(sat | lin | (a >= upper))
        if np.isfinite(width):
            const += width * int(np.count_nonzero(sat))
        s_lin += float(np.sum(s[lin]))
        sa_lin += float(np.sum(s[lin] * a[lin]))
        s, a, b = s[keep], a[keep], b[keep]

    finite_b = np.isfinite(b)
    e = np.concatenate((a, b[finite_b]))
    d = np.concatenate((s, -s[finite_b]))
    order = np.argsort(e, kind="stable")
    e, d = e[order], d[order]
    rate_after = s_lin + np.cumsum(d)  # slope of the total on [e_k, e_{k+1})
    work_at = np.concatenate(([0.0], np.cumsum((rate_after[:-1] - s_lin) * np.diff(e))))
    total_at = const + s_lin * e - sa_lin + work_at
    k = int(np.searchsorted(total_at, need, side="right")) - 1
    if k < 0:  # below the first breakpoint of the work set only the linear part rises
        if s_lin > 0:
            return (need - const + sa_lin) / s_lin
        return float(e[0]) if e.size else (lower if np.isfinite(lower) else upper)
    rate = rate_after[k]
    return float(e[k] + (need - total_at[k]) / rate) if rate > 0 else float(e[k])


def _fix_rounding(t: np.ndarray, mean_dwell: float, lo: float, hi: float) -> np.ndarray:
    """Spread the residue ``n·mean_dwell − Σt`` over pixels that have room, within the bounds."""
    n = t.size
    for _ in range(8):
        resid = n * mean_dwell - float(np.sum(t))
        if abs(resid) <= _REL_TOL * max(n * mean_dwell, np.finfo(float).tiny):
            break
        movable = t < hi if resid > 0 else t > lo
        n_mov = int(np.count_nonzero(movable))
        if n_mov == 0:
            break
        t[movable] = np.clip(t[movable] + resid / n_mov, lo, hi)
    return t


def waterfill_sqrt(
    score: np.ndarray,
    t0: float | np.ndarray,
    mean_dwell: float,
    min_dwell: float = 0.0,
    max_dwell: float = np.inf,
) -> np.ndarray:
    """Additional dwell (seconds) minimising ``Σ score_i / (t0_i + t_i)`` with mean ``mean_dwell``.

    ``score`` (e.g. a rate in counts/s, or ``Σ_c w_c ψ_c``) is ≥ 0 per pixel; ``t0`` the live time
    (seconds) already spent, scalar or of ``score``'s shape. Returns
    ``t_i = clip(c·sqrt(score_i) − t0_i, min_dwell, max_dwell)`` with ``c`` chosen so the mean is
    exactly ``mean_dwell``; ``score == 0`` everywhere gives a uniform map.
    """
    score = np.asarray(score, dtype=np.float64)
    if not np.all(np.isfinite(score)) or np.any(score < 0):
        raise ValueError("score must be finite and ≥ 0 everywhere")
    t0 = np.broadcast_to(np.asarray(t0, dtype=np.float64), score.shape)
    if not np.all(np.isfinite(t0)) or np.any(t0 < 0):
        raise ValueError("t0 must be finite and ≥ 0 s everywhere")
    return solve_level(np.sqrt(score), t0, mean_dwell, min_dwell, max_dwell)


def fit_mean(
    dwell: np.ndarray, mean_dwell: float, min_dwell: float = 0.0, max_dwell: float = np.inf
) -> np.ndarray:
    """Make a proposed dwell map (seconds) satisfy the mean and the bounds exactly.

    A map already inside the bounds with the right mean (to 1e-12 relative) is returned unchanged
    (as a float64 copy); otherwise it is rescaled, ``clip(k·dwell, min_dwell, max_dwell)`` with the
    factor ``k`` solved exactly, which keeps the ratios between unsaturated pixels.
    """
    t = np.array(dwell, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("dwell map must be finite and ≥ 0 s")
    check_bounds(mean_dwell, min_dwell, max_dwell)
    if t.size == 0:
        return t
    in_bounds = t.min() >= min_dwell and t.max() <= max_dwell
    if in_bounds and abs(t.mean() - mean_dwell) <= _REL_TOL * max(mean_dwell, 1e-300):
        return t
    return solve_level(t, 0.0, mean_dwell, min_dwell, max_dwell)
