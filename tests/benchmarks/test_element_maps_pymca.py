"""bench element-maps-pymca: held-out scenes recorded with PyMca's peaks keep their truth."""

from __future__ import annotations

import numpy as np
import pytest
from dwellwise.models.map_data import heldout_scenes, painting_scene, record_on_model
from dwellwise.simulators.energy import EnergyAxis


def test_held_out_scenes_are_recorded_by_the_physics_given():
    calls = []

    def record(model, rates, shape, live_time_s, names, rng):
        calls.append(model.axis)
        return record_on_model(model, rates, shape, live_time_s, names, rng)

    scenes = list(heldout_scenes((8, 8), images=("astronaut",), n_mixtures=2, record=record))
    assert len(calls) == len(scenes) == 3
    assert calls[-1] != EnergyAxis()  # the last mixture is on the odd calibration


def fwhm_ev(shape: np.ndarray, axis: EnergyAxis) -> float:
    top = int(np.argmax(shape))
    above = np.flatnonzero(shape > shape[top] / 2)
    above = above[np.abs(above - top) < 300]
    return float(axis.centers[above[-1]] - axis.centers[above[0]]) * 1000


def test_pymca_shapes_have_unit_area_our_resolution_and_pymca_tails():
    pytest.importorskip("PyMca5")
    from dwellwise.benchmarks.pymca_physics import pymca_shapes
    from dwellwise.simulators.spectra import SpectrumModel

    fine = EnergyAxis(channels=8192, gain_kev=0.001)
    shapes = pymca_shapes(fine, ("Mn_K", "Pb_L"))
    assert set(shapes.families) == {"Mn_K", "Pb_L"}
    for shape in (*shapes.families.values(), shapes.rayleigh, shapes.compton):
        assert shape.sum() == pytest.approx(1.0) and shape.min() >= 0
    assert fwhm_ev(shapes.families["Mn_K"], fine) == pytest.approx(145, abs=2)
    assert fine.centers[np.argmax(shapes.families["Mn_K"])] == pytest.approx(5.899, abs=0.01)
    # the low-energy tail and step: more counts 0.3-0.6 keV below Mn Kα than our Gaussian has
    ours = SpectrumModel(("Mn_K",), axis=fine).element_basis[0]
    below = (fine.centers > 5.3) & (fine.centers < 5.6)
    assert shapes.families["Mn_K"][below].sum() > 3 * ours[below].sum()


def test_a_scene_recorded_with_pymca_peaks_keeps_its_rates_and_truth():
    pytest.importorskip("PyMca5")
    from dwellwise.benchmarks.pymca_physics import PymcaRecorder

    recorder = PymcaRecorder()
    ours = painting_scene("astronaut", 11, (16, 16))
    theirs = painting_scene("astronaut", 11, (16, 16), record=recorder)
    assert not recorder.fallbacks
    np.testing.assert_allclose(theirs.expected, ours.expected)  # the same scene
    assert theirs.counts.shape == ours.counts.shape and theirs.counts.dtype == np.uint32
    assert theirs.counts.sum() == pytest.approx(ours.counts.sum(), rel=0.02)
    assert not np.array_equal(theirs.counts.sum(axis=0), ours.counts.sum(axis=0))
    k = theirs.names.index("Pb_L")  # detected photons scatter around the expected rate
    live = theirs.live_time[0]
    assert theirs.detected[k].sum() * live == pytest.approx(theirs.expected[k].sum() * live, rel=0.01)


def test_pigment_stacks_recorded_with_pymca_peaks_keep_their_photons():
    pytest.importorskip("PyMca5")
    from dwellwise.benchmarks.pigments_pymca import pymca_counts
    from dwellwise.benchmarks.pymca_physics import PymcaRecorder
    from dwellwise.models.pigment_data import HELDOUT_RECIPE, draw_layers, spectra_from_layers

    axis = EnergyAxis(channels=1024, gain_kev=0.02)
    rng = np.random.default_rng(2)
    layers = draw_layers(40, rng, HELDOUT_RECIPE)
    ours = spectra_from_layers(
        layers, rng=rng, recipe=HELDOUT_RECIPE, axis=axis, live_time_s=0.5, end_to_end=True
    )
    theirs = pymca_counts(layers, axis, PymcaRecorder(), 0.5, rng)
    assert theirs.shape == ours.counts.shape
    assert theirs.sum() == pytest.approx(ours.counts.sum(), rel=0.02)
    assert not np.allclose(theirs.sum(axis=0), ours.counts.sum(axis=0), rtol=0.05)


def test_resolution_table_has_a_column_per_detector_and_no_ceiling_row():
    from dwellwise.benchmarks.element_maps_pymca import resolution_table
    from dwellwise.models.element_nets import TARGETS
    from dwellwise.models.map_metrics import ElementSummary
    from dwellwise.models.map_training import PERFECT_COUNTING

    def summary(ssim):
        s = {n: ElementSummary(scenes=2, ssim=ssim, pearson=0.9, slope=1.0, z=(1, 0, 0, 0)) for n in TARGETS}
        return {"expected": s, "detected": s}

    figures = {
        fwhm: {"1DCNN+": summary(v), PERFECT_COUNTING: summary(1.0)}
        for fwhm, v in ((125.0, 0.8), (145.0, 0.9), (170.0, 0.7))
    }
    table = resolution_table(figures)
    assert table.splitlines()[0] == "| method | 125 eV | 145 eV | 170 eV |"
    assert "| 1DCNN+ | 0.800 | 0.900 | 0.700 |" in table and PERFECT_COUNTING not in table
