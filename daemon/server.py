"""The acquisition daemon: control socket, event and document sockets, job queue, ledger.

>>> daemon = Daemon(DaemonConfig()).start()   # binds, starts its threads, returns at once
>>> daemon.addresses                           # what was bound (port 0 -> a free port)
>>> daemon.serve_forever()                     # blocks until ``shutdown`` or SIGTERM/SIGINT

Threads: the control thread owns the ROUTER socket (it speaks the REQ/REP wire shape, so a plain
REQ client works, yet a client that never reads its reply cannot wedge it) and answers every
request itself, except ``submit``, whose beamline and plan are built in a helper thread and
answered when ready, so ``status`` stays fast meanwhile. The runner thread hosts the RunEngine
(:mod:`dwellwise.daemon.runner`); the broadcaster thread owns both PUB sockets
(:mod:`dwellwise.daemon.publish`). The dwell policies between passes run in a warm worker process
(:mod:`dwellwise.daemon.trainer`), so a hang, a CUDA error or an out-of-memory there costs a job
one fallback answer, never the daemon.

Security (:mod:`dwellwise.daemon.keys`): with ``[security] server_secret_key`` configured, all three
sockets are CURVE servers and pyzmq's authenticator (a thread of its own) admits only the keys of
the allow-list; the control thread reads each request's ``User-Id`` (``ROLE:NAME``) and refuses a
method the role may not call. Without keys the daemon binds to loopback only, unless
``insecure``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq
from dwellwise.daemon.addresses import bind, check_bind
from dwellwise.daemon.analysis import CubeAnalysis
from dwellwise.daemon.build import BuildError, build_scan, check_request
from dwellwise.daemon.config import DaemonConfig, SecuritySection
from dwellwise.daemon.devices import Devices, DevicesUnavailable
from dwellwise.daemon.keys import (
    AllowedClient,
    AllowListAuthenticator,
    KeysError,
    ServerKeys,
    merge_allow_lists,
    parse_user_id,
    read_allow_list,
    refusal,
    role_allows,
)
from dwellwise.daemon.ledger import Ledger
from dwellwise.daemon.protocol import (
    MAX_REQUEST_BYTES,
    METHODS,
    Job,
    RequestError,
    ScanRequest,
    encode,
    error_reply,
    ok_reply,
    parse_request,
)
from dwellwise.daemon.publish import Broadcaster, EventLogHandler
from dwellwise.daemon.runner import Runner, RunnerError
from dwellwise.daemon.trainer import TrainerProcess
from pydantic import BaseModel

log = logging.getLogger(__name__)

HARD_MAX_MESSAGE_BYTES = 16 * MAX_REQUEST_BYTES
"""Messages larger than this are dropped by ZeroMQ before they reach the daemon (the peer is
disconnected); between :data:`MAX_REQUEST_BYTES` and this they get an error reply."""
POLL_MS = 200
"""Longest the control thread sleeps before it looks at the stop flag."""


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stdout in a form journald keeps: level names, no colours; no timestamps under
    systemd (journald adds its own)."""
    under_systemd = bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_systemd:
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_no_abort_tracebacks)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level > logging.DEBUG:  # the RunEngine's state changes are the daemon's to tell
        logging.getLogger("bluesky").setLevel(logging.WARNING)


def _no_abort_tracebacks(record: logging.LogRecord) -> bool:
    """Bluesky logs an operator's abort as an error with a traceback; keep one line of it."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and type(exc).__name__ in ("RequestAbort", "RequestStop"):
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def compute_device() -> dict[str, str]:
    """Where learned dwell policies train: ``{"device": "cuda" | "cpu", "name": ...}``."""
    try:
        import torch

        if torch.cuda.is_available():
            return {"device": "cuda", "name": torch.cuda.get_device_name(0)}
        return {"device": "cpu", "name": f"{os.cpu_count()} CPU threads"}
    except Exception as exc:  # no torch or a broken CUDA: the CPU still works
        return {"device": "cpu", "name": f"torch unavailable ({exc})"}


def load_security(security: SecuritySection) -> tuple[ServerKeys, dict[bytes, AllowedClient]]:
    """The server key pair and the allow-list (file and inline entries) of a ``[security]``
    section that has keys; :class:`~dwellwise.daemon.keys.KeysError` names what is wrong."""
    if security.server_secret_key is None:
        raise KeysError("no server_secret_key configured")
    keys = ServerKeys.load(security.server_secret_key)
    listed = read_allow_list(security.allow_list) if security.allow_list is not None else []
    allowed = merge_allow_lists(listed, security.inline_clients())
    if not allowed:
        raise KeysError(
            f"the allow-list {security.allow_list} names no client: no one could connect "
            "(dwellwise keygen DIR --client NAME:ROLE adds one)"
        )
    return keys, allowed


class Daemon:
    """The long-running acquisition service."""

    def __init__(
        self, config: DaemonConfig | None = None, *, trainer: TrainerProcess | bool = True
    ) -> None:
        """``trainer``: the compute backend of the dwell policies between passes: ``True`` (a
        :class:`~dwellwise.daemon.trainer.TrainerProcess` of the daemon's own), one given, or
        ``False`` (threads of this process, as outside the daemon)."""
        self.config = config or DaemonConfig()
        self.trainer: TrainerProcess | None = (
            TrainerProcess() if trainer is True else (trainer or None)
        )
        self.data_dir = Path(self.config.daemon.data_dir)
        self.addresses: dict[str, str] = {}
        """Addresses bound: ``control``, ``events``, ``documents``."""
        self.ledger: Ledger | None = None
        self.runner: Runner | None = None
        self.devices: Devices | None = None
        """The real devices of ``[devices]`` (opened at start, closed at shutdown), or ``None``:
        every job simulates its own beamline."""
        self.compute: dict[str, str] = {}
        self.started_at = 0.0
        self._stop = threading.Event()
        self._done = threading.Event()
        self._ctx: zmq.Context | None = None
        self._control: zmq.Socket | None = None
        self._replies: zmq.Socket | None = None
        self._reply_address = f"inproc://dwellwise-replies-{id(self):x}"
        self._push = threading.local()
        self._broadcaster: Broadcaster | None = None
        self._log_handler: EventLogHandler | None = None
        self._log_level = logging.NOTSET
        self._refused = 0
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._server_keys: ServerKeys | None = None
        self._allowed: dict[bytes, AllowedClient] = {}
        """Allowed client keys (Z85) -> their entries; empty without keys."""
        self._auth: AllowListAuthenticator | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> Daemon:
        """Check the addresses, open the ledger, bind the sockets, start the threads."""
        if self._thread is not None:
            raise RuntimeError("the daemon is already started")
        cfg = self.config.daemon
        secure = self.config.security.enabled
        if secure:
            self._server_keys, self._allowed = load_security(self.config.security)
        for what in ("control", "events", "documents"):
            check_bind(getattr(cfg, what), insecure=cfg.insecure, what=what, secure=secure)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.data_dir)
        for job_id in self.ledger.recovered:
            log.warning("job %s was left unfinished by a previous daemon: now interrupted", job_id)
        self.compute = compute_device()
        self._ctx = zmq.Context()
        try:
            if secure:  # the ZAP handler must be there before a socket binds
                self._auth = AllowListAuthenticator(self._ctx, self._allowed)
                self._auth.start()
            self._bind_sockets()
        except BaseException:
            if self._auth is not None:
                self._auth.stop()
            self._ctx.destroy(linger=0)
            self.ledger.close()
            raise
        self._broadcaster = Broadcaster(self._events_sock, self._documents_sock)
        self._broadcaster.start()
        self._log_handler = EventLogHandler(self._broadcaster)
        package_log = logging.getLogger("dwellwise")
        package_log.addHandler(self._log_handler)
        self._log_level = package_log.level
        if package_log.getEffectiveLevel() > logging.INFO:  # the log topic carries INFO and up
            package_log.setLevel(logging.INFO)
        if self.trainer is not None:  # warms up in the background while the daemon serves
            from dwellwise.planners.between_passes import install_compute_backend

            install_compute_backend(self.trainer.start())
        self.runner = Runner(
            self.ledger,
            on_document=self._broadcaster.document,
            on_job=self._job_changed,
            on_progress=self._progress,
            on_idle=self.publish_status,
            progress_interval=cfg.progress_interval,
            max_queue=cfg.max_queue,
        )
        self.runner.stage_options = self.config.beamline.stage_options()
        self.runner.analysis = CubeAnalysis()
        if self.config.devices.hardware:
            self.devices = Devices(self.config.devices, self.config.beamline)
            self.runner.devices = self.devices
            try:
                self.devices.open()
            except DevicesUnavailable as exc:  # keep serving: status says why, submit retries
                log.error("%s; jobs are refused until it answers (each submit tries again)", exc)
        try:
            self.runner.start()
        except BaseException:
            self._close_trainer()
            self._close_devices()
            raise
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dwellwise-submit")
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._serve, name="dwellwise-control", daemon=True)
        self._thread.start()
        log.info(
            "dwellwise daemon serving: control %s, events %s, documents %s, data %s, compute %s",
            self.addresses["control"],
            self.addresses["events"],
            self.addresses["documents"],
            self.data_dir,
            self.compute["device"],
        )
        self._log_security()
        self.publish_status()
        return self

    def _log_security(self) -> None:
        if self._auth is None:
            if not self.config.daemon.insecure:
                log.info("security: no keys; listening on loopback only")
            return
        roles = {}
        for entry in self._allowed.values():
            roles.setdefault(entry.role, []).append(entry.name)
        log.info(
            "security: CURVE on all sockets; %d client(s) allowed: %s",
            len(self._allowed),
            "; ".join(
                f"{role} {', '.join(sorted(names))}" for role, names in sorted(roles.items())
            ),
        )
        if self.config.daemon.insecure:
            log.info("insecure has no effect: keys are configured, every socket is encrypted")

    def _bind_sockets(self) -> None:
        cfg = self.config.daemon
        ctx = self._ctx
        keys = self._server_keys
        control = ctx.socket(zmq.ROUTER)
        control.setsockopt(zmq.LINGER, 500)
        control.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE_BYTES)
        control.setsockopt(zmq.SNDHWM, 1000)
        control.setsockopt(zmq.RCVHWM, 1000)
        if keys is not None:
            keys.apply(control)
        self.addresses["control"] = bind(control, cfg.control)
        self._control = control
        self._events_sock = self._bind_pub(ctx, "events", cfg.events, hwm=10_000)
        self._documents_sock = self._bind_pub(ctx, "documents", cfg.documents, hwm=100_000)
        replies = ctx.socket(zmq.PULL)
        replies.bind(self._reply_address)
        self._replies = replies

    def _bind_pub(self, ctx, name: str, address: str, *, hwm: int):
        """A PUB socket (CURVE when keys are configured) bound to ``address``."""
        sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, hwm)
        if self._server_keys is not None:
            self._server_keys.apply(sock)
        self.addresses[name] = bind(sock, address)
        return sock

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``shutdown``; SIGTERM and SIGINT shut down too."""
        if self._thread is None:
            self.start()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, frame: self.request_shutdown(f"signal {signum}"))
        while not self._done.wait(0.5):
            pass

    def request_shutdown(self, why: str = "requested") -> None:
        """Ask the daemon to stop (any thread, a signal handler included); returns at once."""
        if not self._stop.is_set():
            log.info("shutting down (%s)", why)
        self._stop.set()

    def close(self, timeout: float = 60.0) -> None:
        """Shut down and wait until everything is closed."""
        self.request_shutdown("closed")
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the daemon to finish shutting down; ``True`` if it did."""
        return self._done.wait(timeout)

    def __enter__(self) -> Daemon:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the control thread -------------------------------------------------------------------------
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._control, zmq.POLLIN)
        poller.register(self._replies, zmq.POLLIN)
        interval = self.config.daemon.status_interval
        next_beat = time.monotonic() + interval
        try:
            while not self._stop.is_set():
                wait_ms = max(0, min(POLL_MS, int((next_beat - time.monotonic()) * 1000)))
                ready = dict(poller.poll(wait_ms))
                if self._replies in ready:
                    self._send_deferred()
                if self._control in ready:
                    self._receive()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + interval
                    self.publish_status()
                    if self._refused:  # one line, however many there were
                        log.info(
                            "refused %d malformed request(s) since the last report", self._refused
                        )
                        self._refused = 0
        except Exception:
            log.exception("the control loop failed; shutting down")
        finally:
            self._teardown()

    def _receive(self) -> None:
        """Answer every request waiting (a bounded number, so deferred replies are not starved)."""
        secure = self._auth is not None
        for _ in range(100):
            caller = None
            try:
                # with keys, frames (not bytes) to read the User-Id the authenticator set
                frames = self._control.recv_multipart(zmq.NOBLOCK, copy=not secure)
            except zmq.Again:
                return
            if secure:
                caller = _user_id(frames[-1]) if frames else None
                frames = [f.bytes for f in frames]
            envelope, body = _split_envelope(frames)
            if envelope is None:
                continue  # nothing to route a reply to
            if len(body) != 1:
                self._reply(
                    envelope, error_reply(f"a request is one frame of JSON, got {len(body)} frames")
                )
                continue
            self._answer(envelope, body[0], caller)
            if self._stop.is_set():
                return

    def _answer(self, envelope: list[bytes], raw: bytes, caller: str | None = None) -> None:
        """Answer one request; ``caller`` is its User-Id (``ROLE:NAME``) when keys are on."""
        secure = self._auth is not None
        role, name = parse_user_id(caller)
        if secure and role != "admin":  # the role first: no need to validate what is refused
            wanted = _peek_method(raw)
            if wanted is not None and not role_allows(role, wanted):
                self._deny(envelope, role, name, wanted)
                return
        try:
            method, params = parse_request(raw)
        except RequestError as exc:
            self._refused += 1
            log.debug("refused a request: %s", exc)
            self._reply(envelope, error_reply(str(exc)))
            return
        if secure and not role_allows(role, method):
            self._deny(envelope, role, name, method)
            return
        if method == "submit":
            self._executor.submit(self._submit_deferred, envelope, params)
            return
        try:
            if method == "ping":
                reply = ok_reply("pong", time=time.time(), client=name or None, role=role)
            else:
                reply = self._dispatch(method, params)
        except RunnerError as exc:
            reply = error_reply(str(exc))
        except Exception as exc:
            log.exception("%s failed", method)
            reply = error_reply(f"internal error in {method}: {type(exc).__name__}: {exc}")
        self._reply(envelope, reply)
        if method == "shutdown":
            self.request_shutdown("shutdown request")

    def _deny(self, envelope: list[bytes], role: str | None, name: str, method: str) -> None:
        msg = refusal(role or "none", name or "(unknown)", method)
        log.info("refused %s from %s (%s)", method, name or "an unknown client", role)
        self._reply(envelope, error_reply(msg))

    def _reply(self, envelope: list[bytes], reply: dict[str, Any]) -> None:
        try:
            data = encode(reply)
        except Exception as exc:  # should not happen: jsonable handles everything
            data = encode(error_reply(f"internal error: reply not serializable ({exc})"))
        try:
            self._control.send_multipart([*envelope, data], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or over its high-water mark: drop the reply
            log.debug("reply dropped: %s", exc)

    def _send_deferred(self) -> None:
        while True:
            try:
                frames = self._replies.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            n = int(frames[0])
            envelope, data = frames[1 : 1 + n], frames[1 + n]
            try:
                self._control.send_multipart([*envelope, data], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.debug("deferred reply dropped: %s", exc)

    def _teardown(self) -> None:
        log.info("stopping: closing the control socket")
        try:
            self._control.close(linger=500)
        except Exception:
            pass
        try:
            if self.runner is not None:
                self.runner.stop()
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
            self.publish_status(daemon_state="stopped")
            log.info("dwellwise daemon stopped")
        finally:
            self._close_trainer()  # the runner has stopped: no plan waits on it
            self._close_devices()
            if self._log_handler is not None:
                package_log = logging.getLogger("dwellwise")
                package_log.removeHandler(self._log_handler)
                package_log.setLevel(self._log_level)
            if self._broadcaster is not None:
                self._broadcaster.close()
            if self._auth is not None:
                try:
                    self._auth.stop()
                except Exception:
                    log.exception("cannot stop the authenticator")
            if self.ledger is not None:
                self.ledger.close()
            if self._ctx is not None:
                self._ctx.destroy(linger=0)
            self._done.set()

    def _close_devices(self) -> None:
        if self.devices is None:
            return
        try:
            self.devices.close()
        except Exception:
            log.exception("cannot close the devices")

    def _close_trainer(self) -> None:
        if self.trainer is None:
            return
        try:
            from dwellwise.planners.between_passes import remove_compute_backend

            remove_compute_backend(self.trainer)
            self.trainer.close()
        except Exception:
            log.exception("cannot stop the trainer process")

    # -- methods ---------------------------------------------------------------------------------
    def _dispatch(self, method: str, params: BaseModel) -> dict[str, Any]:
        runner = self.runner
        if method == "ping":
            return ok_reply("pong", time=time.time())
        if method == "status":
            return ok_reply("", **self.status())
        if method == "jobs":
            jobs = [self.job_view(job) for job in self.ledger.recent(params.limit)]
            return ok_reply(f"{len(jobs)} job(s)", jobs=jobs)
        if method == "job":
            job = self.ledger.find(params.job_id)
            if job is None:
                return error_reply(f"no job {params.job_id!r}")
            return ok_reply("", **self.job_view(job))
        if method == "pause":
            return ok_reply(runner.pause(params.job_id))
        if method == "resume":
            return ok_reply(runner.resume(params.job_id))
        if method == "abort":
            return ok_reply(runner.abort(params.job_id))
        if method == "shutdown":
            return ok_reply("shutting down")
        return error_reply(f"method {method!r} is not served")

    def _submit_deferred(self, envelope: list[bytes], request: ScanRequest) -> None:
        """Build and queue a job in the submit thread, then hand the reply to the control thread."""
        try:
            reply = self.submit(request)
        except Exception as exc:
            log.exception("submit failed")
            reply = error_reply(f"internal error in submit: {type(exc).__name__}: {exc}")
        push = getattr(self._push, "sock", None)
        if push is None:
            push = self._ctx.socket(zmq.PUSH)
            push.connect(self._reply_address)
            self._push.sock = push
        push.send_multipart([str(len(envelope)).encode(), *envelope, encode(reply)])

    def submit(self, request: ScanRequest) -> dict[str, Any]:
        """Build the scan of ``request`` and queue it; the reply of the ``submit`` method."""
        if self.runner.stopping:
            return error_reply("the daemon is shutting down; no new jobs")
        try:
            check_request(request, self.devices)  # what the client itself asked for
            request = self.config.defaults.apply(request)
            scan = build_scan(
                request,
                self.data_dir,
                allow_scene_files=self.config.beamline.allow_scene_files,
                stage_options=self.config.beamline.stage_options(),
                devices=self.devices,
            )
        except BuildError as exc:
            log.info("scan refused: %s", exc)
            return error_reply(str(exc))
        try:
            job = self.runner.enqueue(scan)
        except RunnerError as exc:
            return error_reply(str(exc))
        queued = self.runner.snapshot()["queue_length"]
        return ok_reply(
            f"job {job.job_id} queued ({queued} waiting)",
            job_id=job.job_id,
            cube_file=str(scan.cube_file),
        )

    def status(self, daemon_state: str | None = None) -> dict[str, Any]:
        """What the ``status`` method and event report."""
        runner = self.runner.snapshot() if self.runner else {"state": "starting"}
        current = runner.get("current_job")
        live = self.runner.live(current) if (self.runner and current) else None
        cfg = self.config
        return {
            "daemon": daemon_state or ("stopping" if self._stop.is_set() else "running"),
            **runner,
            "progress": None if live is None else live.model_dump(),
            "devices": (
                self.devices.describe()
                if self.devices is not None
                else {
                    "beamline": cfg.beamline.kind,
                    "stage": "simulated X/Y fly-scan stage",
                    "detector": "simulated silicon drift detector",
                }
            ),
            "compute": self.compute,
            "trainer": None if self.trainer is None else self.trainer.state(),
            "addresses": dict(self.addresses),
            "data_dir": str(self.data_dir.resolve()),
            "insecure": cfg.daemon.insecure and self._auth is None,
            "security": {
                "curve": self._auth is not None,
                "clients": len(self._allowed),
            },
            "pid": os.getpid(),
            "uptime_s": time.time() - self.started_at if self.started_at else 0.0,
        }

    def job_view(self, job: Job) -> dict[str, Any]:
        """A job as the ``job`` and ``jobs`` methods report it (live progress merged in)."""
        view = job.model_dump()
        view["eta_s"] = None
        view["count_rate"] = None
        live = self.runner.live(job.job_id) if self.runner else None
        if live is not None:
            fresh = live.model_dump(exclude={"job_id", "time", "exit_status", "reason"})
            view.update({k: v for k, v in fresh.items() if v is not None})
        return view

    # -- events ----------------------------------------------------------------------------------------
    def publish_status(self, daemon_state: str | None = None) -> None:
        if self._broadcaster is not None:
            try:
                self._broadcaster.event("status", self.status(daemon_state))
            except Exception:
                log.exception("cannot publish the status")

    def _job_changed(self, job: Job) -> None:
        self._broadcaster.event("job", job.model_dump())
        self.publish_status()

    def _progress(self, progress: BaseModel) -> None:
        self._broadcaster.event("progress", progress.model_dump())


def _user_id(frame: zmq.Frame) -> str | None:
    """The ZAP user id of the connection ``frame`` came in on (``None`` if there is none)."""
    try:
        value = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _peek_method(raw: bytes) -> str | None:
    """The method a request names, if it is a known one (for the role check before parsing)."""
    if len(raw) > MAX_REQUEST_BYTES:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    method = obj.get("method") if isinstance(obj, dict) else None
    return method if isinstance(method, str) and method in METHODS else None


def _split_envelope(frames: list[bytes]) -> tuple[list[bytes] | None, list[bytes]]:
    """ROUTER frames -> (routing envelope with its empty delimiter, body frames).

    A REQ peer sends ``[id, b"", body]``; a DEALER that leaves out the delimiter ``[id, body]``
    (answered the same way, without one)."""
    if not frames:
        return None, []
    for i in range(1, len(frames)):
        if frames[i] == b"":
            return frames[: i + 1], frames[i + 1 :]
    return frames[:1], frames[1:]
