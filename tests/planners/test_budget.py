"""The governor's overhead estimate ignores one-off stalls."""

from __future__ import annotations

from dwellwise.planners.budget import OverheadTracker


def test_a_single_stall_does_not_inflate_the_margin():
    tracker = OverheadTracker(prior_s=0.01)
    for _ in range(20):
        tracker.add(predicted_s=0.3, realized_s=0.31)
    tracker.add(predicted_s=0.3, realized_s=5.0)  # a stage stall
    assert abs(tracker.mean_s() - 0.01) < 1e-6
    assert tracker.margin_s() < 0.05


def test_prior_until_measured_and_never_negative():
    tracker = OverheadTracker(prior_s=0.02)
    assert tracker.mean_s() == 0.02 and tracker.margin_s() == 0.04
    tracker.add(predicted_s=0.5, realized_s=0.4)  # faster than predicted counts as 0
    assert tracker.mean_s() == 0.0
