"""``dwellwise bench pigments-ceiling``: the noise-free classifier and its side-by-side table."""

import re

import numpy as np
import pytest
from dwellwise.benchmarks import pigments_ceiling
from dwellwise.benchmarks.pigments import HARD_PAIRS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shape_features_ignore_intensity_but_keep_the_total():
    rng = np.random.default_rng(0)
    spectrum = rng.uniform(0.1, 5.0, (1, 64))
    a, b = pigments_ceiling.shape_features(np.vstack([spectrum, 3.0 * spectrum]))
    np.testing.assert_allclose(a[:-1], b[:-1], atol=1e-6)  # the shape is the same
    assert b[-1] - a[-1] == pytest.approx(np.log(3.0), abs=1e-5)
    with pytest.raises(ValueError, match="must have counts"):
        pigments_ceiling.shape_features(np.zeros((1, 64)))


def test_noise_free_classifier_learns_a_separable_toy_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0], axis=1).astype(np.uint8)
    clf = pigments_ceiling.NoiseFreeClassifier(8, 2, seed=0)
    losses = clf.fit(x[:500], y[:500], epochs=20)
    assert losses[-1] < 0.5 * losses[0]
    accuracy = ((clf.probabilities(x[500:]) > 0.5) == y[500:].astype(bool)).mean()
    assert accuracy > 0.9


def test_quick_benchmark_prints_both_classifiers_and_records_nothing(capsys, monkeypatch):
    recorded = []
    monkeypatch.setattr("dwellwise.benchmarks.element_maps.record_section", lambda *a, **k: recorded.append(a))
    assert pigments_ceiling.main(quick=True) == 0
    out = capsys.readouterr().out
    for a, b in HARD_PAIRS:
        assert f"{a} / {b}" in out
    assert "shipped CNN, counted at 1 s" in out and "noise-free classifier" in out
    row = re.search(r"\| \*\*macro-F1\*\* \|[^\n]*", out).group(0)
    assert len(re.findall(r"\d\.\d{3}", row)) == 2
    assert re.search(r"hard pairs stayed at the noise-free classifier's F1: \d\.\d{3}", out)
    assert recorded == []
