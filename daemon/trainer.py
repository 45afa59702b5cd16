"""The trainer between passes in a separate process: a hang, a CUDA error, an out-of-memory or a
crash of the dwell policy cannot take the daemon down.

>>> trainer = TrainerProcess().start()          # spawns the warm worker, returns at once
>>> with compute_backend(trainer):              # AllocationJobs started inside run there
...     RE(adaptive_scan(...))
>>> trainer.close()

:class:`TrainerProcess` is a compute backend of :mod:`dwellwise.planners.between_passes`. It keeps
one warm worker process (start method ``spawn``: the daemon has threads and ZeroMQ sockets, so it
never forks itself) that imports ``dwellwise.planners`` and ``torch`` (and sets up CUDA when
there is one) once, at start-up, then answers ``allocate_dwell`` requests one at a time over a
pipe: counts, live time, policy and options in; the dwell map, the training device and the
training seconds (from the worker's own training report) out.

One supervisor thread owns the worker. For each request it waits until the worker is warm (a
request that comes before counts that wait against its deadline), sends it with the time left
(less :data:`RETURN_MARGIN_S` for the way back), and waits for the answer. If the worker dies
(CUDA error, OOM killer, segfault, ``os._exit``) the request's future fails at once; at the
deadline it fails too: either way the fallback answers. A worker still busy ``kill_grace_s``
seconds after the deadline is terminated (SIGTERM, then SIGKILL) and a fresh one starts warming up
for the next job; one that answers late within the grace stays (it is slow, not hung, and warm).
A worker whose policy raised a CUDA error (not an out-of-memory) is replaced as well, its CUDA
context being unusable afterwards. The daemon never waits on the worker: the plan waits on the
future with its own deadline, and the supervisor's bookkeeping happens in its own thread.

The worker is a fresh interpreter (``spawn``), so, as with any ``spawn`` process, a script that
starts a daemon must do so under ``if __name__ == "__main__":`` (``dwellwise serve``, ``dwellwise
demo``, IPython and pytest need nothing).

Test policies (``DWELLWISE_TEST_POLICIES=1`` in the worker's environment, see
:func:`register_test_policies`) hang, crash, raise or allocate too much on demand; they answer
only inside a trainer worker, never in the daemon's own process.
"""

from __future__ import annotations

import faulthandler
import importlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the daemon imports this module early: the planners (and torch) load later
    from dwellwise.planners.between_passes import PolicyRequest

log = logging.getLogger(__name__)

TEST_POLICIES_ENV = "DWELLWISE_TEST_POLICIES"
"""Environment variable: ``1`` registers :func:`register_test_policies` in the worker."""
RETURN_MARGIN_S = 0.05
"""Wall seconds of the deadline kept for sending the answer back (the policy gets the rest)."""
_IDLE_POLL_S = 0.1
"""How often an idle supervisor looks at its worker (started? died?)."""
_MAX_BACKOFF_S = 60.0
"""Longest wait before another start after workers failed to start one after another."""

_in_worker = False
"""True inside a trainer worker process."""


class TrainerError(RuntimeError):
    """The trainer process could not answer a request; the message says why."""


class TrainerProcess:
    """A compute backend that runs dwell policies in one warm worker process.

    ``modules``: dotted names the worker imports at start-up after ``dwellwise.planners`` (to
    register more policies there). ``start_method``: ``spawn`` (default) or ``forkserver``, never
    ``fork``. ``startup_timeout_s``: a worker not warm by then is killed and replaced.
    ``kill_grace_s``: how long past a request's deadline a worker may still be busy before it is
    killed (its answer is then too late for the job, but a slow worker is kept warm). ``warm_cuda``: create the CUDA context at start-up (when there is a GPU), so the first
    training does not pay for it inside its deadline.
    """

    name = "process"

    def __init__(
        self,
        *,
        modules: Sequence[str] = (),
        start_method: str = "spawn",
        startup_timeout_s: float = 180.0,
        kill_grace_s: float = 2.0,
        warm_cuda: bool = True,
    ) -> None:
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be 'spawn' or 'forkserver', got {start_method!r}")
        self.modules = tuple(modules)
        self.startup_timeout_s = float(startup_timeout_s)
        self.kill_grace_s = float(kill_grace_s)
        self.warm_cuda = bool(warm_cuda)
        self._ctx = multiprocessing.get_context(start_method)
        self._requests: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._ids = itertools.count(1)
        # the worker; only the supervisor thread touches the process and the pipe
        self._proc: Any = None
        self._conn: Any = None
        self._spawned_at = 0.0
        self._start_failures = 0
        self._next_spawn = 0.0
        # what state() reports (under the lock)
        self._state = "stopped"
        self._info: dict[str, Any] = {}
        self._restarts = 0
        self._served = 0
        self._failed = 0
        self._last_failure: str | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> TrainerProcess:
        """Start the supervisor, which spawns the worker; returns at once."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the trainer process was closed")
            if self._thread is not None:
                return self
            self._state = "starting"
            self._thread = threading.Thread(
                target=self._supervise, name="dwellwise-trainer", daemon=True
            )
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker and the supervisor (at most about ``timeout`` seconds); requests not
        answered yet fail."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._ready.notify_all()
        self._requests.put(None)
        if self._state_is("busy") or self._state_is("starting"):  # no one waits for its answer:
            _kill(self._proc, wait=False)  # the supervisor sees it end and stops at once
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():  # the supervisor is stuck: take the worker down from here
                log.warning(
                    "trainer supervisor did not stop in %.1f s; killing the worker", timeout
                )
                _kill(self._proc, wait=False)
        self._fail_waiting("the trainer process was closed")
        with self._lock:
            self._state = "stopped"

    def __enter__(self) -> TrainerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until a worker is warm (``True``) or ``timeout`` seconds pass (``False``)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while self._state not in ("ready", "busy"):
                if self._closed:
                    return False
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._ready.wait(left if left is not None else 1.0)
            return True

    def state(self) -> dict[str, Any]:
        """What the daemon's ``status`` reports: ``state`` (``starting``, ``ready``, ``busy``,
        ``stopped``), the worker's ``pid``, ``device`` and ``device_name``, ``startup_s``,
        ``restarts``, ``served``, ``failed`` and ``last_failure``."""
        with self._lock:
            return {
                "state": self._state,
                "pid": self._info.get("pid"),
                "device": self._info.get("device"),
                "device_name": self._info.get("device_name"),
                "startup_s": self._info.get("startup_s"),
                "restarts": self._restarts,
                "served": self._served,
                "failed": self._failed,
                "last_failure": self._last_failure,
            }

    # -- the backend interface ------------------------------------------------------------------
    def submit(self, request: PolicyRequest) -> Future:
        """Queue ``request``; the future gets a :class:`PolicyAnswer` or a :class:`TrainerError`."""
        future: Future = Future()
        with self._lock:
            closed = self._closed
        if closed:
            future.set_exception(TrainerError("the trainer process is closed"))
            return future
        if self._thread is None:
            self.start()
        self._requests.put((request, future))
        return future

    # -- the supervisor thread ------------------------------------------------------------------
    def _supervise(self) -> None:
        try:
            while True:
                if self._proc is None and time.monotonic() >= self._next_spawn:
                    self._spawn()
                try:
                    item = self._requests.get(timeout=_IDLE_POLL_S)
                except queue.Empty:
                    self._tend()
                    continue
                if item is None:
                    break
                self._serve(*item)
        except BaseException:
            log.exception("the trainer supervisor failed")
        finally:
            self._stop_worker()
            self._fail_waiting("the trainer process was closed")
            with self._lock:
                self._state = "stopped"
                self._ready.notify_all()

    def _spawn(self) -> None:
        if self._closed:
            return
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self.modules, self.warm_cuda),
            name="dwellwise-trainer-worker",
            daemon=True,
        )
        try:
            proc.start()
        except Exception as exc:
            parent.close()
            child.close()
            self._note_start_failure(f"cannot start the worker: {exc}")
            return
        child.close()
        self._proc, self._conn = proc, parent
        self._spawned_at = time.monotonic()
        with self._lock:
            self._state = "starting"
            self._info = {"pid": proc.pid}
        log.info("trainer worker %d starting", proc.pid)

    def _note_start_failure(self, why: str) -> None:
        self._start_failures += 1
        backoff = min(2.0 ** (self._start_failures - 1), _MAX_BACKOFF_S)
        self._next_spawn = time.monotonic() + backoff
        with self._lock:
            self._last_failure = why
        log.error("trainer worker did not start (%s); next try in %.0f s", why, backoff)

    def _tend(self) -> None:
        """Between requests: take the worker's ready message, notice its death or a start-up
        that takes too long."""
        if self._proc is None:
            return
        if self._state_is("starting"):
            self._wait_ready(time.monotonic())
            return
        if not self._proc.is_alive() or self._conn_poll():
            why = self._death_note("while idle")
            self._recycle(why)

    def _state_is(self, state: str) -> bool:
        with self._lock:
            return self._state == state

    def _conn_poll(self) -> bool:
        try:
            return bool(self._conn.poll(0))
        except (OSError, EOFError):
            return True

    def _wait_ready(self, until: float) -> bool:
        """Wait (until ``until``, monotonic) for the starting worker's ready message; handles
        a failed or a too slow start. ``True`` once the worker is warm."""
        while True:
            if self._proc is None:
                if time.monotonic() >= self._next_spawn:
                    self._spawn()
                if self._proc is None:
                    return False
            if not self._state_is("starting"):
                return True
            now = time.monotonic()
            if now - self._spawned_at > self.startup_timeout_s:
                self._recycle(f"not warm after {self.startup_timeout_s:.0f} s", start=True)
                continue
            left = min(until, self._spawned_at + self.startup_timeout_s) - now
            ready = multiprocessing.connection.wait(
                [self._conn, self._proc.sentinel], timeout=max(0.0, left)
            )
            if self._conn in ready:
                try:
                    msg = self._conn.recv()
                except (EOFError, OSError):
                    self._recycle(self._death_note("while starting"), start=True)
                    continue
                if msg[0] == "ready":  # start-up counted from the spawn (imports included)
                    info = {**msg[1], "startup_s": time.monotonic() - self._spawned_at}
                    self._start_failures = 0
                    with self._ready:
                        self._state = "ready"
                        self._info = info
                        self._ready.notify_all()
                    log.info(
                        "trainer worker %d ready on %s (%s) in %.1f s",
                        info.get("pid"),
                        info.get("device"),
                        info.get("device_name"),
                        info.get("startup_s", 0.0),
                    )
                    return True
                self._recycle(f"start-up failed: {msg[1]}", start=True)
                continue
            if self._proc.sentinel in ready:
                self._recycle(self._death_note("while starting"), start=True)
                continue
            if time.monotonic() >= until:
                return False

    def _serve(self, request: PolicyRequest, future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        until = time.monotonic() + request.left_s()
        if not self._wait_ready(until):
            with self._lock:
                why = self._last_failure if self._proc is None else None
            waited = request.deadline_s - request.left_s()
            self._fail(
                future,
                f"the trainer process was not ready within the {request.deadline_s:.3g} s "
                f"deadline (waited {waited:.2f} s"
                + (f"; last failure: {why})" if why else "; still starting)"),
            )
            return
        left = request.left_s()
        if left <= 0:
            self._fail(future, f"no time left of the {request.deadline_s:.3g} s deadline")
            return
        job_id = next(self._ids)
        policy_deadline = max(0.0, left - RETURN_MARGIN_S)
        with self._lock:
            self._state = "busy"
        try:
            self._conn.send(("allocate", job_id, request, policy_deadline))
        except (OSError, EOFError) as exc:  # a broken pipe: the worker is gone
            note = self._death_note(f"on receiving the request ({exc})")
            self._fail(future, note)
            self._recycle(note)
            return
        except Exception as exc:  # the request itself cannot be sent (not picklable)
            self._set_state("ready")
            self._fail(future, f"cannot send the request to the trainer: {exc}")
            return
        deadline = time.monotonic() + request.left_s()
        give_up = deadline + self.kill_grace_s
        pid = self._proc.pid
        while True:
            now = time.monotonic()
            if now >= deadline and not future.done():  # the job falls back now; the worker
                self._fail(
                    future,
                    f"{request.policy} missed its {request.deadline_s:.3g} s "
                    f"deadline in trainer worker {pid}",
                    record=False,
                )
            if now >= give_up:
                self._recycle(
                    f"{request.policy} still busy {self.kill_grace_s:.3g} s after its "
                    f"{request.deadline_s:.3g} s deadline; worker {pid} killed"
                )
                return
            ready = multiprocessing.connection.wait(
                [self._conn, self._proc.sentinel],
                timeout=max(0.0, (deadline if now < deadline else give_up) - now),
            )
            if self._conn in ready:
                try:
                    msg = self._conn.recv()
                except (EOFError, OSError):
                    note = self._death_note("during the request")
                    self._fail(future, note)
                    self._recycle(note)
                    return
                if msg[0] not in ("ok", "error") or msg[1] != job_id:
                    continue  # nothing else is sent while a request runs
                if msg[0] == "ok":
                    with self._lock:
                        self._served += 1
                        self._state = "ready"
                    if not future.done():
                        future.set_result(msg[2])
                    else:  # late: the fallback has answered; the worker stays, it is healthy
                        log.info(
                            "trainer worker %d answered %.2f s after the deadline",
                            pid,
                            time.monotonic() - deadline,
                        )
                    return
                _, _, text, fatal = msg
                self._fail(future, f"{request.policy} raised {text}", record=False)
                if fatal:
                    self._recycle(f"{text} (its CUDA context is lost)")
                else:
                    self._set_state("ready")
                return
            if self._proc.sentinel in ready and not self._conn_poll():
                note = self._death_note("during the request")
                self._fail(future, note)
                self._recycle(note)
                return

    def _set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def _fail(self, future: Future, why: str, record: bool = True) -> None:
        """Fail ``future`` (the fallback answers); ``record``: as the trainer's last failure."""
        with self._lock:
            self._failed += 1
            if record:
                self._last_failure = why
        if not future.done():
            future.set_exception(TrainerError(why))

    def _death_note(self, when: str) -> str:
        proc = self._proc
        proc.join(0.2)  # the exit code may lag the pipe's end by a moment
        code = proc.exitcode
        if code is None:
            how = "closed its pipe"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return f"trainer worker {proc.pid} {how} {when}"

    def _recycle(self, why: str, *, start: bool = False) -> None:
        """Kill the worker and let a fresh one start (now; after a back-off if ``start``)."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        if conn is not None:
            conn.close()
        if self._closed:  # closing: ended on purpose, nothing replaces it
            _kill(proc)
            return
        with self._lock:
            self._last_failure = why
            self._state = "starting"
            self._info = {}
            self._restarts += 1
        log.warning("trainer worker %s replaced: %s", getattr(proc, "pid", "?"), why)
        _kill(proc)
        if start:
            self._note_start_failure(why)
        else:
            self._next_spawn = 0.0
        if time.monotonic() >= self._next_spawn:
            self._spawn()

    def _stop_worker(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        if proc is None:
            return
        if self._state_is("ready"):  # an idle warm worker reads the stop at once; others do not
            try:
                conn.send(("stop",))
                proc.join(1.0)
            except Exception:
                pass
        conn.close()
        _kill(proc)

    def _fail_waiting(self, why: str) -> None:
        while True:
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                request, future = item
                if future.set_running_or_notify_cancel():
                    future.set_exception(TrainerError(why))


def _kill(proc: Any, wait: bool = True) -> None:
    """Terminate, then kill; waits at most about 2 s (not at all with ``wait=False``)."""
    if proc is None:
        return
    try:
        if proc.is_alive():
            proc.terminate()
            if wait:
                proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                if wait:
                    proc.join(1.0)
        if wait and not proc.is_alive():
            proc.close()
    except Exception:  # already reaped or closed
        pass


# -- the worker process -----------------------------------------------------------------------------
def _worker_main(conn: Any, modules: Sequence[str], warm_cuda: bool) -> None:
    """The worker: import, warm up, then answer requests until told to stop or the pipe ends."""
    global _in_worker
    _in_worker = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    faulthandler.enable()
    try:
        import dwellwise.planners  # noqa: F401  (registers every policy)
        from dwellwise.planners.between_passes import compute_policy

        for name in modules:
            importlib.import_module(name)
        if os.environ.get(TEST_POLICIES_ENV) == "1":
            register_test_policies()
        device, device_name = _warm_up(warm_cuda)
    except BaseException as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(
        (
            "ready",
            {
                "pid": os.getpid(),
                "device": device,
                "device_name": device_name,
            },
        )
    )
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return  # the daemon is gone
        if msg[0] != "allocate":
            return
        _, job_id, request, deadline = msg
        try:
            answer = compute_policy(request, deadline)
        except BaseException as exc:
            fatal = _is_fatal(exc)
            conn.send(("error", job_id, f"{type(exc).__name__}: {exc}", fatal))
            if fatal:
                os._exit(70)
            _release_gpu_memory()
            continue
        conn.send(("ok", job_id, answer))
        _release_gpu_memory()


def _warm_up(warm_cuda: bool) -> tuple[str, str]:
    """Import torch and create the CUDA context if there is a GPU; the device and its name."""
    try:
        import dwellwise.models.n2v  # noqa: F401
        import torch
    except ImportError as exc:
        return "cpu", f"torch unavailable ({exc}): closed-form policies only"
    if torch.cuda.is_available():
        if warm_cuda:
            torch.zeros(1, device="cuda").sum().item()
        return "cuda", torch.cuda.get_device_name(0)
    return "cpu", f"{os.cpu_count()} CPU threads"


def _is_fatal(exc: BaseException) -> bool:
    """Whether the worker must go after ``exc``: a CUDA error other than an out-of-memory leaves
    the CUDA context unusable."""
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return False
    text = str(exc)
    return any(m in text for m in ("CUDA error", "CUBLAS_STATUS", "cuDNN error", "CUDNN_STATUS"))


def _release_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:
        pass


# -- test policies ------------------------------------------------------------------------------
TEST_POLICIES = {
    "trainer-test-ok": "answers uniform (after options['sleep_s'] seconds, default 0)",
    "trainer-test-hang": "never answers",
    "trainer-test-exit": "ends the worker with os._exit(options['code'], default 1)",
    "trainer-test-segfault": "crashes the worker with a segmentation fault",
    "trainer-test-raise": "raises ValueError",
    "trainer-test-oom": "a CUDA out-of-memory (a real one on a GPU, else raised)",
    "trainer-test-cuda-error": "a CUDA error (a device-side assert on a GPU, else raised)",
}
"""Names and behaviour of the test policies (only answered inside a trainer worker)."""


def register_test_policies() -> None:
    """Register the ``trainer-test-*`` policies. They act only inside a trainer worker; in any
    other process they raise (so a thread backend falls back instead of hanging or exiting)."""
    from dwellwise.planners.policies import register

    for name, summary in TEST_POLICIES.items():
        register(name, f"test only: {summary}")(_make_test_policy(name))


def _make_test_policy(name: str):
    behaviour = name.removeprefix("trainer-test-")

    def policy(problem: Any) -> np.ndarray:
        if not _in_worker:
            raise RuntimeError(f"{name} runs only inside a trainer worker process")
        opts = problem.options
        if behaviour == "ok":
            time.sleep(float(opts.get("sleep_s", 0.0)))
            return np.full(problem.t0.shape, problem.mean_dwell)
        if behaviour == "hang":
            threading.Event().wait()
        if behaviour == "exit":
            os._exit(int(opts.get("code", 1)))
        if behaviour == "segfault":
            import ctypes

            ctypes.string_at(0)
        if behaviour == "raise":
            raise ValueError("trainer-test-raise: as asked")
        import torch

        if behaviour == "oom":
            if torch.cuda.is_available():
                torch.empty(1 << 50, dtype=torch.uint8, device="cuda")  # a petabyte
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated: no GPU)")
        if behaviour == "cuda-error":
            if torch.cuda.is_available():
                x = torch.zeros(4, device="cuda")
                x[torch.tensor([10], device="cuda")] = 1.0  # device-side assert
                torch.cuda.synchronize()
            raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)")
        raise AssertionError(behaviour)

    policy.__name__ = name.replace("-", "_")
    return policy
