"""Data recipe of the elemental-map networks: every target appears, truth is consistent,
held-out scenes carry what they feature."""

from __future__ import annotations

import numpy as np
import pytest
from dwellwise.models.element_nets import MODEL_AXIS, OUTPUTS, TARGETS
from dwellwise.models.map_data import (
    EXTRA_PIGMENTS,
    CubeAdaptedFit,
    MixtureRecipe,
    PixelSimulator,
    carrier_check,
    mixture_scene,
    palette,
    predict_scene,
    training_streams,
)
from dwellwise.simulators.detector_spread import NOMINAL_DETECTOR, DetectorSpread
from dwellwise.simulators.pigments import pigment_database


def test_every_target_has_a_carrier_and_the_database_is_untouched() -> None:
    assert all(n > 0 for n in carrier_check().values())
    db = pigment_database()
    assert not any(p.key in db for p in EXTRA_PIGMENTS)
    assert len(palette()) == len(db) + len(EXTRA_PIGMENTS)


def test_training_pixels_show_every_target_from_traces_to_hundreds_of_counts() -> None:
    sim = PixelSimulator()
    data = sim.simulate(6000, np.random.default_rng(0))
    assert data.counts.shape == (6000, MODEL_AXIS.channels)
    assert data.detected.shape == data.expected.shape == (6000, len(OUTPUTS))
    assert np.all((data.live_time >= 0.005) & (data.live_time <= 0.100))
    expected_counts = data.expected * data.live_time[:, None]
    for i, name in enumerate(TARGETS):
        present = expected_counts[:, i] >= 1
        assert present.sum() >= 20, name
        weak = (expected_counts[:, i] > 0) & (expected_counts[:, i] < 1)
        assert weak.sum() >= 20, name
    strong = {n: expected_counts[:, i].max() for i, n in enumerate(TARGETS)}
    for name in ("Ca_K", "Cr_K", "Mn_K", "Fe_K", "Cu_K", "Zn_K", "Sr_K", "Au_L", "Hg_L", "Pb_L"):
        assert strong[name] > 100, name


def test_detected_truth_is_the_poisson_draw_of_the_expected_rate() -> None:
    sim = PixelSimulator()
    data = sim.simulate(4000, np.random.default_rng(1))
    det = (data.detected * data.live_time[:, None]).sum(axis=0)
    exp = (data.expected * data.live_time[:, None]).sum(axis=0)
    for i in range(len(OUTPUTS)):
        if exp[i] > 100:
            assert abs(det[i] - exp[i]) < 5 * np.sqrt(exp[i]), OUTPUTS[i]
    counts_per_pixel = data.detected * data.live_time[:, None]
    np.testing.assert_allclose(counts_per_pixel, np.round(counts_per_pixel), atol=1e-3)
    # every recorded photon of the families lies in the spectrum (plus scatter and others)
    assert np.all(data.counts.sum(axis=1) + 1 >= counts_per_pixel.sum(axis=1) * 0.95)


def test_each_block_of_training_pixels_has_its_own_detector() -> None:
    spread = DetectorSpread(block_pixels=500)
    responses = [spread.draw(np.random.default_rng(i)) for i in range(20)]
    fwhm = [r.fwhm_mn_ka_ev for r in responses]
    assert min(fwhm) >= 135 and max(fwhm) <= 160 and np.ptp(fwhm) > 10
    assert max(r.short_tail for r in responses) > 0.04 and max(r.step for r in responses) > 0.005
    # the same pixels on the nominal detector and on spread ones: same truth, other spectra
    nominal = PixelSimulator(MixtureRecipe(detector=NOMINAL_DETECTOR))
    spread_sim = PixelSimulator(MixtureRecipe(detector=spread))
    a = nominal.simulate(1000, np.random.default_rng(4))
    b = spread_sim.simulate(1000, np.random.default_rng(4))
    assert a.counts.shape == b.counts.shape
    assert not np.array_equal(a.counts, b.counts)
    ratio = b.counts.sum() / a.counts.sum()  # line ratios spread, photon totals kept (± a few %)
    assert 0.9 < ratio < 1.1
    with pytest.raises(ValueError, match="leave the Gaussian a share"):
        DetectorSpread(short_tail=(0.0, 0.6), long_tail=(0.0, 0.5))
    with pytest.raises(ValueError, match="fwhm_mn_ka_ev must be a range"):
        DetectorSpread(fwhm_mn_ka_ev=(160.0, 135.0))


def test_pixels_are_seeded_and_streams_independent() -> None:
    sim = PixelSimulator()
    a = sim.simulate(300, training_streams(3)[0])
    b = sim.simulate(300, training_streams(3)[0])
    c = sim.simulate(300, training_streams(3)[1])
    np.testing.assert_array_equal(a.counts, b.counts)
    assert not np.array_equal(a.counts, c.counts)


@pytest.mark.parametrize("family", ["Mn_K", "Sr_K"])
def test_mixture_scene_features_the_targets_the_paintings_lack(family: str) -> None:
    scene = mixture_scene(0, (12, 12), featured=[family])
    assert scene.counts.shape == (144, 4096)
    i = scene.names.index(family)
    assert scene.expected[i].max() * 0.02 > 1
    assert scene.present()[i]


def test_the_cube_adapted_fit_is_set_up_from_each_scene_and_tracks_its_truth() -> None:
    scene = mixture_scene(1, (16, 16), featured=["Cu_K", "Zn_K"], live_time_s=0.2)
    fit = CubeAdaptedFit().for_scene(scene)
    assert fit.axis == scene.axis and fit.label == "linear fit"
    assert {"Cu_K", "Zn_K"} <= set(fit.names) and len(fit.names) < 40  # not the whole library
    pred = predict_scene(CubeAdaptedFit(), scene)
    for family in ("Cu_K", "Zn_K"):
        i = scene.names.index(family)
        assert np.corrcoef(pred[i].ravel(), scene.detected[i].ravel())[0, 1] > 0.95
