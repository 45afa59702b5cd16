"""Per-pigment figures of paper 004 Table 3 (models.pigment_metrics)."""

import math

import numpy as np
import pytest
from dwellwise.models import pigment_metrics as pm

NAMES = ("a", "b", "c")
# columns: a has TP=2 FP=1 FN=1 TN=1; b never present, never predicted; c present, never predicted
Y_TRUE = np.array([[1, 0, 1], [1, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 1]])
Y_PRED = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]])


def test_confusion_counts_by_hand():
    c = pm.confusion_counts(Y_TRUE, Y_PRED)
    assert c.tolist() == [[2, 1, 1, 1], [0, 0, 0, 5], [0, 0, 3, 2]]


def test_scores_follow_eq_3_to_6():
    a, b, c = pm.per_class_scores(Y_TRUE, Y_PRED, NAMES)
    assert a.accuracy == pytest.approx(3 / 5)
    assert a.sensitivity == pytest.approx(2 / 3)
    assert a.precision == pytest.approx(2 / 3)
    assert a.f1 == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert (a.positives, a.n) == (3, 5)
    # nothing to find and nothing claimed: sensitivity, precision, F1 undefined
    assert b.accuracy == 1.0 and math.isnan(b.sensitivity) and math.isnan(b.f1)
    # present but never reported: F1 0, precision undefined
    assert c.sensitivity == 0.0 and c.f1 == 0.0 and math.isnan(c.precision)


def test_macro_f1_skips_undefined_classes():
    scores = pm.per_class_scores(Y_TRUE, Y_PRED, NAMES)
    assert pm.macro_f1(scores) == pytest.approx((2 / 3 + 0.0) / 2)
    perfect = pm.per_class_scores(Y_TRUE, Y_TRUE, NAMES)
    assert pm.macro_f1(perfect) == 1.0


def test_threshold_and_best_thresholds():
    prob = np.array([[0.9, 0.2], [0.6, 0.4], [0.3, 0.45], [0.1, 0.7]])
    assert pm.threshold(prob, [0.5, 0.42]).tolist() == [
        [True, False],
        [True, False],
        [False, True],
        [False, True],
    ]
    truth = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    th = pm.best_thresholds(truth, prob)
    # class 0 is separated by any threshold in (0.3, 0.6]: the tie goes to the one nearest 0.5
    assert th[0] == pytest.approx(0.5)
    assert 0.4 < th[1] <= 0.45
    assert pm.macro_f1(pm.per_class_scores(truth, pm.threshold(prob, th), ("x", "y"))) == 1.0


def test_pair_confusion_and_merge():
    names = ("lw", "rl", "zw")
    truth = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]])
    pred = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    ab, ba = pm.pair_confusion(truth, pred, names, "lw", "rl")
    assert ab == pytest.approx(0.5) and ba == pytest.approx(1.0)
    merged, new_names = pm.merge_classes(truth, names, [("lw", "rl")])
    assert new_names == ("zw", "lw|rl")
    assert merged.tolist() == [[False, True], [False, True], [False, True], [True, True]]
    with pytest.raises(ValueError, match="distinct known"):
        pm.merge_classes(truth, names, [("lw", "xx")])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.zeros(3), np.zeros(3), r"\(N, P\)"),
        (np.zeros((2, 3)), np.zeros((3, 3)), "differ in shape"),
        (np.full((2, 3), 0.5), np.zeros((2, 3)), "0/1"),
    ],
)
def test_bad_input_is_refused(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        pm.confusion_counts(y_true, y_pred)
