"""Resampling spectra between energy calibrations keeps counts and peak positions."""

from __future__ import annotations

import numpy as np
import pytest
from dwellwise.models.calibration import axis_of, resample_counts, resampling_matrix
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.spectra import element_spectrum

DEFAULT = EnergyAxis()
OTHERS = [
    EnergyAxis(channels=2048, gain_kev=0.020, offset_kev=0.0),
    EnergyAxis(channels=5000, gain_kev=0.0073, offset_kev=-0.05),
    EnergyAxis(channels=3000, gain_kev=0.0131, offset_kev=0.37),
]
PEAKS_KEV = {"Fe_K": 6.404, "Pb_L": 10.55, "Sr_K": 14.165}
"""Strongest line of each family (Fe Kα1, Pb Lα1, Sr Kα1), keV."""


def _spectrum(axis: EnergyAxis) -> np.ndarray:
    """A few well separated families, 10^5 counts each."""
    return sum(1e5 * element_spectrum(label, axis) for label in PEAKS_KEV)


def _centroid(spectrum: np.ndarray, axis: EnergyAxis, center_kev: float) -> float:
    """Centroid (keV) of the counts within ±80 eV of ``center_kev``."""
    e = axis.centers
    near = np.abs(e - center_kev) < 0.08
    return float(np.dot(spectrum[near], e[near]) / spectrum[near].sum())


def _inside(axis: EnergyAxis, lo_kev: float, hi_kev: float) -> np.ndarray:
    """Channels entirely inside [lo, hi] keV."""
    return (axis.edges[:-1] >= lo_kev) & (axis.edges[1:] <= hi_kev)


@pytest.mark.parametrize("target", OTHERS, ids=lambda a: f"{a.channels}x{a.gain_kev * 1e3:g}eV")
def test_counts_in_the_common_range_are_conserved(target):
    source = _spectrum(DEFAULT)
    moved = resample_counts(source[None], DEFAULT, target)[0]
    assert moved.dtype == np.float32 and moved.shape == (target.channels,)
    assert np.all(moved >= 0)
    # every count of the spectrum lies inside both axes: all of them arrive
    assert moved.sum() == pytest.approx(source.sum(), rel=1e-5)
    # and each energy band keeps its own (band edges fall where the spectrum is flat)
    for lo, hi in [(1.0, 4.0), (4.0, 8.0), (8.0, 13.5), (13.5, 20.0)]:
        before = source[_inside(DEFAULT, lo, hi)].sum()
        after = moved[_inside(target, lo, hi)].sum()
        assert after == pytest.approx(before, rel=2e-3, abs=0.5), (lo, hi)


@pytest.mark.parametrize("target", OTHERS, ids=lambda a: f"{a.channels}x{a.gain_kev * 1e3:g}eV")
def test_peak_positions_survive_resampling(target):
    source = _spectrum(DEFAULT)
    moved = resample_counts(source, DEFAULT, target)
    for label, line_kev in PEAKS_KEV.items():
        before = _centroid(source, DEFAULT, line_kev)
        after = _centroid(moved, target, line_kev)
        assert abs(after - before) < target.gain_kev, (label, before, after)
        # the same peak drawn directly on the target calibration sits at the same place
        direct = _centroid(1e5 * element_spectrum(label, target), target, line_kev)
        assert abs(after - direct) < target.gain_kev, (label, after, direct)


def test_round_trip_through_a_finer_axis_is_lossless():
    fine = EnergyAxis(channels=8192, gain_kev=0.005, offset_kev=-0.0025)
    source = _spectrum(DEFAULT)
    there = resample_counts(source, DEFAULT, fine)
    back = resample_counts(there, fine, DEFAULT)
    np.testing.assert_allclose(back, source, rtol=1e-4, atol=1e-2)


def test_identical_calibrations_pass_through_as_float32():
    counts = np.arange(2 * DEFAULT.channels, dtype=np.uint32).reshape(2, -1)
    out = resample_counts(counts, DEFAULT, EnergyAxis())
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, counts.astype(np.float32))


def test_matrix_rows_are_fractions_of_source_channels():
    m = resampling_matrix(DEFAULT, OTHERS[2])
    sums = m.sum(axis=1)
    assert np.all(sums <= 1 + 1e-12) and np.all(m >= 0)
    # channels below the target's first edge (0.37 keV - half a channel) go nowhere
    below = DEFAULT.edges[1:] <= OTHERS[2].edges[0]
    assert np.all(sums[below] == 0)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="4095 channels, the calibration has 4096"):
        resample_counts(np.zeros((3, 4095)), DEFAULT, OTHERS[0])


@pytest.mark.parametrize(
    ("energy", "message"),
    [
        (np.zeros((4, 4)), "no usable energy axis"),
        (np.array([1.0]), "no usable energy axis"),
        (np.array([0.0, 0.01, np.nan, 0.03]), "no usable energy axis"),
        (np.array([0.03, 0.02, 0.01, 0.0]), "must increase"),
        (np.array([0.0, 0.01, 0.01, 0.02]), "must increase"),
        (np.array([0.0, 0.01, 0.03, 0.07]), "not linear"),
    ],
)
def test_bad_energy_axes_get_a_clear_error(energy, message):
    with pytest.raises(ValueError, match=message):
        axis_of(energy)


def test_axis_of_recovers_the_calibration():
    axis = axis_of(OTHERS[1].centers)
    assert axis.channels == 5000
    assert axis.gain_kev == pytest.approx(0.0073)
    assert axis.offset_kev == pytest.approx(-0.05)
