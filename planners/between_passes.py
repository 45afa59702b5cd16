"""The compute between passes: the dwell policy runs under a deadline, off the RunEngine.

The plan starts an :class:`AllocationJob`, waits for it without blocking the RunEngine (so pause
and abort still work) for at most the deadline, then takes :meth:`AllocationJob.result`: the
policy's answer if it came in time, else the fallback policy's (``blindspot-sqrt``, no training,
well under a second even for a megapixel map, computed in this process). A late answer is
abandoned, never waited for.

Where the policy runs is the *compute backend*'s business:

* :class:`ThreadBackend` (the default): a daemon thread of this process, so plain IPython use
  needs no process machinery. A late thread is abandoned (it runs on, unobserved).
* any object with ``submit(request: PolicyRequest) -> Future[PolicyAnswer]``, installed with
  :func:`install_compute_backend` (or, scoped, ``with compute_backend(backend): ...``): the
  daemon installs :class:`dwellwise.daemon.trainer.TrainerProcess`, a warm worker process that a
  hang, a CUDA error or an out-of-memory cannot take down with it.

Backends installed later take precedence; removing one (in any order) uncovers the one installed
before it, and the thread backend when none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    train_s: float = 0.0
    """Wall seconds the learned policy spent training and inferring (0 without training)."""


@dataclass(frozen=True)
class PolicyRequest:
    """One ``allocate_dwell`` call for a compute backend (picklable: arrays and plain values)."""

    counts: np.ndarray
    t0: np.ndarray
    mean_dwell: float
    policy: str
    weights: np.ndarray | None
    min_dwell: float
    seed: int | None
    deadline_s: float
    """Wall seconds from ``started`` until the answer is of no more use."""
    options: dict[str, Any] = field(default_factory=dict)
    """Further keyword options of the policy (``deadline`` is set from ``deadline_s``)."""
    started: float = field(default_factory=time.perf_counter)
    """``time.perf_counter()`` of the submitting process when the job started."""

    def left_s(self) -> float:
        """Wall seconds left until the deadline (in the submitting process)."""
        return self.deadline_s - (time.perf_counter() - self.started)


@dataclass(frozen=True)
class PolicyAnswer:
    """What a backend returns for a :class:`PolicyRequest`."""

    dwell: np.ndarray
    """``(H, W)`` additional dwell, seconds."""
    device: str = "-"
    """Where a learned policy trained (``cuda``, ``cpu``), ``-`` when nothing trained."""
    train_s: float = 0.0
    """Seconds of training and inference (the training report's), 0 when nothing trained."""
    pid: int = 0
    """Process that computed it."""

    @property
    def trained(self) -> bool:
        return self.device != "-"


class ComputeBackend(Protocol):
    """Where the policy of an :class:`AllocationJob` runs."""

    def submit(self, request: PolicyRequest) -> Future:
        """Start computing; the future gets a :class:`PolicyAnswer` or the failure. Must return
        at once. A backend may complete the future after the deadline or never; the job does not
        wait past its deadline."""
        ...


def compute_policy(request: PolicyRequest, deadline_s: float | None = None) -> PolicyAnswer:
    """Run the request's policy here, now (``deadline_s``: the policy's own deadline option,
    default the request's). The device and seconds come from the learned policy's training
    report when this call trained (a new report appeared)."""
    before = _last_training_report()
    deadline = request.deadline_s if deadline_s is None else float(deadline_s)
    dwell = allocate_dwell(
        request.counts,
        request.t0,
        request.mean_dwell,
        policy=request.policy,
        weights=request.weights,
        min_dwell=request.min_dwell,
        seed=request.seed,
        **{**request.options, "deadline": deadline},
    )
    report = _last_training_report()
    if report is not None and report is not before:
        return PolicyAnswer(dwell, str(report.device), float(report.seconds), os.getpid())
    return PolicyAnswer(dwell, "-", 0.0, os.getpid())


class ThreadBackend:
    """The default backend: each request in a daemon thread of this process."""

    name = "thread"

    def submit(self, request: PolicyRequest) -> Future:
        future: Future = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(compute_policy(request))
            except BaseException as exc:  # reported through the future, handled in result()
                future.set_exception(exc)

        threading.Thread(target=run, name="dwell-policy", daemon=True).start()
        return future


THREAD_BACKEND = ThreadBackend()
_backends: list[Any] = []
_backends_lock = threading.Lock()


def get_compute_backend() -> Any:
    """The backend new :class:`AllocationJob` s use: the latest installed, else the thread."""
    with _backends_lock:
        return _backends[-1] if _backends else THREAD_BACKEND


def install_compute_backend(backend: Any) -> None:
    """Make ``backend`` the one new jobs use (until removed or another is installed)."""
    if not callable(getattr(backend, "submit", None)):
        raise TypeError(f"a compute backend needs a submit(request) method, got {backend!r}")
    with _backends_lock:
        _backends.append(backend)


def remove_compute_backend(backend: Any) -> None:
    """Remove ``backend`` (wherever it is in the order); nothing happens if it is not there."""
    with _backends_lock:
        for i in range(len(_backends) - 1, -1, -1):
            if _backends[i] is backend:
                del _backends[i]
                return


@contextlib.contextmanager
def compute_backend(backend: Any) -> Iterator[Any]:
    """``with compute_backend(trainer): RE(adaptive_scan(...))``: jobs started inside use it."""
    install_compute_backend(backend)
    try:
        yield backend
    finally:
        remove_compute_backend(backend)


class AllocationJob:
    """Runs ``allocate_dwell`` on the compute backend; the answer is taken with a deadline."""

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
        backend: Any = None,
        **options: Any,
    ) -> None:
        self.args = (counts, t0, mean_dwell)
        self.kwargs = dict(weights=weights, min_dwell=min_dwell, seed=seed)
        self.policy = policy
        self.deadline_s = float(deadline_s)
        self.options = options
        self.started = time.perf_counter()
        self.backend = backend if backend is not None else get_compute_backend()
        self.request = PolicyRequest(
            counts=np.asarray(counts),
            t0=np.asarray(t0),
            mean_dwell=float(mean_dwell),
            policy=policy,
            weights=None if weights is None else np.asarray(weights),
            min_dwell=float(min_dwell),
            seed=seed,
            deadline_s=self.deadline_s,
            options=dict(options),
            started=self.started,
        )
        try:
            self.future: Future = self.backend.submit(self.request)
        except Exception as exc:  # a broken backend is one more reason to fall back
            self.future = Future()
            self.future.set_exception(exc)

    async def wait(self) -> None:
        """Awaitable for ``Msg('wait_for')``: returns when answered or at the deadline."""
        left = self.deadline_s - (time.perf_counter() - self.started)
        if left > 0 and not self.future.done():
            waiter = asyncio.wrap_future(self.future)
            waiter.add_done_callback(_retrieve)  # a failure is reported by result(), not logged
            await asyncio.wait([waiter], timeout=left)

    def result(self) -> Allocation:
        """The policy's answer if it arrived by the deadline, else the fallback's."""
        note = ""
        if self.future.done() and not self.future.cancelled() and self.future.exception() is None:
            answer = self.future.result()
            used = self.policy
            if self.policy == "auto":
                used = "n2v-sqrt" if answer.trained else FALLBACK_POLICY
            return Allocation(
                dwell=answer.dwell,
                policy=used,
                requested=self.policy,
                fell_back=False,
                compute_s=time.perf_counter() - self.started,
                device=answer.device,
                train_s=answer.train_s,
            )
        if self.future.done():
            exc = "cancelled" if self.future.cancelled() else self.future.exception()
            note = f"{self.policy} failed: {exc}"
        else:
            note = f"{self.policy} missed its {self.deadline_s:.3g} s deadline"
        # the fallback is blindspot-sqrt, unless that is what just failed: then uniform
        fallback = FALLBACK_POLICY if self.policy != FALLBACK_POLICY else "uniform"
        log.warning("dwell policy fallback to %s: %s", fallback, note)
        try:
            dwell = allocate_dwell(*self.args, policy=fallback, **self.kwargs)
            used = fallback
        except Exception as exc:  # the closed-form fallback should not fail; uniform never does
            note += f"; {fallback} failed too ({exc})"
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


def _retrieve(future: asyncio.Future) -> None:
    """Mark a failed future's exception as seen (asyncio would log it as never retrieved)."""
    if not future.cancelled():
        future.exception()


def _last_training_report() -> Any:
    """The learned policy's most recent training report (identity marks a new training)."""
    try:
        from dwellwise.models import n2v
    except ImportError:  # torch missing: only closed-form policies exist
        return None
    return n2v.last_training_report
