"""What an interrupted scan's cube file says about where to go on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from dwellwise.planners.request import ScanRefused
from dwellwise.planners.schedule import PassSchedule

from dwellwise.hdf5_open import open_readonly

if TYPE_CHECKING:
    from dwellwise.planners.plans import _FlyScan


@dataclass(frozen=True)
class ResumeState:
    """Progress of a scan as recorded in its cube file."""

    plan_name: str
    """Plan that wrote the file."""
    request: dict[str, Any]
    """The scan request, as the plan recorded it."""
    pass_number: int
    """Pass to go on with (1-based)."""
    planned: np.ndarray | None
    """``(H, W)`` planned dwell of that pass, seconds; ``None`` if the pass had not started."""
    rows_complete: np.ndarray
    """``(H,)`` rows of that pass already recorded."""
    budget_used_s: float
    """Instrument time used before the interruption, seconds."""
    roi_counts: np.ndarray
    """``(C, H, W)`` ROI counts of all passes so far."""
    live_time: np.ndarray
    """``(H, W)`` live time of all passes so far, seconds."""
    finished: bool
    """Whether every pass is already complete."""

    def schedule(self, scan: _FlyScan) -> PassSchedule | None:
        """The rest of the interrupted pass, or ``None`` when the next pass must be planned."""
        if self.planned is None:
            return None
        return PassSchedule(
            self.pass_number,
            scan.geom,
            self.planned,
            scan.kin,
            start_xy=scan.start_xy(),
            min_dwell=scan.min_dwell,
            skip_rows=self.rows_complete,
        )


def read_resume_state(path: str | Path) -> ResumeState:
    """Read where an interrupted scan stopped; ``ScanRefused`` if the file cannot be resumed."""
    path = Path(path)
    try:
        f = open_readonly(path)
    except OSError as exc:
        raise ScanRefused(f"{path}: not a readable cube file ({exc})") from None
    with f:
        meta = f.get("xrfmap/scan_metadata")
        if meta is None or "request" not in meta.attrs or "entry/passes" not in f:
            raise ScanRefused(f"{path}: no scan request recorded; only plan-written files resume")
        request = json.loads(meta.attrs["request"])
        plan_name = str(meta.attrs.get("plan_name", ""))
        passes = f["entry/passes"]
        numbers = sorted(int(n) for n in passes)
        roi = sum(passes[str(n)]["roi_counts"][...].astype(np.float64) for n in numbers)
        live = sum(passes[str(n)]["live_time"][...] for n in numbers)
        used = float(f["entry/budget_used_s"][()]) if "entry/budget_used_s" in f else 0.0
        for n in numbers:
            g = passes[str(n)]
            done = g["rows_complete"][...].astype(bool)
            if done.all():
                continue
            planned = g["dwell_planned"][...]
            started = bool(np.any(planned > 0))
            return ResumeState(
                plan_name=plan_name,
                request=request,
                pass_number=n,
                planned=planned if started else None,
                rows_complete=done,
                budget_used_s=used,
                roi_counts=roi,
                live_time=live,
                finished=False,
            )
        return ResumeState(
            plan_name=plan_name,
            request=request,
            pass_number=numbers[-1] + 1,
            planned=None,
            rows_complete=np.ones(0, bool),
            budget_used_s=used,
            roi_counts=roi,
            live_time=live,
            finished=True,
        )
