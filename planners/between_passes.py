"""The compute between passes: the dwell policy runs in a worker thread under a deadline.

The plan starts an :class:`AllocationJob`, waits for it without blocking the RunEngine (so pause
and abort still work) for at most the deadline, then takes :meth:`AllocationJob.result`: the
policy's answer if it came in time, else the fallback policy's (``blindspot-sqrt``, no training,
well under a second even for a megapixel map). A late worker is abandoned, never waited for.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
from dwellwise.planners.allocate import allocate_dwell

FALLBACK_POLICY = "blindspot-sqrt"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Allocation:
    """A dwell map for the next pass and how it was obtained."""

    dwell: np.ndarray
    """``(H, W)`` additional dwell, seconds."""
    policy: str
    """Policy that answered."""
    requested: str
    """Policy that was asked for."""
    fell_back: bool
    """Whether the requested policy missed its deadline or failed."""
    compute_s: float
    """Wall seconds from start to answer (fallback included)."""
    device: str
    """Where a learned policy trained (``cuda``, ``cpu``), ``-`` for closed-form policies."""
    note: str = ""
    """Why it fell back, if it did."""


class AllocationJob:
    """Runs ``allocate_dwell`` in a daemon thread; the answer is taken with a deadline."""

    def __init__(
        self,
        counts: np.ndarray,
        t0: np.ndarray,
        mean_dwell: float,
        *,
        policy: str,
        weights: np.ndarray | None,
        min_dwell: float,
        deadline_s: float,
        seed: int | None,
        **options: Any,
    ) -> None:
        self.args = (counts, t0, mean_dwell)
        self.kwargs = dict(weights=weights, min_dwell=min_dwell, seed=seed)
        self.policy = policy
        self.deadline_s = float(deadline_s)
        self.options = options
        self.started = time.perf_counter()
        self._report_before = _last_training_report()
        self.future: Future = Future()
        threading.Thread(target=self._run, name="dwell-policy", daemon=True).start()

    def _run(self) -> None:
        try:
            dwell = allocate_dwell(
                *self.args,
                policy=self.policy,
                deadline=self.deadline_s,
                **self.kwargs,
                **self.options,
            )
            self.future.set_result(dwell)
        except BaseException as exc:  # reported through the future, handled in result()
            self.future.set_exception(exc)

    async def wait(self) -> None:
        """Awaitable for ``Msg('wait_for')``: returns when answered or at the deadline."""
        left = self.deadline_s - (time.perf_counter() - self.started)
        if left > 0 and not self.future.done():
            await asyncio.wait([asyncio.wrap_future(self.future)], timeout=left)

    def result(self) -> Allocation:
        """The policy's answer if it arrived by the deadline, else the fallback's."""
        note = ""
        if self.future.done() and self.future.exception() is None:
            report = _last_training_report()
            trained = report is not None and report is not self._report_before
            used = "n2v-sqrt" if trained and self.policy == "auto" else self.policy
            if self.policy == "auto" and not trained:
                used = FALLBACK_POLICY
            return Allocation(
                dwell=self.future.result(),
                policy=used,
                requested=self.policy,
                fell_back=False,
                compute_s=time.perf_counter() - self.started,
                device=report.device if trained else "-",
            )
        if self.future.done():
            note = f"{self.policy} failed: {self.future.exception()}"
        else:
            note = f"{self.policy} missed its {self.deadline_s:.3g} s deadline"
        log.warning("dwell policy fallback to %s: %s", FALLBACK_POLICY, note)
        try:
            dwell = allocate_dwell(*self.args, policy=FALLBACK_POLICY, **self.kwargs)
            used = FALLBACK_POLICY
        except Exception as exc:  # the closed-form fallback should not fail; uniform never does
            note += f"; {FALLBACK_POLICY} failed too ({exc})"
            dwell = allocate_dwell(*self.args, policy="uniform", **self.kwargs)
            used = "uniform"
        return Allocation(
            dwell=dwell,
            policy=used,
            requested=self.policy,
            fell_back=True,
            compute_s=time.perf_counter() - self.started,
            device="-",
            note=note,
        )


def _last_training_report() -> Any:
    """The learned policy's most recent training report (identity marks a new training)."""
    try:
        from dwellwise.models import n2v
    except ImportError:  # torch missing: only closed-form policies exist
        return None
    return n2v.last_training_report
