"""Spectra an XRF scientist would accept: line positions, resolution, escape peaks."""

import numpy as np
import pytest
import xraylib
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.response import SI_KA_KEV, SDDResponse
from dwellwise.simulators.spectra import SpectrumModel, element_spectrum

AXIS = EnergyAxis()


def _peak_position(spectrum: np.ndarray, near_kev: float, axis: EnergyAxis = AXIS) -> float:
    """Centre of a Gaussian fitted (log-parabola) to the local maximum near an energy."""
    c = int(axis.channel_of(near_kev))
    lo, hi = c - 15, c + 16
    k = lo + int(np.argmax(spectrum[lo:hi]))
    y = np.log(spectrum[k - 1 : k + 2])
    offset = 0.5 * (y[0] - y[2]) / (y[0] - 2 * y[1] + y[2])
    return float(axis.centers[k] + offset * axis.gain_kev)


@pytest.mark.parametrize(
    ("label", "z", "line"),
    [
        ("Fe_K", 26, "KA_LINE"),
        ("Cu_K", 29, "KA_LINE"),
        ("Ca_K", 20, "KA_LINE"),
        ("Pb_L", 82, "LA_LINE"),
        ("Hg_L", 80, "LA_LINE"),
    ],
)
def test_main_line_lands_within_10_ev_of_tabulated(label, z, line):
    tabulated = xraylib.LineEnergy(z, getattr(xraylib, line))
    found = _peak_position(element_spectrum(label), tabulated)
    assert abs(found - tabulated) < 0.010


def test_fwhm_at_mn_ka_is_145_ev():
    fine = EnergyAxis(channels=2000, gain_kev=0.001, offset_kev=5.0)
    spectrum = SDDResponse(escape=False).peak(fine, 5.899)
    above = fine.centers[spectrum >= spectrum.max() / 2]
    fwhm_ev = (above[-1] - above[0] + fine.gain_kev) * 1000
    assert abs(fwhm_ev - 145.0) <= 2.0


def test_escape_peak_sits_1_74_kev_below_parent():
    response = SDDResponse()
    spectrum = response.peak(AXIS, 8.0)
    parent = _peak_position(spectrum, 8.0)
    escape = _peak_position(spectrum, 8.0 - SI_KA_KEV)
    assert abs((parent - escape) - 1.74) < 0.01
    assert 0 < response.escape_fraction(8.0) < 0.05


def test_unit_area_on_any_axis_and_resampling_consistent():
    coarse = EnergyAxis(channels=2048, gain_kev=0.02, offset_kev=0.0)
    fine = element_spectrum("Pb_L")
    assert fine.sum() == pytest.approx(1.0, abs=1e-6)
    assert element_spectrum("Pb_L", coarse).sum() == pytest.approx(1.0, abs=1e-6)


def test_expected_cube_is_linear_in_rates_and_roi_counts_its_window():
    model = SpectrumModel(["Fe_K", "Pb_L"])
    rates = np.zeros((2, 2, 3))
    rates[0, 0, 0] = 1000.0
    rates[1, 1, 2] = 500.0
    cube = model.expected_cube(rates)
    assert cube.shape == (2, 3, 4096)
    assert cube[0, 0].sum() == pytest.approx(1000.0, rel=1e-6)
    assert cube[1, 2].sum() == pytest.approx(500.0, rel=1e-3)
    assert cube[1, 1].sum() == 0.0
    roi = model.roi_rates(model.component_rates(rates))
    assert (
        roi[0, 0, 0]
        > 0.7 * 1000 * model.groups[0].lines[0].cross_section / model.groups[0].cross_section
    )
    assert roi[1, 0, 0] == 0.0


def test_unknown_or_unexcited_families_are_refused():
    with pytest.raises(ValueError, match="unknown element"):
        SpectrumModel(["Xx_K"])
    with pytest.raises(ValueError, match="Z"):
        SpectrumModel(["Sn_K"])


def test_low_energy_tails_and_step_move_counts_below_the_peak_and_keep_its_area():
    fine = EnergyAxis(channels=12000, gain_kev=0.001)
    plain = SDDResponse(escape=False).peak(fine, 5.899)
    tailed = SDDResponse(escape=False, short_tail=0.05, long_tail=0.02, step=0.005).peak(
        fine, 5.899
    )
    assert tailed.sum() == pytest.approx(1.0, abs=1e-6)
    assert fine.centers[np.argmax(tailed)] == pytest.approx(5.899, abs=0.002)
    sigma = SDDResponse().sigma_kev(5.899)
    below = fine.centers < 5.899 - 4 * sigma
    assert plain[below].sum() < 1e-4
    # long tail (decay 10 σ) 0.02·e^-0.4, short tail (1 σ) 0.05·e^-4, the step nearly all 0.005
    assert tailed[below].sum() == pytest.approx(0.02 * np.exp(-0.4) + 0.05 * np.exp(-4) + 0.005, rel=0.1)
    above = fine.centers > 5.899 + 4 * sigma
    assert tailed[above].sum() < 1e-4  # tails are on the low side only
    shelf = (fine.centers > 1.0) & (fine.centers < 3.0)  # the step's flat part, 0.005 / 5.9 keV
    assert tailed[shelf].sum() == pytest.approx(0.005 / 5.899 * 2.0, rel=0.3)


def test_tail_shares_that_leave_no_gaussian_are_refused():
    with pytest.raises(ValueError, match="tail and step shares"):
        SDDResponse(short_tail=0.7, long_tail=0.4).peak(AXIS, 6.4)
    with pytest.raises(ValueError, match="tail and step shares"):
        SDDResponse(step=-0.01).peak(AXIS, 6.4)
    with pytest.raises(ValueError, match="tail and step shares"):
        SDDResponse(short_tail=-0.1, long_tail=0.1).peak(AXIS, 6.4)  # sums to a pure Gaussian
