"""ZeroMQ addresses: which are loopback-only, and binding with a check.

Without encryption the daemon binds only to loopback (``127.0.0.0/8``, ``::1``, ``localhost``)
or to local transports (``ipc://``, ``inproc://``); anything else needs ``insecure``. With CURVE
keys configured (``secure``) any address may be bound: every client is then encrypted and
checked against the allow-list.
"""

from __future__ import annotations

import ipaddress
import logging

import zmq

log = logging.getLogger(__name__)


class AddressError(ValueError):
    """An address the daemon will not bind; the message says why."""


def host_of(address: str) -> tuple[str, str]:
    """``tcp://127.0.0.1:60715`` -> ``("tcp", "127.0.0.1")``; ``ipc:///x`` -> ``("ipc", "")``."""
    transport, sep, rest = address.partition("://")
    if not sep or not transport:
        raise AddressError(f"address {address!r} must look like tcp://HOST:PORT or ipc:///path")
    transport = transport.lower()
    if transport != "tcp":
        return transport, ""
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port:
        raise AddressError(f"address {address!r} must look like tcp://HOST:PORT")
    if port != "*" and not port.isdigit():
        raise AddressError(f"port of {address!r} must be a number or *")
    return transport, host.removeprefix("[").removesuffix("]")


def is_loopback(address: str) -> bool:
    """Whether binding ``address`` exposes nothing beyond this machine."""
    transport, host = host_of(address)
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    if host.lower() in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(address: str, *, insecure: bool, what: str, secure: bool = False) -> None:
    """Refuse a non-loopback ``address`` unless ``secure`` (CURVE keys configured) or
    ``insecure`` (then warn loudly)."""
    if is_loopback(address):
        return
    if secure:
        return
    if not insecure:
        raise AddressError(
            f"refusing to bind the {what} socket to {address}: without keys the daemon listens "
            "on loopback only (tcp://127.0.0.1:PORT); configure keys ([security] in the config, "
            "see dwellwise keygen) to expose it encrypted, or pass --insecure (or insecure = "
            "true) to expose it unencrypted and unauthenticated"
        )
    log.warning(
        "INSECURE: the %s socket listens on %s WITHOUT encryption or authentication; "
        "anyone who can reach it can control the instrument",
        what,
        address,
    )


def bind(sock: zmq.Socket, address: str) -> str:
    """Bind ``sock`` (``tcp://HOST:0`` picks a free port) and return the address bound."""
    transport, host = host_of(address)
    if transport == "tcp" and address.endswith(":0"):
        address = address[:-2] + ":*"
    try:
        sock.bind(address)
    except zmq.ZMQError as exc:
        raise AddressError(f"cannot bind {address}: {exc}") from None
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)
