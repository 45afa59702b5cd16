"""Clients of the daemon: control requests (REQ) and the event stream (SUB).

>>> client = ControlClient("tcp://127.0.0.1:60715", timeout=5)
>>> client.call("status")          # the reply's ``result``; DaemonError if success is false
>>> with EventStream("tcp://127.0.0.1:60716") as events:
...     topic, payload = events.next(timeout=1.0)

A request that gets no answer within the timeout raises :class:`DaemonUnreachable` ("no reply:
no daemon at ADDR answered") instead of hanging: each request uses a fresh REQ socket with
``RCVTIMEO`` and ``LINGER 0``, so a lost reply never leaves a socket stuck.

A daemon with keys (CURVE) needs the client's key pair and the daemon's public key::

    keys = ClientKeys.load("alice.key_secret", "server.key")
    client = ControlClient("tcp://daemon-host:60715", keys=keys)
    events = EventStream("tcp://daemon-host:60716", keys=keys)

A key the daemon does not allow never completes the handshake: the request times out the same
way (the message then says so).
"""

from __future__ import annotations

import json
from typing import Any

import zmq
from dwellwise.daemon.config import DEFAULT_CONTROL, DEFAULT_EVENTS
from dwellwise.daemon.keys import ClientKeys

__all__ = ["ClientKeys", "ControlClient", "DaemonError", "DaemonUnreachable", "EventStream"]


class DaemonUnreachable(ConnectionError):
    """No answer from the daemon within the timeout."""


class DaemonError(RuntimeError):
    """The daemon answered ``success: false``; the message is its ``msg``."""

    def __init__(self, msg: str, reply: dict[str, Any]) -> None:
        super().__init__(msg)
        self.reply = reply


class ControlClient:
    """Sends control requests and waits (bounded) for the replies."""

    def __init__(
        self,
        address: str = DEFAULT_CONTROL,
        *,
        timeout: float = 5.0,
        context: zmq.Context | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self.address = address
        self.timeout = float(timeout)
        self.keys = keys
        """CURVE keys (``None``: plain, for a daemon without keys)."""
        self._ctx = context or zmq.Context.instance()

    def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The whole reply ``{"success", "msg", "result"}`` of one request."""
        body = json.dumps({"method": method, "params": params or {}}).encode()
        return self.request_raw(body, timeout=timeout)

    def request_raw(self, body: bytes, *, timeout: float | None = None) -> dict[str, Any]:
        """Send ``body`` as it is (tests send malformed ones) and decode the reply."""
        ms = int(1000 * (self.timeout if timeout is None else timeout))
        sock = self._ctx.socket(zmq.REQ)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, ms)
            sock.setsockopt(zmq.SNDTIMEO, ms)
            if self.keys is not None:
                self.keys.apply(sock)
            sock.connect(self.address)
            try:
                sock.send(body)
                data = sock.recv()
            except zmq.Again:
                why = (
                    " (or the daemon refused this client's key, or the server key given is not"
                    " the daemon's)"
                    if self.keys is not None
                    else " (a daemon with keys answers only clients with an allowed key)"
                )
                raise DaemonUnreachable(
                    f"no reply: no daemon at {self.address} answered within {ms / 1000:g} s{why}"
                ) from None
        finally:
            sock.close(linger=0)
        try:
            reply = json.loads(data)
        except ValueError:
            raise DaemonUnreachable(
                f"the daemon at {self.address} answered something that is not JSON"
            ) from None
        if not isinstance(reply, dict) or "success" not in reply:
            raise DaemonUnreachable(f"the peer at {self.address} is not a dwellwise daemon")
        return reply

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The ``result`` of a request; :class:`DaemonError` if the daemon refused it."""
        reply = self.request(method, params)
        if not reply.get("success"):
            raise DaemonError(str(reply.get("msg", "refused")), reply)
        return reply.get("result") or {}


class EventStream:
    """Subscribes to the daemon's event socket (``status``, ``progress``, ``job``, ``log``)."""

    def __init__(
        self,
        address: str = DEFAULT_EVENTS,
        topics: tuple[str, ...] = ("",),
        *,
        context: zmq.Context | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self.address = address
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            keys.apply(self._sock)
        for topic in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._sock.connect(address)

    def next(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """The next event ``(topic, payload)``, or ``None`` after ``timeout`` seconds."""
        if timeout is not None and not self._sock.poll(int(timeout * 1000)):
            return None
        frames = self._sock.recv_multipart()
        if len(frames) != 2:
            return None
        try:
            return frames[0].decode(), json.loads(frames[1])
        except ValueError:
            return None

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
