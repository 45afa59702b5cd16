"""The simulated two-layer data recipe of the pigment classifier (models.pigment_data)."""

import numpy as np
import pytest
from dwellwise.models import pigment_data as pd
from dwellwise.simulators.detector_spread import NOMINAL_DETECTOR, DetectorSpread
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.paint import pigment_mass
from dwellwise.simulators.pigments import get_pigment

AXIS = EnergyAxis(channels=256, gain_kev=0.080, offset_kev=2.835)


def test_classes_are_paper_004_without_the_ground():
    names = pd.pigment_classes()
    assert len(names) == 11
    assert pd.GROUND_KEY not in names
    assert {"lead_white", "red_lead", "prussian_blue", "iron_oxide"} <= set(names)
    assert all("004" in get_pigment(k).papers for k in names)


def test_recipe_refuses_bad_ranges():
    with pytest.raises(ValueError, match="top_thickness_um"):
        pd.PigmentRecipe(top_thickness_um=(200.0, 50.0))
    with pytest.raises(ValueError, match="must not exceed 1"):
        pd.PigmentRecipe(max_pigments_per_layer=5, min_mass_fraction=0.3)


def test_draws_follow_the_recipe():
    rng = np.random.default_rng(0)
    recipe = pd.TRAINING_RECIPE
    layers = pd.draw_layers(3000, rng, recipe)
    n_cls = len(pd.pigment_classes())
    for frac in (layers.top, layers.bottom):
        used = frac.sum(axis=1) > 0
        assert np.allclose(frac[used].sum(axis=1), 1.0)
        assert (frac[:, :n_cls] > 0).sum(axis=1).max() <= recipe.max_pigments_per_layer
    assert np.all(layers.top.sum(axis=1) > 0)
    bare = layers.bottom.sum(axis=1) == 0
    assert 0.05 < bare.mean() < 0.15 and np.all(layers.bottom_um[bare] == 0)
    single = (layers.top[:, :n_cls] > 0).sum(axis=1) == 1
    assert 0.4 < single.mean() < 0.6
    # training thicknesses lie on the paper's 10 µm grid, inside the paper's or the thin ranges
    assert np.allclose(layers.top_um % 10, 0) and np.allclose(layers.ground_um % 10, 0)
    assert layers.top_um.min() >= 10 and layers.top_um.max() <= 200
    assert layers.ground_um.min() >= 150 and layers.ground_um.max() <= 200
    thick_top = layers.top_um > 50
    assert 0.6 < thick_top.mean() < 0.8
    held = pd.draw_layers(500, np.random.default_rng(1), pd.HELDOUT_RECIPE)
    assert np.mean(held.top_um % 10 != 0) > 0.9  # held-out thicknesses are off the grid


def test_mixture_masses_fill_the_layer():
    phys = pd.physics(AXIS)
    palette = [*phys.pigments, phys.chalk]
    rng = np.random.default_rng(2)
    layers = pd.draw_layers(200, rng, pd.TRAINING_RECIPE)
    masses = phys.masses(layers)[0]  # (P + 1, N) top layer
    per_pigment = np.stack([pigment_mass(p, layers.top_um) for p in palette])
    # the volumes of the mixed paints add up to the layer: Σ m_p / pigment_mass(p, t) = 1
    assert np.allclose((masses / per_pigment).sum(axis=0), 1.0)
    # one pigment alone is exactly pigment_mass
    one = np.zeros((1, len(palette)))
    one[0, 5] = 1.0
    m = pd._mixture_masses(palette, one, np.array([80.0]))
    assert m[5, 0] == pytest.approx(float(pigment_mass(palette[5], 80.0)))


def test_seeded_and_streams_differ():
    a = pd.simulate_pigment_spectra(50, seed=[3, pd.TRAIN_STREAM], axis=AXIS)
    b = pd.simulate_pigment_spectra(50, seed=[3, pd.TRAIN_STREAM], axis=AXIS)
    c = pd.simulate_pigment_spectra(50, seed=[3, pd.HELDOUT_STREAM], axis=AXIS)
    assert np.array_equal(a.counts, b.counts) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.layers.top, c.layers.top)
    assert a.counts.shape == (50, AXIS.channels) and a.counts.dtype == np.float32
    assert np.all(a.labels <= a.present)  # detectable implies present


def _stack(top: dict, bottom: dict, top_um: float, bottom_um: float = 120.0) -> pd.PaintLayers:
    names = pd.pigment_classes()

    def row(mix):
        out = np.zeros(len(names) + 1)
        for k, w in mix.items():
            out[names.index(k)] = w
        return out

    return pd.PaintLayers(
        top=row(top)[None],
        bottom=row(bottom)[None],
        top_um=np.array([top_um]),
        bottom_um=np.array([bottom_um if bottom else 0.0]),
        ground_um=np.array([180.0]),
        intensity=np.array([1.0]),
    )


def test_labels_mark_what_xrf_can_see():
    phys = pd.physics(AXIS)
    names = pd.pigment_classes()
    # cobalt blue under 200 µm of vermilion: present, but no Co photon gets out
    hidden = phys.detectable(_stack({"vermilion": 1.0}, {"cobalt_blue": 1.0}, 200.0), 1.0)
    assert hidden[0, names.index("vermilion")] and not hidden[0, names.index("cobalt_blue")]
    # under a thin layer of it, it shows
    thin = phys.detectable(_stack({"vermilion": 1.0}, {"cobalt_blue": 1.0}, 3.0), 1.0)
    assert thin[0, names.index("cobalt_blue")]
    # lead white and red lead in one layer: both add Pb L counts, both labelled
    both = phys.detectable(_stack({"lead_white": 0.5, "red_lead": 0.5}, {}, 60.0), 1.0)
    assert both[0, names.index("lead_white")] and both[0, names.index("red_lead")]


def test_photon_counting_path_matches_the_fast_path_on_the_nominal_detector():
    nominal = pd.TRAINING_RECIPE.model_copy(update={"detector": NOMINAL_DETECTOR})
    fast = pd.simulate_pigment_spectra(120, seed=5, axis=AXIS, live_time_s=0.5, recipe=nominal)
    e2e = pd.simulate_pigment_spectra(120, seed=5, axis=AXIS, live_time_s=0.5, end_to_end=True)
    assert np.array_equal(fast.labels, e2e.labels)
    assert np.allclose(e2e.counts, np.round(e2e.counts))  # 10 eV channels fold in whole
    expected = fast.expected.sum(axis=0) * 0.5
    for got in (fast.counts.sum(axis=0), e2e.counts.sum(axis=0)):
        assert got.sum() == pytest.approx(expected.sum(), rel=0.01)
        big = expected > 2000
        assert np.allclose(got[big], expected[big], rtol=0.1)


def test_training_spectra_come_from_a_spread_of_detectors():
    spread = pd.TRAINING_RECIPE.model_copy(update={"detector": DetectorSpread(block_pixels=50)})
    nominal = pd.TRAINING_RECIPE.model_copy(update={"detector": NOMINAL_DETECTOR})
    a = pd.simulate_pigment_spectra(200, seed=6, axis=AXIS, live_time_s=0.5, recipe=nominal)
    b = pd.simulate_pigment_spectra(200, seed=6, axis=AXIS, live_time_s=0.5, recipe=spread)
    assert np.array_equal(a.labels, b.labels)  # the same stacks
    assert not np.allclose(a.expected, b.expected, rtol=0.01)
    assert b.expected.sum() == pytest.approx(a.expected.sum(), rel=0.05)


def test_mockup_stacks_are_table_2():
    rng = np.random.default_rng(4)
    layers = pd.mockup_layers(400, rng, pd.HELDOUT_RECIPE)
    names = pd.pigment_classes()
    top1 = np.zeros(len(names) + 1)
    for k, pct in pd.MOCKUP_TOPS["Top 1"].items():
        top1[names.index(k)] = pct / 100
    assert any(np.allclose(t, top1) for t in layers.top)
    assert layers.top_um.min() >= 30 and layers.top_um.max() <= 200
    rows = {tuple(np.round(b, 6)) for b in layers.bottom}
    assert len(rows) == len(pd.MOCKUP_BOTTOMS)
