"""Variance-stabilising transforms for Poisson counts: Anscombe and its inverses.

All functions take counts (not rates: the Anscombe transform stabilises the variance of a Poisson
*count*, so a rate must be multiplied by its live time first) as a numpy array, a scalar or a torch
tensor, and return the same kind (numpy input gives float64).

* ``anscombe(x) = 2 sqrt(x + 3/8)``: for ``X ~ Poisson(λ)`` the variance of ``anscombe(X)`` tends to
  1 as λ grows.
* ``inverse_anscombe_algebraic(d) = (d/2)^2 - 3/8``: the plain inverse of the formula. Applied to
  ``E[anscombe(X)]`` it is biased low (by about 1/8 count at large λ, far more at small λ).
* ``inverse_anscombe_unbiased(d)``: the closed-form approximation of Makitalo and Foi (IEEE TIP 20,
  2011) of the *exact unbiased inverse*, the function ``I`` with ``I(E[anscombe(X) | λ]) = λ``::

      I(D) = D²/4 + sqrt(3/2)/(4D) − 11/(8D²) + 5 sqrt(3/2)/(8D³) − 1/8

  It is exactly 0 at ``D = sqrt(3/2) = anscombe(0)`` and increases for larger D; below that point
  the polynomial in 1/D turns up again, so values there are mapped to 0. Its relative error is
  below 1 % for λ ≥ 0.05 counts. It inverts an *expectation*: a denoiser that estimates
  ``E[anscombe(X)]`` (e.g. a local mean of transformed counts) should be followed by this inverse.
  Applied to a single noisy ``anscombe(X)`` it is not unbiased (``E[I(anscombe(X))] ≠ λ``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SQRT_3_2 = float(np.sqrt(1.5))
"""``anscombe(0) = 2 sqrt(3/8) = sqrt(3/2)``: the smallest value the transform of counts takes."""


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _as_float(x: Any) -> Any:
    return x if _is_tensor(x) else np.asarray(x, dtype=np.float64)


def anscombe(counts: Any) -> Any:
    """Anscombe transform ``2 sqrt(x + 3/8)`` of counts (≥ 0); returns dimensionless values."""
    x = _as_float(counts)
    return 2.0 * (x + 0.375) ** 0.5


def inverse_anscombe_algebraic(d: Any) -> Any:
    """Algebraic inverse ``(d/2)^2 - 3/8`` of :func:`anscombe`, clipped at 0 counts."""
    d = _as_float(d)
    return (0.25 * d * d - 0.375).clip(min=0.0)


def inverse_anscombe_unbiased(d: Any) -> Any:
    """Makitalo-Foi closed-form unbiased inverse of :func:`anscombe`, in counts (≥ 0).

    ``d`` is an estimate of ``E[anscombe(X)]``; values below ``sqrt(3/2)`` (which no expectation of
    transformed counts can take) give 0.
    """
    d = _as_float(d)
    dc = d.clip(min=_SQRT_3_2)
    inv = 1.0 / dc
    out = (
        0.25 * dc * dc
        + (0.25 * _SQRT_3_2) * inv
        - 1.375 * inv * inv
        + (0.625 * _SQRT_3_2) * inv * inv * inv
        - 0.125
    )
    # Exactly 0 at dc = sqrt(3/2) analytically; clip the rounding residue.
    return out.clip(min=0.0)
