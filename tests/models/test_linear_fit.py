"""The linear-fit baseline: exact non-negative fits, known rates recovered, overlaps separated."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from dwellwise.models import registry
from dwellwise.models.linear_fit import (
    PAPER_002_TARGETS,
    LinearFit,
    detect_families,
    library_families,
    overlaps,
)
from dwellwise.models.predictor import SpectrumPredictor
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.spectra import SpectrumModel
from scipy.optimize import nnls

ELEMENTS = ("Ca_K", "Cr_K", "Fe_K", "Cu_K", "Zn_K", "As_K", "Hg_L", "Pb_L", "Pb_M", "S_K")
SCATTER = (3000.0, 1500.0, 2000.0)
"""Rayleigh, Compton, continuum rates, counts/s."""


def _rates(n: int, rng: np.random.Generator, present: float = 0.6) -> np.ndarray:
    """``(C, n)`` element rates, counts/s: each element absent in ~40 % of the pixels."""
    rates = rng.uniform(200.0, 5000.0, size=(len(ELEMENTS), n))
    rates *= rng.random((len(ELEMENTS), n)) < present
    return rates


def _expected(model: SpectrumModel, rates: np.ndarray, live: float) -> np.ndarray:
    """Noiseless spectra ``(n, E)``, counts."""
    return model.expected_spectra(model.component_rates(rates, SCATTER)) * live


@pytest.fixture(scope="module")
def model() -> SpectrumModel:
    return SpectrumModel(ELEMENTS)


@pytest.fixture(scope="module")
def fit() -> LinearFit:
    return LinearFit(elements=ELEMENTS, device="cpu")


def test_is_a_spectrum_predictor(fit):
    assert isinstance(fit, SpectrumPredictor)
    assert fit.kind == "maps" and fit.label == "linear fit"
    assert fit.names == ELEMENTS and fit.axis == EnergyAxis()


def test_recovers_rates_from_noiseless_spectra(fit, model):
    rng = np.random.default_rng(1)
    rates = _rates(300, rng)
    live = rng.uniform(0.5, 2.0, 300)
    spectra = model.expected_spectra(model.component_rates(rates, SCATTER)) * live[:, None]
    got = fit.predict(spectra.astype(np.float32), live)
    assert got.dtype == np.float32 and got.shape == (300, len(ELEMENTS))
    np.testing.assert_allclose(got, rates.T, rtol=2e-3, atol=2.0)


def test_recovers_rates_from_poisson_spectra(fit, model):
    rng = np.random.default_rng(2)
    rates = _rates(2000, rng)
    counts = rng.poisson(_expected(model, rates, 0.5)).astype(np.uint32)
    got = fit.predict(counts, np.full(2000, 0.5))
    assert np.all(got >= 0)
    for c, name in enumerate(ELEMENTS):
        truth = rates[c]
        r = np.corrcoef(got[:, c], truth)[0, 1]
        slope = np.dot(got[:, c], truth) / np.dot(truth, truth)
        floor = 0.90 if name in ("S_K", "Pb_M") else 0.99  # S K sits under Pb M
        assert r > floor, (name, r)
        assert abs(slope - 1) < (0.1 if name in ("S_K", "Pb_M") else 0.02), (name, slope)


def test_is_the_exact_non_negative_least_squares_solution(model):
    """Without background and weights the problem is plain NNLS: compare with scipy."""
    fit = LinearFit(elements=ELEMENTS, device="cpu", background_terms=0)
    rng = np.random.default_rng(3)
    rates = _rates(40, rng, present=0.3)
    counts = rng.poisson(_expected(model, rates, 0.05)).astype(np.float64)
    got = fit.fit_counts(counts).numpy()
    window = (fit.axis.centers >= fit.window_kev[0]) & (fit.axis.centers <= fit.window_kev[1])
    scatter = model.basis[model.group_of_component < 0]
    design = np.vstack([model.element_basis, scatter])[:, window].T
    for i in range(counts.shape[0]):
        ref, _ = nnls(design, counts[i, window])
        cost = np.linalg.norm(design @ got[i] - counts[i, window])
        best = np.linalg.norm(design @ ref - counts[i, window])
        assert cost <= best * (1 + 1e-4) + 1e-3
        np.testing.assert_allclose(got[i], ref, rtol=5e-3, atol=0.05 * max(ref.max(), 1))


def test_outputs_are_never_negative_even_for_noise(fit):
    rng = np.random.default_rng(4)
    noise = rng.poisson(0.02, size=(500, 4096)).astype(np.uint32)
    noise[:50] = 0  # empty spectra
    got = fit.predict(noise, np.full(500, 0.01))
    assert np.all(got >= 0) and np.all(np.isfinite(got))
    assert np.all(got[:50] == 0)


def test_pixels_without_live_time_get_zero(fit, model):
    spectra = _expected(model, _rates(4, np.random.default_rng(5)), 1.0)
    got = fit.predict(spectra, np.array([1.0, 0.0, 1.0, -1.0]))
    assert np.all(got[[1, 3]] == 0) and got[0].sum() > 0


def test_arsenic_is_told_from_lead(fit, model):
    """As Kα sits on Pb Lα (10.54 keV); As Kβ (11.73) and Pb Lβ (12.61) tell them apart."""
    rng = np.random.default_rng(6)
    n = 1500
    rates = np.zeros((len(ELEMENTS), n))
    pb, as_ = ELEMENTS.index("Pb_L"), ELEMENTS.index("As_K")
    rates[pb] = rng.uniform(2000, 20000, n)
    rates[as_] = rng.uniform(0, 3000, n) * (rng.random(n) < 0.5)
    got = fit.predict(rng.poisson(_expected(model, rates, 0.2)), np.full(n, 0.2))
    assert np.corrcoef(got[:, as_], rates[as_])[0, 1] > 0.95
    assert np.corrcoef(got[:, pb], rates[pb])[0, 1] > 0.995
    lead_only = rates[as_] == 0
    # the lead signal does not leak into arsenic: on lead-only pixels As stays near zero
    assert got[lead_only, as_].mean() < 0.02 * rates[pb, lead_only].mean()


def test_sulfur_and_lead_m_are_separated_without_noise(fit, model):
    """S Kα (2.31 keV) under Pb Mα (2.35): nearly the same peak; exact data still separates."""
    rates = np.zeros((len(ELEMENTS), 3))
    s, pbm = ELEMENTS.index("S_K"), ELEMENTS.index("Pb_M")
    rates[s] = [500.0, 0.0, 500.0]
    rates[pbm] = [0.0, 800.0, 800.0]
    got = fit.predict(_expected(model, rates, 1.0), np.ones(3))
    np.testing.assert_allclose(got[:, [s, pbm]], rates[[s, pbm]].T, rtol=5e-3, atol=1.0)
    pairs = {(o.first, o.second) for o in overlaps(fit)}
    assert {("As_K", "Pb_L"), ("Pb_M", "S_K")} <= pairs and ("Ca_K", "Fe_K") not in pairs


def test_fits_spectra_on_another_calibration():
    """A fit built on the cube's own calibration needs no resampling."""
    axis = EnergyAxis(channels=2048, gain_kev=0.0125, offset_kev=0.2)
    model = SpectrumModel(ELEMENTS, axis=axis)
    fit = LinearFit(axis, ELEMENTS, device="cpu")
    rates = _rates(50, np.random.default_rng(8))
    got = fit.predict(_expected(model, rates, 1.0), np.ones(50))
    np.testing.assert_allclose(got, rates.T, rtol=2e-3, atol=2.0)


def test_subset_and_validation():
    fit = LinearFit(elements=("Fe_K", "Pb_L"), device="cpu")
    assert fit.subset(["Zn_K"]).names == ("Zn_K",)
    with pytest.raises(ValueError, match="unknown element"):
        LinearFit(elements=("Xx_K",), device="cpu")
    with pytest.raises(ValueError, match="unique"):
        LinearFit(elements=("Fe_K", "Fe_K"), device="cpu")
    with pytest.raises(ValueError, match="holds 0 channels"):
        LinearFit(EnergyAxis(channels=100, gain_kev=0.005), ("Fe_K",), device="cpu")
    with pytest.raises(ValueError, match="spectra must be"):
        fit.predict(np.zeros((2, 100)), np.ones(2))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            LinearFit(elements=("Fe_K",), device="cuda")


def test_default_families_cover_the_library_in_the_window():
    names = library_families()
    assert set(PAPER_002_TARGETS) <= set(names)
    assert {"Pb_M", "Hg_M", "Au_M", "Ba_L", "Sn_L", "W_L", "Ti_K", "As_K"} <= set(names)
    assert not {"Kr_K", "Rn_L", "Po_L"} & set(names)


def test_families_are_detected_in_a_sum_spectrum():
    present = ("Ca_K", "Fe_K", "Zn_K", "Hg_L", "Pb_L", "Pb_M")
    model = SpectrumModel(present)
    rates = np.array([400.0, 3000.0, 1500.0, 5000.0, 20000.0, 300.0])
    expected = model.expected_spectra(model.component_rates(rates, SCATTER)) * 4000 * 0.01
    summed = np.random.default_rng(7).poisson(expected).astype(float)
    found = detect_families(summed, model.axis)
    assert set(present) <= set(found)
    assert not {"As_K", "Bi_L", "Tl_L", "Se_K"} & set(found)  # Pb L / Hg L neighbours
    adapted = LinearFit.for_spectrum(summed, device="cpu")
    assert set(present) | set(PAPER_002_TARGETS) <= set(adapted.names)


def test_registry_names_and_fallbacks(monkeypatch):
    with pytest.raises(ValueError, match="valid names: maps, pigments, linear"):
        registry.load_predictor("elements")
    with pytest.raises(ValueError, match="valid names"):
        registry.check_model_names(["maps", "rgb"])
    monkeypatch.setitem(sys.modules, "dwellwise.models.element_nets", None)  # not installed
    monkeypatch.setitem(sys.modules, "dwellwise.models.pigment_net", None)
    maps = registry.load_predictor("maps", device="cpu")
    assert isinstance(maps, LinearFit)
    with pytest.raises(registry.MissingWeights, match="run dwellwise train pigments"):
        registry.load_predictor("pigments", device="cpu")

    def no_weights(path=None, device="auto"):
        raise FileNotFoundError("no weights")

    fake = types.SimpleNamespace(load_pigment_model=no_weights)
    monkeypatch.setitem(sys.modules, "dwellwise.models.pigment_net", fake)
    with pytest.raises(registry.MissingWeights):
        registry.load_predictor("pigments", device="cpu")
