"""A job's progress, read from the Bluesky documents of its scan.

The plans put everything the operator wants into documents: the start document has the budget
(``planned_times``), the passes and the cube file; the ``timeline`` stream has one event per row
(pass, rows done, budget used and left, counts and live time of the row); the ``passes`` stream
one event per pass (policy that answered, where it trained, compute time). :class:`JobProgress`
keeps the latest of each.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from dwellwise.daemon.protocol import ScanProgressFields
from pydantic import ConfigDict


class Progress(ScanProgressFields):
    """What the ``progress`` event carries."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    job_id: str
    """The job."""
    eta_s: float | None = None
    """Wall seconds until the scan ends at the latest (the budget left over the speedup)."""
    count_rate: float | None = None
    """ROI counts per second of live time in the latest row, counts/s."""
    cube_file: str | None = None
    """Cube file, from the start document."""
    exit_status: str | None = None
    """``success``, ``abort`` or ``fail`` once the stop document came."""
    reason: str = ""
    """The stop document's reason."""
    time: float = 0.0
    """When this progress was recorded, Unix seconds."""


class JobProgress:
    """Follows the documents of one job's run (called from the RunEngine's thread)."""

    def __init__(self, job_id: str, *, passes: int, budget_s: float | None, speedup: float) -> None:
        self.speedup = float(speedup)
        self._lock = threading.Lock()
        self._p = Progress(job_id=job_id, passes=passes, budget_s=budget_s, left_s=budget_s)
        self._streams: dict[str, str] = {}
        self.started = False
        self.stopped = False

    def snapshot(self) -> Progress:
        """A copy of the latest progress."""
        with self._lock:
            return self._p.model_copy()

    def __call__(self, name: str, doc: dict[str, Any]) -> str | None:
        """Take one document; returns ``"row"``, ``"pass"``, ``"start"`` or ``"stop"`` when the
        progress changed in a way worth telling, else ``None``."""
        with self._lock:
            if name == "start":
                return self._start(doc)
            if name == "descriptor":
                self._streams[doc["uid"]] = doc.get("name", "")
                return None
            if name == "event":
                return self._event(doc)
            if name == "event_page":
                return self._page(doc)
            if name == "stop":
                self._p.exit_status = doc.get("exit_status")
                self._p.reason = str(doc.get("reason") or "")
                self._p.time = time.time()
                self.stopped = True
                return "stop"
        return None

    def _start(self, doc: dict[str, Any]) -> str:
        self.started = True
        p = self._p
        p.run_uid = doc.get("uid")
        p.cube_file = doc.get("cube_file")
        p.passes = int(doc.get("passes", p.passes))
        p.rows_total = int((doc.get("shape") or [0])[0])
        budget = (doc.get("planned_times") or {}).get("budget_s")
        if budget is not None:
            p.budget_s = float(budget)
            p.left_s = float(budget)
        p.time = time.time()
        return "start"

    def _page(self, doc: dict[str, Any]) -> str | None:
        stream = self._streams.get(doc.get("descriptor", ""))
        if stream not in ("timeline", "passes"):
            return None
        data = doc.get("data", {})
        n = len(doc.get("seq_num", []))
        what = None
        for i in range(n):
            row = {k: v[i] for k, v in data.items()}
            what = self._data(stream, row) or what
        return what

    def _event(self, doc: dict[str, Any]) -> str | None:
        stream = self._streams.get(doc.get("descriptor", ""))
        return self._data(stream, doc.get("data", {}))

    def _data(self, stream: str | None, data: dict[str, Any]) -> str | None:
        p = self._p
        if stream == "timeline":
            d = {k.removeprefix("timeline_"): v for k, v in data.items()}
            p.pass_number = int(d.get("pass_number", p.pass_number))
            p.rows_done = int(d.get("rows_done", p.rows_done))
            p.rows_total = int(d.get("rows_total", p.rows_total))
            p.rows_done_all += 1
            p.used_s = float(d.get("budget_used_s", p.used_s))
            left = _finite(d.get("budget_left_s"))
            p.left_s = left
            p.eta_s = None if left is None else max(0.0, left) / self.speedup
            live = float(d.get("live_time_s", 0.0) or 0.0)
            p.count_rate = float(d.get("counts", 0)) / live if live > 0 else None
            p.time = time.time()
            return "row"
        if stream == "passes":
            d = {k.removeprefix("passes_"): v for k, v in data.items()}
            p.policy = str(d.get("policy") or p.policy or "")
            p.fell_back = bool(d.get("fell_back", False))
            device = str(d.get("device") or "-")
            if device != "-" or p.train_device is None:
                p.train_device = device
            p.compute_s += float(d.get("compute_s", 0.0) or 0.0)
            p.train_s += float(d.get("train_s", 0.0) or 0.0)
            p.time = time.time()
            return "pass"
        return None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
