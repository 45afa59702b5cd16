"""Painting scenes: pigments, layers and element rates that span real scans."""

import numpy as np
import pytest
from dwellwise.simulators.paint import PaintStack, pigment_mass
from dwellwise.simulators.pigments import get_pigment, pigment_database
from dwellwise.simulators.scenes import load_scene
from dwellwise.simulators.spectra import SpectrumModel


def test_database_holds_the_papers_pigments():
    db = pigment_database()
    from_004 = [p for p in db.values() if "004" in p.papers]
    from_003 = [p for p in db.values() if "003" in p.papers]
    assert len(from_004) == 12
    assert len(from_003) == 9 - 0  # lead red, vermilion, chalk share entries with 004
    assert get_pigment("vermillion").key == "vermilion"
    assert get_pigment("lead_white").mass_fractions()[82] == pytest.approx(0.801, abs=0.005)


def test_unknown_pigment_names_the_choices():
    with pytest.raises(ValueError, match="known pigments: .*lead_white"):
        get_pigment("unobtainium")


def test_rates_span_real_scans_sparse_and_dense():
    scene = load_scene("astronaut", (48, 48), seed=0)
    counts_10ms = scene.rates * 0.01
    peak = counts_10ms.max(axis=(1, 2))
    assert peak.max() > 200  # several hundred counts per pixel at 10 ms
    assert peak.min() < 1  # and elements below one count
    cover = (counts_10ms > 0.5).mean(axis=(1, 2))
    assert cover.max() > 0.5 and cover.min() < 0.1  # dense and sparse maps in one scene


def test_hidden_layer_is_weaker_and_its_line_ratio_shifts():
    model = SpectrumModel(["Pb_L", "Hg_L"])
    vermilion, lead_white = get_pigment("vermilion"), get_pigment("lead_white")
    stack = PaintStack(model, [[vermilion], [lead_white]])
    la = [i for i, c in enumerate(model.components) if c.label.startswith("Pb_L@10.5")]
    lb = [i for i, c in enumerate(model.components) if c.label.startswith("Pb_L@12.6")]
    out = []
    for top_um in (0.0, 20.0, 40.0):
        masses = [
            np.array([[pigment_mass(vermilion, top_um)]]),
            np.array([[pigment_mass(lead_white, 50.0)]]),
        ]
        r = stack.component_rates(masses, np.ones(1))[:, 0]
        out.append((r[model.group_of_component == 0].sum(), r[la].sum() / r[lb].sum()))
    (pb0, ratio0), (pb1, ratio1), (pb2, ratio2) = out
    assert pb0 > pb1 > pb2
    assert ratio0 < ratio1 < ratio2  # Lβ lies above the Hg L3 edge and is absorbed more


def test_scenes_from_images_procedural_and_files(tmp_path):
    from skimage import io

    img = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    path = tmp_path / "mine.png"
    io.imsave(path, img)
    for name in ("coffee", "procedural", str(path)):
        scene = load_scene(name, (16, 20), seed=1)
        assert scene.rates.shape == (len(scene.elements), 16, 20)
        assert np.all(scene.roi_rates >= 0)
    a = load_scene("procedural", (16, 16), seed=5).rates
    b = load_scene("procedural", (16, 16), seed=5).rates
    c = load_scene("procedural", (16, 16), seed=6).rates
    assert np.array_equal(a, b) and (a.shape != c.shape or not np.array_equal(a, c))


def test_not_an_image_is_refused_clearly(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_scene(str(bad), (8, 8))
    with pytest.raises(ValueError, match="unknown scene"):
        load_scene("mona_lisa", (8, 8))
