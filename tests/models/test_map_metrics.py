"""Paper-002 measures of elemental maps: SSIM, Pearson, slope, |z| fractions."""

from __future__ import annotations

import numpy as np
import pytest
from dwellwise.models.map_metrics import (
    ElementScores,
    mean_over,
    pearson,
    score_maps,
    slope,
    ssim,
    summarise,
    z_fractions,
    z_scores,
)
from skimage.metrics import structural_similarity


def _map(seed: int = 0, shape=(24, 24)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return 50.0 + 40.0 * np.sin(xx / 4.0) * np.cos(yy / 5.0) + rng.uniform(0, 5, shape)


def test_ssim_is_one_for_a_perfect_map_and_uses_the_truths_range() -> None:
    truth = _map()
    assert ssim(truth, truth) == pytest.approx(1.0)
    pred = truth + np.random.default_rng(1).normal(0, 3, truth.shape)
    ref = structural_similarity(truth, pred, data_range=truth.max() - truth.min())
    assert ssim(pred, truth) == pytest.approx(ref)
    # scoring both maps divided by the truth's range gives the same figure (range-invariant)
    scale = truth.max() - truth.min()
    assert ssim(pred / scale, truth / scale) == pytest.approx(ssim(pred, truth), rel=1e-9)
    assert ssim(pred, truth) < 1.0


def test_ssim_refuses_bad_maps() -> None:
    assert np.isnan(ssim(np.ones((8, 8)), np.full((8, 8), 3.0)))
    with pytest.raises(ValueError, match="7×7"):
        ssim(np.ones((5, 5)), np.ones((5, 5)))
    with pytest.raises(ValueError, match="shape"):
        ssim(np.ones((8, 8)), np.ones((9, 8)))
    with pytest.raises(ValueError, match="finite"):
        ssim(np.full((8, 8), np.nan), np.ones((8, 8)))


def test_pearson_and_slope() -> None:
    truth = _map()
    assert pearson(3 * truth + 7, truth) == pytest.approx(1.0)
    assert pearson(-truth, truth) == pytest.approx(-1.0)
    assert pearson(np.zeros_like(truth), truth) == 0.0
    assert np.isnan(pearson(truth, np.ones_like(truth)))
    assert slope(2 * truth, truth) == pytest.approx(2.0)
    # through the origin: an offset changes the slope, by sum(truth)/sum(truth²) per unit
    assert slope(truth + 1, truth) == pytest.approx(1 + truth.sum() / (truth**2).sum())
    assert np.isnan(slope(truth, np.zeros_like(truth)))


def test_z_scores_are_errors_over_the_poisson_sigma_of_the_true_counts() -> None:
    truth = np.full(4, 100.0)  # counts/s; at 1 s: 100 counts, sigma 10
    pred = truth + np.array([5.0, 15.0, 25.0, -35.0])
    np.testing.assert_allclose(z_scores(pred, truth, 1.0), [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(z_fractions(pred, truth, 1.0), [0.25, 0.25, 0.25, 0.25])
    # at 0.25 s: 25 counts, sigma 5 counts; an error of 20 counts/s is 5 counts: |z| = 1
    assert z_scores(np.array([120.0]), np.array([100.0]), 0.25)[0] == pytest.approx(1.0)
    # a true count below 1 gets sigma 1: 3 counts/s predicted for 0 at 1 s is |z| = 3
    assert z_scores(np.array([3.0]), np.array([0.0]), 1.0)[0] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="live time"):
        z_scores(truth, truth, 0.0)


def test_score_maps_and_summary_skip_absent_elements() -> None:
    truth = np.stack([_map(0), _map(1)])
    pred = truth * 1.1
    scores = score_maps(pred, truth, np.full((24, 24), 0.02), ["Fe_K", "Pb_L"])
    assert scores["Fe_K"].slope == pytest.approx(1.1)
    assert scores["Pb_L"].pearson == pytest.approx(1.0)
    bad = ElementScores(ssim=0.0, pearson=0.0, slope=0.0, z=(0.0, 0.0, 0.0, 1.0))
    per_scene = [
        (np.array([True, True]), scores),
        (np.array([True, False]), {"Fe_K": bad, "Pb_L": bad}),
    ]
    summary = summarise(per_scene, ["Fe_K", "Pb_L"])
    assert summary["Fe_K"].scenes == 2 and summary["Pb_L"].scenes == 1
    assert summary["Pb_L"].ssim == pytest.approx(scores["Pb_L"].ssim)
    assert summary["Fe_K"].ssim == pytest.approx(scores["Fe_K"].ssim / 2)
    assert mean_over(summary, ["Fe_K", "Pb_L"], "slope") == pytest.approx((0.55 + 1.1) / 2)
    none = summarise([(np.array([False, False]), scores)], ["Fe_K", "Pb_L"])
    assert none["Fe_K"].scenes == 0 and np.isnan(none["Fe_K"].ssim)
