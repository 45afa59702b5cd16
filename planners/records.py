"""Readable records a plan fills in and reads into its own streams.

``timeline``: one event per row (planned versus realized time, budget used and left).
``passes``: one event per pass (planned and realized time, the compute before it, the policy
that answered and where it trained). Both are Ophyd devices of soft signals so that a plain
``bps.create / bps.read / bps.save`` turns them into events.
"""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, Signal


class SoftRecord(Device):
    """A device of soft signals the plan fills in before reading it into a stream."""

    def record(self, **values) -> None:
        """Set several signals at once (no messages: the plan owns this device)."""
        for key, value in values.items():
            getattr(self, key).put(value)


class RowTimeline(SoftRecord):
    """The timeline of one row."""

    pass_number = Cpt(Signal, value=0, kind="hinted")
    """Pass number, 1-based."""
    row = Cpt(Signal, value=0, kind="hinted")
    """Row index."""
    rows_done = Cpt(Signal, value=0)
    """Rows completed in this pass, this one included."""
    rows_total = Cpt(Signal, value=0)
    """Rows in the pass."""
    planned_s = Cpt(Signal, value=0.0)
    """Predicted time of the row (approach, run-up, pixels, run-out), seconds."""
    realized_s = Cpt(Signal, value=0.0)
    """Instrument time the row really took, overhead included, seconds."""
    budget_used_s = Cpt(Signal, value=0.0)
    """Instrument time used since the scan started, seconds."""
    budget_left_s = Cpt(Signal, value=0.0)
    """Instrument time left in the budget, seconds (``inf`` without a budget)."""
    counts = Cpt(Signal, value=0)
    """ROI counts recorded in the row."""
    live_time_s = Cpt(Signal, value=0.0)
    """Live time recorded in the row, seconds."""
    replanned = Cpt(Signal, value=False)
    """Whether the governor re-planned the remaining rows before this one."""


class PassSummary(SoftRecord):
    """The summary of one pass."""

    pass_number = Cpt(Signal, value=0, kind="hinted")
    """Pass number, 1-based."""
    planned_s = Cpt(Signal, value=0.0)
    """Predicted time of the pass when it started, seconds."""
    realized_s = Cpt(Signal, value=0.0)
    """Instrument time the pass took, seconds."""
    rows_done = Cpt(Signal, value=0)
    """Rows completed."""
    mean_dwell_s = Cpt(Signal, value=0.0)
    """Mean planned dwell of the pass, seconds."""
    compute_s = Cpt(Signal, value=0.0)
    """Instrument time of the compute before the pass, seconds (0 for pass 1)."""
    policy = Cpt(Signal, value="")
    """Policy that decided the dwell."""
    fell_back = Cpt(Signal, value=False)
    """Whether the requested policy missed its deadline and the fallback answered."""
    device = Cpt(Signal, value="-")
    """Where a learned policy trained (``cuda``, ``cpu``) or ``-``."""
    train_s = Cpt(Signal, value=0.0)
    """Wall seconds the learned policy spent training and inferring before the pass (part of
    ``compute_s``, which also holds data hand-over and waiting; 0 when nothing trained)."""
    replans = Cpt(Signal, value=0)
    """How many times the governor re-planned rows during the pass."""
