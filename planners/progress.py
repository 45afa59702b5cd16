"""A terminal progress bar for dwellwise scans (a Bluesky callback).

``RE(plan, ScanProgress())`` or ``RE.subscribe(ScanProgress())``. It reads the start document
(passes, rows, budget) and the ``timeline`` stream (one event per row) and draws::

    pass 2/2 [##########----------] row 24/48 | 41.2 s used, 18.8 s left of 60 s

on one line of a terminal (a line every tenth of a pass when the output is not a terminal), and
a summary line when the run stops.
"""

from __future__ import annotations

import sys
from typing import TextIO

from event_model import DocumentRouter, unpack_event_page


class ScanProgress(DocumentRouter):
    """Progress of the current scan: pass, rows done, instrument time used and left."""

    def __init__(self, out: TextIO | None = None, width: int = 24) -> None:
        super().__init__()
        self.out = out or sys.stderr
        self.width = width
        self._timeline: set[str] = set()
        self._passes = 1
        self._budget: float | None = None
        self._last_decile = -1
        self._line = ""

    @property
    def line(self) -> str:
        """The last progress line drawn."""
        return self._line

    def start(self, doc: dict) -> None:
        self._passes = int(doc.get("passes", 1))
        self._budget = (doc.get("planned_times") or {}).get("budget_s")
        self._timeline.clear()
        self._last_decile = -1

    def descriptor(self, doc: dict) -> None:
        if doc.get("name") == "timeline":
            self._timeline.add(doc["uid"])

    def event(self, doc: dict) -> None:
        if doc["descriptor"] not in self._timeline:
            return
        d = {k.removeprefix("timeline_"): v for k, v in doc["data"].items()}
        self._draw(d)

    def event_page(self, doc: dict) -> None:
        for event in unpack_event_page(doc):
            self.event(event)

    def stop(self, doc: dict) -> None:
        status = doc.get("exit_status", "?")
        self._write(f"{self._line}  [{status}]", final=True)

    def _draw(self, d: dict) -> None:
        done, total = int(d["rows_done"]), max(1, int(d["rows_total"]))
        filled = round(self.width * done / total)
        bar = "#" * filled + "-" * (self.width - filled)
        used = float(d["budget_used_s"])
        if self._budget:
            left = float(d["budget_left_s"])
            times = f"{used:.1f} s used, {left:.1f} s left of {self._budget:g} s"
        else:
            times = f"{used:.1f} s"
        self._line = (
            f"pass {int(d['pass_number'])}/{self._passes} [{bar}] row {done}/{total} | {times}"
        )
        decile = (int(d["pass_number"]) * 10) + (10 * done) // total
        if self.out.isatty() or decile != self._last_decile:
            self._last_decile = decile
            self._write(self._line)

    def _write(self, text: str, final: bool = False) -> None:
        if self.out.isatty():
            self.out.write("\r" + text + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()
