"""One serial line to a chain of Zaber devices: requests with message ids, alerts, reconnects.

A reader thread reads every line the devices send and files it: replies by message id, alerts in
order of arrival (stamped with the instrument clock), anything that does not parse as garbled.
:meth:`ZaberLink.request` sends one command and waits for the reply carrying its id; stale or
unexpected replies (from a command that timed out earlier) are dropped, so the conversation
re-synchronises on ids by itself. :meth:`ZaberLink.request_batch` pipelines several commands
(a window of them in flight at once), which is how a fly row's stream segments are sent.

On a timeout the port is closed and opened again (a USB adapter that went away and came back
under the same name) and idempotent commands are sent again, up to ``retries`` times; a garbled
reply is also retried. Commands that must not run twice (queueing a stream segment) are never
resent here: the caller rebuilds what it was doing. What cannot be recovered raises a
:class:`~dwellwise.drivers.zaber_protocol.ZaberFault` subclass naming the device and the cause.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import serial
from dwellwise.drivers.zaber_protocol import (
    Alert,
    Command,
    Info,
    Reply,
    ZaberGarbled,
    ZaberParseError,
    ZaberPortError,
    ZaberRejected,
    ZaberTimeout,
    parse_message,
    rejection,
)

log = logging.getLogger(__name__)

READ_SLICE_S = 0.01
"""Longest a read of the port blocks, wall seconds (bounds how fast a reopen can happen)."""


@dataclass
class LinkStats:
    """Counters of one link (what a benchmark or a health check reports)."""

    commands: int = 0
    """Commands written (retries included)."""
    retries: int = 0
    """Commands sent again after a timeout or a garbled reply."""
    timeouts: int = 0
    """Replies that did not come in time."""
    garbled: int = 0
    """Lines that were not valid messages."""
    rejected: int = 0
    """Replies with ``RJ``."""
    reopens: int = 0
    """Times the port was closed and opened again."""
    stale: int = 0
    """Replies dropped because no request was waiting for their id."""
    round_trips_s: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    """Wall seconds from write to reply of recent single requests."""
    pipelined_s: deque[float] = field(default_factory=lambda: deque(maxlen=1024))
    """Wall seconds per command of recent pipelined batches (of 4 commands or more)."""


@dataclass(frozen=True)
class Received:
    """A reply with when it was asked for and when it came (instrument clock, seconds)."""

    reply: Reply
    sent: float
    """Instrument time just before the command was written."""
    received: float
    """Instrument time the reply was read."""
    seq: int
    """Arrival order of the reply among everything received (to order it against alerts)."""
    info: tuple[str, ...] = ()
    """Info lines (``#``) that followed it."""


class ZaberLink:
    """The serial port shared by a daisy chain of Zaber devices (see the module docstring)."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        *,
        timeout_s: float = 0.5,
        retries: int = 2,
        checksums: bool = True,
        clock=None,
        opener: Callable[..., serial.Serial] | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be ≥ 0, got {retries}")
        self.port = str(port)
        self.baudrate = int(baudrate)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.checksums = bool(checksums)
        """Send a checksum with every command (the device then drops corrupted commands)."""
        self.require_reply_checksums = False
        """Treat replies without a checksum as garbled (set once ``comm.checksum`` is 1)."""
        self.clock = clock
        self.stats = LinkStats()
        self._opener = opener or serial.Serial
        self._cond = threading.Condition()
        self._replies: dict[int, Received] = {}
        self._waiting: set[int] = set()
        self._alerts: deque[tuple[int, float, Alert]] = deque(maxlen=1024)
        self._garbled: deque[tuple[int, str, str]] = deque(maxlen=256)
        self._seq = 0
        self._last_reply_id: int | None = None
        self._txn = threading.RLock()
        self._port_lock = threading.Lock()
        self._ids = itertools.cycle(range(1, 100))
        self._closed = False
        self._rx = bytearray()
        self._ser = self._open()
        self._reader = threading.Thread(target=self._read_loop, name=f"zaber-{port}", daemon=True)
        self._reader.start()

    # -- port ---------------------------------------------------------------------------------
    def _open(self) -> serial.Serial:
        try:
            return self._opener(self.port, self.baudrate, timeout=READ_SLICE_S, write_timeout=self.timeout_s)
        except (OSError, ValueError, serial.SerialException) as exc:
            raise ZaberPortError(
                f"serial port {self.port}",
                f"cannot open it ({exc})",
                "check that the USB serial adapter is plugged in, the port name is right and "
                "you may use it (e.g. member of the 'dialout' group)",
            ) from exc

    def reopen(self) -> None:
        """Close the port and open it again (after a timeout or an I/O error)."""
        with self._port_lock:
            try:
                self._ser.close()
            except Exception:  # noqa: BLE001 - a dead port may fail to close; it is replaced
                pass
            self.stats.reopens += 1
            self._rx.clear()
            self._ser = self._open()

    def close(self) -> None:
        self._closed = True
        self._reader.join(timeout=1.0)
        try:
            self._ser.close()
        except Exception:  # noqa: BLE001
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else time.monotonic()

    # -- reading ------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        backoff = 0.02
        while not self._closed:
            try:
                with self._port_lock:
                    ser = self._ser
                    chunk = ser.read(max(1, ser.in_waiting))
                backoff = 0.02
            except (OSError, TypeError, AttributeError, serial.SerialException) as exc:
                if self._closed:
                    return
                if backoff == 0.02:  # once per outage
                    log.warning("zaber link %s: read failed (%s); reopening the port", self.port, exc)
                time.sleep(backoff)
                backoff = min(0.5, backoff * 2)
                try:
                    self.reopen()
                except Exception:  # noqa: BLE001 - keep trying until closed
                    continue
                continue
            if chunk:
                self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        self._rx += chunk
        while True:
            i = self._rx.find(b"\n")
            if i < 0:
                if len(self._rx) > 4096:  # noise without newlines
                    self._file_garbled(bytes(self._rx[:200]).decode("ascii", "replace"), "no line end")
                    self._rx.clear()
                return
            raw = bytes(self._rx[:i]).rstrip(b"\r")
            del self._rx[: i + 1]
            if raw.strip():
                self._file(raw)

    def _file(self, raw: bytes) -> None:
        try:
            msg = parse_message(raw, require_checksum=self.require_reply_checksums, info_ids=True)
        except ZaberParseError as exc:
            self._file_garbled(exc.line, exc.problem)
            return
        now = self._now()
        with self._cond:
            self._seq += 1
            if isinstance(msg, Alert):
                self._alerts.append((self._seq, now, msg))
            elif isinstance(msg, Reply):
                if msg.message_id in self._waiting:
                    self._replies[msg.message_id] = Received(msg, 0.0, now, self._seq)
                    self._last_reply_id = msg.message_id
                else:
                    self.stats.stale += 1
            elif isinstance(msg, Info) and msg.message_id in self._replies:
                got = self._replies[msg.message_id]
                self._replies[msg.message_id] = Received(
                    got.reply, got.sent, got.received, got.seq, (*got.info, msg.data)
                )
            self._cond.notify_all()

    def _file_garbled(self, line: str, problem: str) -> None:
        with self._cond:
            self._seq += 1
            self.stats.garbled += 1
            self._garbled.append((self._seq, line, problem))
            self._cond.notify_all()
        log.warning("zaber link %s: garbled line %r (%s)", self.port, line, problem)

    # -- alerts -------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """Arrival count of everything received so far."""
        return self._seq

    def wait_alert(
        self,
        device: int,
        *,
        after_seq: int,
        timeout_s: float,
        stop: threading.Event | None = None,
    ) -> tuple[float, Alert] | None:
        """The first alert from ``device`` that arrived after ``after_seq``, waiting up to
        ``timeout_s`` wall seconds; ``None`` on timeout or when ``stop`` is set. The alert is
        taken out of the queue."""
        end = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                for item in self._alerts:
                    seq, at, alert = item
                    if seq > after_seq and alert.device == device:
                        self._alerts.remove(item)
                        return at, alert
                left = end - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return None
                self._cond.wait(min(left, 0.01 if stop is not None else left))

    # -- requests -----------------------------------------------------------------------------
    def request(
        self,
        device: int,
        axis: int,
        text: str,
        *,
        where: str,
        idempotent: bool = True,
        check: bool = True,
    ) -> Received:
        """Send ``text`` to ``device``/``axis`` and return its reply.

        Timeouts and garbled replies are retried (after reopening the port) when ``idempotent``;
        a rejection raises :class:`ZaberRejected` when ``check`` (``AGAIN`` is retried)."""
        return self.request_batch([(device, axis, text)], where=where, idempotent=idempotent, check=check)[0]

    def request_batch(
        self,
        commands: Sequence[tuple[int, int, str]],
        *,
        where: str,
        idempotent: bool = True,
        check: bool = True,
        window: int = 8,
    ) -> list[Received]:
        """Send ``(device, axis, text)`` commands in order, up to ``window`` in flight, and return
        their replies in order. A batch that loses or garbles a reply fails as a whole (and is
        sent again as a whole when ``idempotent``)."""
        if not commands:
            return []
        attempts = 1 + (self.retries if idempotent else 0)
        with self._txn:
            fault: Exception | None = None
            for attempt in range(attempts):
                if attempt:
                    self.stats.retries += len(commands)
                try:
                    out = self._exchange(commands, where, window)
                except (ZaberTimeout, ZaberGarbled, ZaberPortError) as exc:
                    fault = exc
                    if isinstance(exc, ZaberTimeout | ZaberPortError):
                        try:
                            self.reopen()
                        except ZaberPortError as again:
                            fault = again
                    continue
                again = [r for r in out if not r.reply.ok and rejection(r.reply.data).code == "AGAIN"]
                if again and attempt + 1 < attempts:
                    time.sleep(0.01)
                    fault = None
                    continue
                if check:
                    for (_device, _axis, text), got in zip(commands, out, strict=True):
                        if not got.reply.ok:
                            raise ZaberRejected(where, got.reply.data, text)
                return out
            assert fault is not None
            if attempts > 1 and isinstance(fault, ZaberTimeout | ZaberGarbled):
                fault.args = (f"{fault.args[0]} (after {attempts} tries; the port was reopened)",)
            raise fault

    def _exchange(self, commands, where: str, window: int) -> list[Received]:
        ids = []
        sent: dict[int, float] = {}
        pending: deque[int] = deque()
        results: list[Received] = []
        mark = self._seq
        todo = deque(commands)
        walls: dict[int, float] = {}
        with self._cond:
            self._replies.clear()
            self._waiting.clear()
        while todo or pending:
            while todo and len(pending) < max(1, window):
                device, axis, text = todo.popleft()
                mid = next(self._ids)
                cmd = Command(device, axis, text, mid, self.checksums)
                with self._cond:
                    self._waiting.add(mid)
                sent[mid] = self._now()
                walls[mid] = time.perf_counter()
                try:
                    self._ser.write(cmd.encode())
                except (OSError, TypeError, AttributeError, serial.SerialException) as exc:
                    raise ZaberPortError(
                        where, f"cannot write {text!r} to {self.port} ({exc})",
                        "check the USB serial adapter and its cable",
                    ) from exc
                self.stats.commands += 1
                ids.append(mid)
                pending.append(mid)
            mid = pending[0]
            end = time.monotonic() + self.timeout_s
            with self._cond:
                while mid not in self._replies:
                    bad = next(((s, line, p) for s, line, p in self._garbled if s > mark and not line.startswith("!")), None)
                    if bad is not None:
                        self._waiting.clear()
                        raise ZaberGarbled(
                            where,
                            f"garbled reply to {self._text_of(commands, ids, mid)!r}: {bad[1]!r} ({bad[2]})",
                            "check the cable, its shielding and that the baud rate matches the device",
                        )
                    left = end - time.monotonic()
                    if left <= 0:
                        self.stats.timeouts += 1
                        self._waiting.clear()
                        raise ZaberTimeout(
                            where,
                            f"no reply to {self._text_of(commands, ids, mid)!r} within {self.timeout_s:g} s",
                            "check that the controller is powered, its address and baud rate, and the cable",
                        )
                    self._cond.wait(left)
                got = self._replies.pop(mid)
                self._waiting.discard(mid)
            pending.popleft()
            if len(commands) == 1:
                self.stats.round_trips_s.append(time.perf_counter() - walls[mid])
            if not got.reply.ok:
                self.stats.rejected += 1
            results.append(Received(got.reply, sent[mid], got.received, got.seq, got.info))
        if len(commands) >= 4:
            self.stats.pipelined_s.append((time.perf_counter() - walls[ids[0]]) / len(commands))
        return results

    @staticmethod
    def _text_of(commands, ids: list[int], mid: int) -> str:
        return commands[ids.index(mid)][2] if mid in ids else "?"
