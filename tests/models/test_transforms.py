"""Anscombe transform and its inverses."""

import numpy as np
import pytest
from dwellwise.models.transforms import (
    anscombe,
    inverse_anscombe_algebraic,
    inverse_anscombe_unbiased,
)
from scipy import stats


def expected_anscombe_exact(lam: float) -> float:
    """E[2 sqrt(X + 3/8)] for X ~ Poisson(lam), summed over the pmf (no Monte Carlo)."""
    k = np.arange(0, int(lam + 40 * np.sqrt(lam) + 60))
    return float(np.sum(stats.poisson.pmf(k, lam) * 2.0 * np.sqrt(k + 0.375)))


LAMBDAS = np.geomspace(0.05, 50.0, 40)


def test_anscombe_values():
    np.testing.assert_allclose(anscombe([0.0, 1.0, 10.0]), 2 * np.sqrt([0.375, 1.375, 10.375]))


def test_algebraic_inverse_round_trips():
    x = np.array([0.0, 0.5, 3.0, 1e4])
    np.testing.assert_allclose(inverse_anscombe_algebraic(anscombe(x)), x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lam", LAMBDAS)
def test_makitalo_foi_inverse_is_unbiased_within_one_percent(lam):
    # The exact unbiased inverse maps E[Ans(X) | lam] back to lam.
    assert inverse_anscombe_unbiased(expected_anscombe_exact(lam)) == pytest.approx(lam, rel=0.01)


def test_algebraic_inverse_is_biased_where_makitalo_foi_is_not():
    errors = [
        abs(inverse_anscombe_algebraic(expected_anscombe_exact(lam)) / lam - 1) for lam in LAMBDAS
    ]
    assert max(errors) > 0.2  # the plain inverse is ~30 % low at 0.05 counts
    large = inverse_anscombe_algebraic(expected_anscombe_exact(50.0))
    assert large == pytest.approx(49.75, abs=0.01)  # and 1/4 count low at large counts


def test_unbiased_inverse_is_zero_at_zero_counts_and_increasing():
    d = np.linspace(0.0, 30.0, 3001)
    out = inverse_anscombe_unbiased(d)
    assert float(inverse_anscombe_unbiased(anscombe(0.0))) == pytest.approx(0.0, abs=1e-12)
    assert np.all(out[d <= np.sqrt(1.5)] == 0.0)
    assert np.all(np.diff(out) >= 0)


def test_torch_tensors_are_supported():
    torch = pytest.importorskip("torch")
    x = torch.tensor([0.0, 2.0, 9.0], dtype=torch.float64)
    d = anscombe(x)
    assert isinstance(d, torch.Tensor)
    np.testing.assert_allclose(
        inverse_anscombe_unbiased(d).numpy(), inverse_anscombe_unbiased(d.numpy()), rtol=1e-12
    )
