"""The RunEngine host: one bluesky ``RunEngine`` in a worker thread and a FIFO job queue.

The worker thread creates the RunEngine (without the SIGINT context manager, which only works in
the main thread), takes jobs from the queue one at a time and runs their plans. The control thread
never calls a blocking RunEngine method: ``RE.resume()`` and ``RE.abort()`` of a paused plan run the
rest of the plan in the calling thread, so they are handed to the worker as commands.

* **pause**: a flag the plan wrapper turns into a deferred pause at the next checkpoint (each row
  of the dwellwise plans starts with one), so the row in flight is finished first.
* **resume**: the worker calls ``RE.resume()``.
* **abort**: a hard ``RE.request_pause()`` (so a long row or the compute between passes does not
  delay it), then the worker calls ``RE.abort()``; every completed row stays in the cube file.
* **resume an interrupted job** (:meth:`Runner.resume_interrupted`): a job a previous daemon left
  unfinished is queued again under its id; its plan goes on from the first row its cube file does
  not hold, with the budget it already spent counted (``build_scan(..., resume=True)``).
* **a device fault** (a :class:`~dwellwise.drivers.faults.DeviceFault` from a fly row, or from
  staging a device) pauses the job instead of failing it: the RunEngine pauses at once, the job
  goes ``paused`` with an error that names the device and what happened (ledger, ``job`` and
  ``log`` topics), every completed row stays in the cube file, and ``resume`` (once the device is
  fixed) flies the faulted row again from its checkpoint (the RunEngine replays the row's
  ``set`` and ``wait``; a row already recorded is never flown twice). A fault again pauses again.

Every state change goes to the ledger and to ``on_job``; every document to ``on_document``;
progress (from the ``timeline`` and ``passes`` streams) to ``on_progress``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bluesky.utils import DuringTask, Msg, RunEngineInterrupted
from dwellwise.daemon.build import (
    BuildError,
    PreparedScan,
    build_scan,
    check_resumable,
    not_applicable,
)
from dwellwise.daemon.ledger import Ledger
from dwellwise.daemon.progress import JobProgress, Progress
from dwellwise.daemon.protocol import Job, JobState, ScanProgressFields, ScanRequest
from dwellwise.drivers.faults import DeviceFault, find_device_fault
from dwellwise.drivers.fly import FlyRow
from pydantic import ValidationError

log = logging.getLogger(__name__)

LEDGER_PROGRESS_INTERVAL_S = 0.5
"""Least wall seconds between two progress writes of one job to the ledger (passes, start and
stop are always written)."""


class RunnerError(Exception):
    """A control action that does not apply now; the message says why."""


class _Block(DuringTask):
    """Wait for the plan without touching Qt or signals (we are not in the main thread)."""

    def block(self, blocking_event: threading.Event) -> None:
        blocking_event.wait()


@dataclass
class _Active:
    """The job that holds the RunEngine."""

    scan: PreparedScan
    tracker: JobProgress
    state: JobState = JobState.QUEUED
    commands: queue.Queue = field(default_factory=queue.Queue)
    pause_pending: bool = False
    """A pause asked for and not yet handed to the RunEngine."""
    pause_delivered: bool = False
    """A deferred pause handed to the RunEngine that has not taken effect yet."""
    abort_reason: str | None = None
    """Set once an abort was asked for."""
    final_state: JobState | None = None
    """State to end in regardless of how the plan ends (``interrupted`` at shutdown)."""
    last_ledger_write: float = 0.0
    last_progress_event: float = 0.0
    fault: DeviceFault | None = None
    """The device fault that paused the job (cleared when it resumes)."""
    fly_groups: set[str] = field(default_factory=set)
    """Status groups of the stage's fly rows (their ``wait`` is guarded against faults)."""
    own_msgs: set[int] = field(default_factory=set)
    """Ids of the messages the fault guard made itself (never guarded again)."""

    @property
    def job_id(self) -> str:
        return self.scan.job_id


class Runner:
    """Runs jobs one after another on one RunEngine in a worker thread."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        on_document: Callable[[str, dict], None] | None = None,
        on_job: Callable[[Job], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        progress_interval: float = 0.0,
        max_queue: int = 100,
    ) -> None:
        self.ledger = ledger
        self.on_document = on_document or (lambda name, doc: None)
        self.on_job = on_job or (lambda job: None)
        self.on_progress = on_progress or (lambda progress: None)
        self.on_idle = on_idle or (lambda: None)
        self.progress_interval = float(progress_interval)
        self.max_queue = int(max_queue)
        self.stage_options: dict[str, Any] = {}
        """``sim_beamline`` keywords for the stage (kinematics, limits) from the config."""
        self.devices: Any = None
        """The daemon's real devices (:class:`~dwellwise.daemon.devices.Devices`), or ``None``
        for a simulated beamline per job."""
        self.analysis: Callable[[Job], None] | None = None
        """Called in the worker thread with each completed job whose request asks for analysis
        (``None``: the analysis hand-off is not wired yet, a warning is logged)."""
        self.RE: Any = None
        self._cv = threading.Condition()
        self._queue: deque[PreparedScan] = deque()
        self._active: _Active | None = None
        self._resuming: set[str] = set()
        """Interrupted jobs being checked for resuming (not queued yet)."""
        self._stopping = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._work, name="dwellwise-runner", daemon=True)
        self._start_error: BaseException | None = None

    # -- life cycle --------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Start the worker thread and wait until its RunEngine exists."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the RunEngine did not start in time")
        if self._start_error is not None:
            raise RuntimeError(f"the RunEngine did not start: {self._start_error}")

    def stop(self, timeout: float = 30.0, reason: str = "the daemon shut down") -> None:
        """Interrupt the current job, mark the queued ones interrupted, end the worker."""
        with self._cv:
            self._stopping = True
            queued = list(self._queue)
            self._queue.clear()
            active = self._active
            hard = False
            if active is not None:
                active.final_state = JobState.INTERRUPTED
                hard = self._abort_active(active, reason)
            self._cv.notify_all()
        if hard:
            self._hard_pause()
        for scan in queued:
            self._record_state(
                scan.job_id, JobState.INTERRUPTED, error=f"{reason} before the job started"
            )
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the RunEngine worker did not stop within %.0f s", timeout)
        if self.RE is not None and not self._thread.is_alive():
            loop = self.RE.loop
            loop.call_soon_threadsafe(loop.stop)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- queue -------------------------------------------------------------------------------
    def enqueue(self, scan: PreparedScan) -> Job:
        """Record a job as queued and put it at the end of the queue."""
        with self._cv:
            if self._stopping:
                raise RunnerError("the daemon is shutting down; no new jobs")
            if len(self._queue) >= self.max_queue:
                raise RunnerError(
                    f"the queue is full ({self.max_queue} jobs); wait or abort queued jobs"
                )
            job = self.ledger.add(
                scan.job_id,
                scan.request.model_dump(exclude=set(scan.not_applicable)),
                scan.cube_file,
                passes=scan.passes,
                budget_s=scan.budget_s,
            )
            log.info("job %s: queued (%s, %s)", job.job_id, scan.request.mode, scan.cube_file.name)
            self._queue.append(scan)
            self._cv.notify_all()
        self.on_job(job)
        return job

    def snapshot(self) -> dict[str, Any]:
        """Runner state: ``idle``, ``running``, ``paused`` or ``stopping``; current job; queue."""
        with self._cv:
            active = self._active
            if self._stopping:
                state = "stopping"
            elif active is None:
                state = "idle"
            else:
                state = str(active.state if active.state.active else JobState.RUNNING)
            return {
                "state": state,
                "current_job": None if active is None else active.job_id,
                "pausing": bool(active and (active.pause_pending or active.pause_delivered)),
                "queue_length": len(self._queue),
                "queued": [s.job_id for s in self._queue],
            }

    def live(self, job_id: str) -> Progress | None:
        """Live progress of ``job_id`` if it is the current job."""
        active = self._active
        if active is not None and active.job_id == job_id:
            return active.tracker.snapshot()
        return None

    # -- control (any thread) ------------------------------------------------------------------
    def pause(self, job_id: str | None = None) -> str:
        """Ask the current job to pause at the end of the current row."""
        with self._cv:
            active = self._target(job_id, "paused")
            if active.abort_reason is not None:
                raise RunnerError(f"job {active.job_id} is being aborted")
            if active.state == JobState.PAUSED:
                raise RunnerError(f"job {active.job_id} is already paused")
            if active.pause_pending or active.pause_delivered:
                return f"job {active.job_id} is already pausing"
            active.pause_pending = True
            return f"job {active.job_id} pauses at the end of the current row"

    def resume(self, job_id: str | None = None) -> str:
        """Resume the paused job (or cancel a pause that has not taken effect yet)."""
        if job_id is not None:
            active = self._active
            if active is None or active.job_id != job_id:
                job = self.ledger.find(job_id)
                if job is not None and job.state == JobState.INTERRUPTED:
                    return self.resume_interrupted(job)
        with self._cv:
            active = self._target(job_id, "resumed")
            if active.abort_reason is not None:
                raise RunnerError(f"job {active.job_id} is being aborted")
            if active.state == JobState.PAUSED:
                active.commands.put("resume")
                return f"job {active.job_id} resumes"
            if active.pause_pending:
                active.pause_pending = False
                return f"job {active.job_id} was about to pause; the pause is cancelled"
            if active.pause_delivered:
                active.commands.put("resume")
                return f"job {active.job_id} resumes as soon as its pause takes effect"
            raise RunnerError(f"job {active.job_id} is running, not paused")

    def resume_interrupted(self, job: Job) -> str:
        """Queue an interrupted job again under its id (ledger: ``interrupted`` -> ``queued``).

        Its plan goes on from the first row its cube file does not hold, with the budget already
        spent counted (a job interrupted before it started starts afresh). The cube file is
        checked (and what a ``kill -9`` left in it recovered) here, so a job that cannot go on is
        refused at once with the reason; the beamline and the plan are built when the job's turn
        comes (in the worker thread, so the control thread stays responsive)."""
        job_id = job.job_id
        with self._cv:
            self._check_can_queue(job_id)
            self._resuming.add(job_id)
        try:
            current = self.ledger.get(job_id)
            if current.state != JobState.INTERRUPTED:
                raise RunnerError(f"job {job_id} is {current.state}; only interrupted jobs resume")
            try:
                request = ScanRequest.model_validate(current.request)
            except ValidationError as exc:
                raise RunnerError(
                    f"job {job_id} stays interrupted: its recorded request is not valid ({exc})"
                ) from None
            cube_file = Path(current.cube_file)
            fresh = current.started is None and not cube_file.exists()
            point = None
            if not fresh:
                try:
                    point = check_resumable(cube_file)
                except BuildError as exc:
                    raise RunnerError(
                        f"job {job_id} stays interrupted, it cannot resume: {exc}"
                    ) from None
            devices = self.devices
            speedup = request.speedup if devices is None else devices.speedup
            scan = PreparedScan(
                job_id=job_id,
                request=request,
                cube_file=cube_file,
                plan=_built_when_run(
                    request,
                    job_id,
                    cube_file,
                    resume=not fresh,
                    stage_options=self.stage_options,
                    devices=devices,
                ),
                beamline=SimpleNamespace(clock=SimpleNamespace(speedup=speedup)),
                passes=1 if request.mode == "raster" else request.passes,
                budget_s=float(request.budget),
                resumed=point,
                not_applicable=not_applicable(devices),
            )
            if point is None:
                how = "starts afresh (it was interrupted before it started)"
            else:
                how = (
                    f"goes on with pass {point.pass_number} ({point.rows_recorded} rows recorded, "
                    f"{point.budget_used_s:.4g} s of the {request.budget:g} s budget used"
                )
                if point.charged_rows:
                    how += f", {point.charged_s:.3g} s charged for a row recorded after it"
                how += ")"
            with self._cv:
                self._check_can_queue(job_id, resuming=True)
                try:
                    queued = self.ledger.requeue(job_id, note=f"resume: {how}")
                except ValueError as exc:  # somebody else changed it meanwhile
                    raise RunnerError(f"job {job_id} cannot resume: {exc}") from None
                self._queue.append(scan)
                position = len(self._queue)
                self._cv.notify_all()
        finally:
            with self._cv:
                self._resuming.discard(job_id)
        log.info("job %s: queued again; it %s", job_id, how)
        self.on_job(queued)
        return f"job {job_id} queued again ({position} waiting); it {how}"

    def _check_can_queue(self, job_id: str, resuming: bool = False) -> None:
        """Refuse to queue ``job_id`` again now (call with the lock held; ``resuming``: this
        thread is the one resuming it)."""
        if self._stopping:
            raise RunnerError("the daemon is shutting down; no new jobs")
        if not resuming and job_id in self._resuming:
            raise RunnerError(f"job {job_id} is already being resumed")
        if any(s.job_id == job_id for s in self._queue):
            raise RunnerError(f"job {job_id} is already queued")
        if self._active is not None and self._active.job_id == job_id:
            raise RunnerError(f"job {job_id} is already running")
        if len(self._queue) >= self.max_queue:
            raise RunnerError(
                f"the queue is full ({self.max_queue} jobs); wait or abort queued jobs"
            )

    def abort(self, job_id: str | None = None, reason: str = "aborted by the operator") -> str:
        """Abort the current job (every completed row stays in its file) or drop a queued one."""
        dropped = None
        with self._cv:
            if job_id is not None:
                for scan in self._queue:
                    if scan.job_id == job_id:
                        self._queue.remove(scan)
                        dropped = scan
                        break
            if dropped is None:
                active = self._target(job_id, "aborted")
                if active.abort_reason is not None:
                    return f"job {active.job_id} is already being aborted"
                hard = self._abort_active(active, reason)
        if dropped is None:
            if hard:
                self._hard_pause()
            return f"job {active.job_id} is being aborted"
        self._record_state(dropped.job_id, JobState.ABORTED, error=f"{reason} while queued")
        return f"job {dropped.job_id} removed from the queue"

    def _target(self, job_id: str | None, verb: str) -> _Active:
        """The current job, checked against ``job_id`` (call with the lock held)."""
        active = self._active
        if job_id is None:
            if active is None:
                raise RunnerError(f"no job is running; nothing to be {verb}")
            return active
        if active is not None and active.job_id == job_id:
            return active
        if any(s.job_id == job_id for s in self._queue):
            raise RunnerError(f"job {job_id} is queued, not running; it cannot be {verb}")
        job = self.ledger.find(job_id)
        if job is None:
            raise RunnerError(f"no job {job_id!r}")
        raise RunnerError(f"job {job_id} is {job.state}; it cannot be {verb}")

    def _abort_active(self, active: _Active, reason: str) -> bool:
        """Ask the worker to abort ``active`` (call with the lock held); ``True`` if the caller
        should then make the RunEngine pause at once (:meth:`_hard_pause`, without the lock:
        the RunEngine's thread takes it at checkpoints)."""
        active.abort_reason = reason
        active.commands.put("abort")
        if active.state == JobState.PAUSED:
            return False
        active.pause_pending = True  # in case the RunEngine is not running the plan yet
        return True

    def _hard_pause(self) -> None:
        RE = self.RE
        if RE is not None and RE.state == "running":
            try:
                RE.request_pause(defer=False)
            except Exception as exc:  # a TransitionError: it is pausing or finishing anyway
                log.debug("hard pause for abort refused: %s", exc)

    # -- the worker thread ----------------------------------------------------------------------
    def _work(self) -> None:
        try:
            from bluesky import RunEngine

            self.RE = RunEngine({}, context_managers=[], during_task=_Block())
            self.RE.subscribe(self._document)
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                scan = self._queue.popleft()
                clock = getattr(scan.beamline, "clock", None)
                tracker = JobProgress(
                    scan.job_id,
                    passes=scan.passes,
                    budget_s=scan.budget_s,
                    speedup=float(getattr(clock, "speedup", 1.0)),
                )
                if scan.resumed is not None:  # rows and budget of the run(s) before
                    _seed_progress(tracker, scan.resumed.rows_recorded)
                active = _Active(scan=scan, tracker=tracker)
                self._active = active
            try:
                self._run(active)
            except BaseException:
                log.exception("job %s: unexpected error in the runner", active.job_id)
            finally:
                with self._cv:
                    self._active = None
                    self._cv.notify_all()
                self.on_idle()

    def _run(self, active: _Active) -> None:
        self._set_state(active, JobState.RUNNING, note="started")
        log.info("job %s: started (%s)", active.job_id, active.scan.cube_file)
        error: str | None = None
        try:
            try:
                self.RE(self._wrap(active))
            except RunEngineInterrupted:
                self._while_paused(active)
        except Exception as exc:
            error = _describe_failure(exc)
            log.error("job %s: the plan failed: %s", active.job_id, error)
        if self.RE.state != "idle":
            log.error("job %s: the RunEngine is %s after the plan", active.job_id, self.RE.state)
        state, error = self._outcome(active, error)
        self._write_progress(active)
        self._set_state(active, state, error=error)
        log.info("job %s: %s%s", active.job_id, state, f" ({error})" if error else "")
        if state == JobState.COMPLETED and active.scan.request.analysis:
            self._analyse(active.job_id)

    def _outcome(self, active: _Active, error: str | None) -> tuple[JobState, str | None]:
        p = active.tracker.snapshot()
        if active.final_state is not None:
            return active.final_state, active.abort_reason
        if error is not None:
            return JobState.FAILED, error
        if p.exit_status == "success":
            return JobState.COMPLETED, None
        if p.exit_status == "abort" or active.abort_reason is not None:
            return JobState.ABORTED, active.abort_reason or p.reason or "aborted"
        if p.exit_status == "fail":
            return JobState.FAILED, p.reason or "the plan failed"
        return JobState.FAILED, "the plan ended without finishing its run"

    def _while_paused(self, active: _Active) -> None:
        """The plan is paused: wait for resume or abort (commands from the control thread)."""
        while self.RE.state == "paused":
            with self._cv:
                active.pause_delivered = False
                aborting = active.abort_reason is not None
                fault = active.fault
            if not aborting and fault is not None:
                why = f"device fault: {fault}; fix it, then resume the job"
                self._set_state(active, JobState.PAUSED, error=why, note=why)
                log.warning("job %s: paused by a %s", active.job_id, why)
            elif not aborting:
                self._set_state(active, JobState.PAUSED)
                log.info("job %s: paused", active.job_id)
            command = active.commands.get()
            try:
                if command == "resume" and active.abort_reason is None:
                    with self._cv:
                        active.fault = None
                    self._set_state(
                        active, JobState.RUNNING, note="resumed", error="" if fault else None
                    )
                    log.info("job %s: resumed", active.job_id)
                    self.RE.resume()
                else:
                    self.RE.abort(reason=active.abort_reason or "aborted")
            except RunEngineInterrupted:
                continue

    def _wrap(self, active: _Active):
        """The job's plan, with a deferred pause put before a checkpoint when one is asked, and
        the fly rows and device staging guarded against device faults (:meth:`_guard`)."""
        import bluesky.preprocessors as bpp

        def pause_then(msg: Msg):
            yield Msg("pause", defer=True)
            return (yield msg)

        def mutate(msg: Msg):
            if id(msg) in active.own_msgs:
                return None, None
            if msg.command == "set" and msg.args and isinstance(msg.args[0], FlyRow):
                if msg.kwargs.get("group") is not None:
                    active.fly_groups.add(msg.kwargs["group"])
                return self._guard(active, msg), None
            if msg.command == "wait" and msg.kwargs.get("group") in active.fly_groups:
                return self._guard(active, msg), None
            if msg.command == "stage":
                return self._guard(active, msg), None
            if msg.command != "checkpoint":
                return None, None
            with self._cv:
                if not active.pause_pending:
                    return None, None
                active.pause_pending = False
                active.pause_delivered = True
            return pause_then(msg), None

        return bpp.plan_mutator(active.scan.plan, mutate)

    def _guard(self, active: _Active, msg: Msg):
        """``msg`` (a fly row's ``set`` or ``wait``, or staging a device); a device fault it
        raises pauses the RunEngine at once instead of failing the plan.

        On resume the RunEngine replays what the plan did since the row's checkpoint (the row's
        ``set`` and ``wait``), so the row flies again; ``stage`` is not replayed, so it is sent
        again here. A fault in the replay lands here too and pauses again."""
        replayed = msg.command in ("set", "wait")
        try:
            return (yield msg)
        except Exception as exc:
            fault = self._fault_to_pause(active, exc)
        if msg.command == "set" and msg.kwargs.get("group") is not None:
            # the row failed before the plan waited for it: take its failed status out of the
            # group (the replay's own wait then waits only for the row flown again)
            drain = Msg("wait", None, group=msg.kwargs["group"])
            active.own_msgs.add(id(drain))
            try:
                yield drain
            except Exception:  # noqa: BLE001 - the failure is the fault already caught
                pass
        while True:
            with self._cv:
                active.fault = fault
            pause = Msg("pause", defer=False)
            active.own_msgs.add(id(pause))
            try:
                yield pause
                if replayed:
                    return None
                return (yield msg)
            except Exception as exc:
                fault = self._fault_to_pause(active, exc)

    def _fault_to_pause(self, active: _Active, exc: Exception) -> DeviceFault:
        """The device fault in ``exc`` if the job should pause for it; else ``exc`` again."""
        fault = find_device_fault(exc)
        with self._cv:
            aborting = active.abort_reason is not None or self._stopping
        if fault is None or aborting:
            raise exc
        log.debug("job %s: device fault: %s", active.job_id, fault)
        return fault

    def _analyse(self, job_id: str) -> None:
        if self.analysis is None:
            log.warning("job %s: analysis was asked for, but no analysis is wired yet", job_id)
            return
        try:
            self.analysis(self.ledger.get(job_id))
        except Exception:
            log.exception("job %s: the analysis failed", job_id)

    # -- documents (the RunEngine's thread) -------------------------------------------------------
    def _document(self, name: str, doc: dict) -> None:
        try:
            self.on_document(name, doc)
        except Exception:
            log.exception("publishing a %s document failed", name)
        active = self._active
        if active is None:
            return
        try:
            what = active.tracker(name, doc)
        except Exception:
            log.exception("job %s: cannot read progress from a %s document", active.job_id, name)
            return
        if what is None:
            return
        now = time.monotonic()
        always = what != "row"
        if always or now - active.last_ledger_write >= LEDGER_PROGRESS_INTERVAL_S:
            active.last_ledger_write = now
            self._write_progress(active)
        if always or now - active.last_progress_event >= self.progress_interval:
            active.last_progress_event = now
            try:
                self.on_progress(active.tracker.snapshot())
            except Exception:
                log.exception("publishing progress failed")

    def _write_progress(self, active: _Active) -> None:
        p = active.tracker.snapshot()
        fields = p.model_dump(include=set(ScanProgressFields.model_fields))
        if p.cube_file:
            fields["cube_file"] = p.cube_file
        try:
            self.ledger.update(active.job_id, **fields)
        except Exception:
            log.exception("job %s: cannot write progress to the ledger", active.job_id)

    # -- state changes ----------------------------------------------------------------------------
    def _set_state(
        self, active: _Active, state: JobState, *, error: str | None = None, note: str = ""
    ) -> None:
        with self._cv:
            if active.state == state:
                return
            active.state = state
        self._record_state(active.job_id, state, error=error, note=note)

    def _record_state(
        self, job_id: str, state: JobState, *, error: str | None = None, note: str = ""
    ) -> None:
        try:
            job = self.ledger.set_state(job_id, state, error=error, note=note)
        except Exception:
            log.exception("job %s: cannot record the state %s", job_id, state)
            return
        try:
            self.on_job(job)
        except Exception:
            log.exception("publishing the state of job %s failed", job_id)


def _built_when_run(
    request: ScanRequest,
    job_id: str,
    cube_file: Path,
    *,
    resume: bool,
    stage_options: dict[str, Any] | None = None,
    devices: Any = None,
):
    """The plan of a job queued again: its beamline and plan are built when the RunEngine starts
    it (a refusal then fails the job with the reason)."""
    scan = build_scan(
        request,
        cube_file.parent,
        job_id=job_id,
        allow_scene_files=True,  # the request was accepted when it was submitted
        resume=resume,
        cube_file=cube_file,
        stage_options=stage_options,
        devices=devices,
    )
    return (yield from scan.plan)


def _describe_failure(exc: BaseException) -> str:
    """``Type: message`` of what failed a plan; for a failed device status, what failed it (a
    ``FailedStatus`` says only which status)."""
    while type(exc).__name__ == "FailedStatus" and exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


def _seed_progress(tracker: JobProgress, rows_recorded: int) -> None:
    """A resumed job's progress counts the rows its earlier run(s) recorded."""
    with tracker._lock:
        tracker._p.rows_done_all = int(rows_recorded)
