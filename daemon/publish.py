"""The two PUB sockets, owned by one thread and fed from any thread through a queue.

* events: multipart ``[topic, json]`` with topics ``status``, ``progress``, ``job``, ``log``;
* documents: one frame ``b" ".join([prefix, name, json])``, the wire format of
  ``bluesky.callbacks.zmq.Publisher`` with a JSON serializer, so that a stock
  ``RemoteDispatcher(address, deserializer=json.loads)`` receives every Bluesky document.

ZeroMQ sockets must not be used from two threads at once; here only the broadcaster thread
touches them. A PUB socket never blocks: slow subscribers lose messages at the high-water mark,
never the daemon its time. Serialization happens in the broadcaster thread too, so the
RunEngine only pays for a queue put.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import zmq
from dwellwise.daemon.protocol import encode

log = logging.getLogger(__name__)

TOPICS = ("status", "progress", "job", "log")
"""Topics of the event socket."""

_STOP = object()


class Broadcaster:
    """Publishes events and documents from a thread of its own."""

    def __init__(self, events: zmq.Socket, documents: zmq.Socket, *, prefix: bytes = b"") -> None:
        if b" " in prefix:
            raise ValueError("a document prefix may not contain a space")
        self._events = events
        self._documents = documents
        self._prefix = prefix
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dwellwise-publish", daemon=True)
        self.dropped = 0
        """Messages that could not be serialized or sent."""

    def start(self) -> None:
        self._thread.start()

    def event(self, topic: str, payload: dict[str, Any]) -> None:
        """Queue an event (any thread)."""
        self._queue.put(("event", topic, {"time": time.time(), **payload}))

    def document(self, name: str, doc: dict[str, Any]) -> None:
        """Queue a Bluesky document (any thread)."""
        self._queue.put(("doc", name, doc))

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then close both sockets."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._events.close(linger=200)
            self._documents.close(linger=200)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            kind, name, payload = item
            try:
                if kind == "event":
                    self._events.send_multipart([name.encode(), encode(payload)], zmq.NOBLOCK)
                else:
                    frame = b" ".join([self._prefix, name.encode(), encode(payload)])
                    self._documents.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1
            except Exception as exc:  # a value that cannot be serialized: keep publishing
                self.dropped += 1
                log.debug("cannot publish a %s %s: %s", kind, name, exc)


class EventLogHandler(logging.Handler):
    """Forwards log records to the ``log`` topic of the event socket."""

    def __init__(self, broadcaster: Broadcaster, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.broadcaster = broadcaster

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == __name__:  # never recurse on our own complaints
            return
        try:
            self.broadcaster.event(
                "log",
                {"level": record.levelname, "logger": record.name, "msg": record.getMessage()},
            )
        except Exception:
            self.handleError(record)
