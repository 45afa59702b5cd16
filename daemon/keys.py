"""CURVE keys, the allow-list of clients and their roles, and ``dwellwise keygen``.

With keys configured, the daemon's three sockets (control ROUTER, events PUB, documents PUB)
are CURVE servers: traffic is encrypted and every client's public key is checked, during the
handshake, against an allow-list by pyzmq's ZAP authenticator (:class:`AllowListAuthenticator`,
a :class:`zmq.auth.thread.ThreadAuthenticator` that is its own credentials provider). A key that
is not on the list never completes the handshake: it gets no reply, no event, no document.

Each allowed key has a **role**; the authenticator sets the ZAP user id of the connection to
``"ROLE:NAME"``, which the daemon reads from every request's ``User-Id`` frame property and
checks against :data:`METHOD_ROLES`:

========== =================================================================
observer   ``ping``, ``status``, ``jobs``, ``job``; events and documents
operator   also ``submit``, ``pause``, ``resume``, ``abort``
admin      also ``shutdown``
========== =================================================================

``dwellwise keygen DIR --client NAME:ROLE ...`` writes (files made with
:func:`zmq.auth.create_certificates`; secret files are mode 0600)::

    DIR/
      server.key               the daemon's public key: give it to every client (--server-key)
      server.key_secret        the daemon's secret key: stays on the daemon host
                               ([security] server_secret_key)
      allow.toml               the allow-list ([security] allow_list): one table per client
      clients/NAME.key         NAME's public key (also copied into allow.toml)
      clients/NAME.key_secret  NAME's secret key: give it to NAME only (console --key)

The allow-list is TOML and may be edited by hand (a client that made its own key pair sends
only its public key)::

    [clients.alice]
    role = "operator"                                       # observer | operator | admin
    public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # Z85, 40 characters

pyzmq is imported when a key is first read or written (the config and the command line import
this module and stay light).

Running keygen again keeps the server key pair (clients already hold its public half) and adds
the clients named; ``--force`` replaces key pairs that exist.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import zmq

log = logging.getLogger(__name__)

Role = Literal["observer", "operator", "admin"]
ROLES: tuple[str, ...] = ("observer", "operator", "admin")
"""The roles, least to most privileged."""
METHOD_ROLES: dict[str, str] = {
    "ping": "observer",
    "status": "observer",
    "jobs": "observer",
    "job": "observer",
    "submit": "operator",
    "pause": "operator",
    "resume": "operator",
    "abort": "operator",
    "shutdown": "admin",
}
"""The least role that may call each control method (a method not listed needs ``admin``)."""
ZAP_DOMAIN = "dwellwise"
"""ZAP domain of the daemon's sockets."""
SERVER_NAME = "server"
"""File stem of the server key pair written by keygen."""
ALLOW_LIST_NAME = "allow.toml"
"""File name of the allow-list written by keygen."""
CLIENTS_DIR = "clients"
"""Folder of the client key pairs written by keygen."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
"""A client name: letters, digits, ``_ . @ -``; at most 64 characters."""
_Z85_ALPHABET = set(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)


class KeysError(ValueError):
    """A key file, an allow-list or a keygen request that cannot be used; the message says why."""


# -- roles ------------------------------------------------------------------------------------------
def required_role(method: str) -> str:
    """The least role that may call ``method``."""
    return METHOD_ROLES.get(method, "admin")


def role_allows(role: str | None, method: str) -> bool:
    """Whether a client of ``role`` may call ``method``."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(required_role(method))


def refusal(role: str, name: str, method: str) -> str:
    """The message of a request the caller's role does not allow."""
    need = required_role(method)
    roles = " or ".join(ROLES[ROLES.index(need) :])
    return (
        f"permission denied: client {name!r} has the role {role}, which may not call {method!r}"
        f" ({method} needs {roles})"
    )


def user_id(role: str, name: str) -> str:
    """The ZAP user id of an allowed client: ``"ROLE:NAME"``."""
    return f"{role}:{name}"


def parse_user_id(value: str | None) -> tuple[str | None, str]:
    """``"operator:alice"`` -> ``("operator", "alice")``; anything else -> ``(None, value)``."""
    role, sep, name = (value or "").partition(":")
    if sep and role in ROLES:
        return role, name
    return None, value or ""


# -- keys ---------------------------------------------------------------------------------------------
def check_z85_key(value: Any) -> str:
    """A Z85-encoded CURVE key (40 characters) as text; :class:`ValueError` otherwise."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise ValueError(
            f"a public key is a Z85 string of 40 characters, got {type(value).__name__}"
        )
    if len(value) != 40 or not set(value) <= _Z85_ALPHABET:
        raise ValueError(
            f"a public key is 40 Z85 characters (as in a .key file's public-key), got {value!r}"
        )
    return value


def _load(path: str | Path, what: str) -> tuple[bytes, bytes | None]:
    import zmq.auth

    path = Path(path)
    if not path.is_file():
        raise KeysError(f"{what} {path} does not exist (dwellwise keygen writes it)")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise KeysError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # ValueError: no public-key line
        raise KeysError(f"{what} {path} is not a ZeroMQ certificate: {exc}") from None
    try:
        check_z85_key(public)
        if secret is not None:
            check_z85_key(secret)
    except ValueError as exc:
        raise KeysError(f"{what} {path}: {exc}") from None
    return public, secret


def load_secret_key(path: str | Path, what: str = "secret key file") -> tuple[bytes, bytes]:
    """``(public, secret)`` (Z85 bytes) of a ``.key_secret`` certificate."""
    public, secret = _load(path, what)
    if secret is None:
        raise KeysError(
            f"{what} {path} holds only a public key; give the .key_secret file of the pair"
        )
    return public, secret


def load_public_key(path: str | Path, what: str = "public key file") -> bytes:
    """The public key (Z85 bytes) of a ``.key`` (or ``.key_secret``) certificate."""
    return _load(path, what)[0]


@dataclass(frozen=True)
class ServerKeys:
    """The daemon's key pair (Z85 bytes)."""

    public: bytes
    secret: bytes

    @classmethod
    def load(cls, path: str | Path) -> ServerKeys:
        return cls(*load_secret_key(path, "server secret key file"))

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server in the daemon's ZAP domain (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True
        sock.zap_domain = ZAP_DOMAIN.encode()


@dataclass(frozen=True)
class ClientKeys:
    """A client's key pair and the server's public key (Z85 bytes)."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, key_file: str | Path, server_key_file: str | Path) -> ClientKeys:
        """From the client's ``.key_secret`` file and the server's ``.key`` file."""
        public, secret = load_secret_key(key_file, "client secret key file (--key)")
        server = load_public_key(server_key_file, "server public key file (--server-key)")
        return cls(public, secret, server)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client of the daemon (before it connects)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server


# -- the allow-list -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AllowedClient:
    """One entry of the allow-list."""

    name: str
    role: str
    public_key: str
    """Z85 text, 40 characters."""


def check_entry(name: str, entry: Any, where: str) -> AllowedClient:
    """An allow-list table ``{"role", "public_key"}`` -> :class:`AllowedClient`."""
    if not NAME_PATTERN.match(name):
        raise KeysError(
            f"{where}: client name {name!r} must be letters, digits and _ . @ - (at most 64)"
        )
    if not isinstance(entry, dict):
        raise KeysError(f"{where}: clients.{name} must be a table with role and public_key")
    unknown = set(entry) - {"role", "public_key"}
    if unknown:
        raise KeysError(f"{where}: clients.{name}.{sorted(unknown)[0]}: unknown key")
    role = entry.get("role")
    if role not in ROLES:
        raise KeysError(
            f"{where}: clients.{name}.role must be one of {', '.join(ROLES)}, got {role!r}"
        )
    try:
        key = check_z85_key(entry.get("public_key"))
    except ValueError as exc:
        raise KeysError(f"{where}: clients.{name}.public_key: {exc}") from None
    return AllowedClient(name=name, role=role, public_key=key)


def read_allow_list(path: str | Path) -> list[AllowedClient]:
    """The entries of an allow-list file (``[clients.NAME]`` tables)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeysError(f"allow-list {path} does not exist (dwellwise keygen writes it)") from None
    except OSError as exc:
        raise KeysError(f"cannot read allow-list {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeysError(f"allow-list {path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"clients"}
    if unknown:
        raise KeysError(
            f"allow-list {path}: {sorted(unknown)[0]}: unknown key (only [clients.NAME])"
        )
    clients = data.get("clients", {})
    if not isinstance(clients, dict):
        raise KeysError(f"allow-list {path}: clients must be tables [clients.NAME]")
    return [check_entry(name, entry, f"allow-list {path}") for name, entry in clients.items()]


def merge_allow_lists(*lists: Iterable[AllowedClient]) -> dict[bytes, AllowedClient]:
    """Entries keyed by public key (Z85 bytes); a name or a key listed twice is an error."""
    by_key: dict[bytes, AllowedClient] = {}
    names: set[str] = set()
    for entries in lists:
        for entry in entries:
            if entry.name in names:
                raise KeysError(f"client {entry.name!r} is on the allow-list twice")
            key = entry.public_key.encode()
            if key in by_key:
                raise KeysError(
                    f"clients {by_key[key].name!r} and {entry.name!r} have the same public key"
                )
            names.add(entry.name)
            by_key[key] = entry
    return by_key


def write_allow_list(path: str | Path, entries: Iterable[AllowedClient]) -> None:
    """Write an allow-list file (replacing ``path``)."""
    lines = [
        "# dwellwise allow-list: the clients the daemon accepts, with their roles.",
        "# role: observer (status, jobs, events, documents), operator (also submit, pause,",
        "# resume, abort) or admin (also shutdown). public_key: the Z85 public-key of the",
        "# client's .key file. Restart the daemon after editing.",
    ]
    for e in sorted(entries, key=lambda e: e.name):
        lines += ["", f"[clients.{_toml_key(e.name)}]", f'role = "{e.role}"']
        lines.append(f'public_key = "{e.public_key}"')
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _authenticator_class() -> type:
    from zmq.auth.thread import ThreadAuthenticator
    from zmq.utils import z85

    class AllowListAuthenticator(ThreadAuthenticator):
        """pyzmq's thread authenticator, allowing the keys of an allow-list.

        It is its own credentials provider (:meth:`callback`), and the User-Id of an accepted
        connection is ``"ROLE:NAME"`` (:meth:`curve_user_id`)."""

        def __init__(self, context: zmq.Context, allowed: dict[bytes, AllowedClient]) -> None:
            super().__init__(context, log=logging.getLogger(__name__ + ".zap"))
            self.allowed = dict(allowed)
            """Z85 public key -> entry."""
            self._warned: dict[bytes, float] = {}

        def start(self) -> None:
            super().start()
            self.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self)

        def callback(self, domain: str, key: bytes) -> bool:
            """The credentials provider: is the Z85 ``key`` on the allow-list?"""
            entry = self.allowed.get(key)
            if entry is None:
                now = time.monotonic()  # a refused client retries its handshake: a line a minute
                if now - self._warned.get(key, -3600.0) >= 60.0:
                    if len(self._warned) > 1000:
                        self._warned.clear()
                    self._warned[key] = now
                    log.warning(
                        "refused a client with a key not on the allow-list: %s", key.decode()
                    )
                return False
            log.debug("accepted %s (%s)", entry.name, entry.role)
            return True

        def curve_user_id(self, client_public_key: bytes) -> str:
            """The User-Id of an accepted client: ``"ROLE:NAME"``."""
            entry = self.allowed[z85.encode(client_public_key)]
            return user_id(entry.role, entry.name)

    AllowListAuthenticator.__module__ = __name__
    AllowListAuthenticator.__qualname__ = "AllowListAuthenticator"
    return AllowListAuthenticator


def __getattr__(name: str) -> Any:
    # ``AllowListAuthenticator(context, allowed)``: a ``zmq.auth.thread.ThreadAuthenticator``
    # that admits the keys of an allow-list (its own credentials provider) and sets each
    # connection's User-Id to ``"ROLE:NAME"``; defined on first use so that pyzmq loads late.
    if name == "AllowListAuthenticator":
        cls = globals()[name] = _authenticator_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- keygen ----------------------------------------------------------------------------------------
@dataclass
class KeygenResult:
    """What :func:`keygen` wrote."""

    server_public: Path
    server_secret: Path
    allow_list: Path
    clients: dict[str, tuple[Path, Path]]
    """Client name -> (public file, secret file) of the key pairs made this time."""
    server_created: bool


def parse_client_spec(spec: str) -> tuple[str, str]:
    """``"alice:operator"`` -> ``("alice", "operator")``; ``"alice"`` -> observer."""
    name, sep, role = spec.partition(":")
    role = role if sep else "observer"
    if not NAME_PATTERN.match(name):
        raise KeysError(f"client name {name!r} must be letters, digits and _ . @ - (at most 64)")
    if role not in ROLES:
        raise KeysError(f"role of {name!r} must be one of {', '.join(ROLES)}, got {role!r}")
    return name, role


def keygen(
    directory: str | Path, clients: Iterable[tuple[str, str]] = (), *, force: bool = False
) -> KeygenResult:
    """Write the server key pair (unless it exists), the client key pairs and the allow-list.

    ``clients`` is ``(name, role)`` pairs; an existing client key pair is kept (only its role
    changes) unless ``force``, which makes new pairs (the server's too)."""
    directory = Path(directory)
    clients = list(clients)
    names = [name for name, _ in clients]
    if len(set(names)) != len(names):
        raise KeysError("a client is named twice")
    for name, role in clients:
        parse_client_spec(f"{name}:{role}")
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
    client_dir = directory / CLIENTS_DIR
    client_dir.mkdir(mode=0o700, exist_ok=True)
    server_public = directory / f"{SERVER_NAME}.key"
    server_secret = directory / f"{SERVER_NAME}.key_secret"
    server_created = force or not server_secret.exists()
    if server_created:
        _create(directory, SERVER_NAME)
    allow_path = directory / ALLOW_LIST_NAME
    entries = {e.name: e for e in read_allow_list(allow_path)} if allow_path.exists() else {}
    made: dict[str, tuple[Path, Path]] = {}
    for name, role in clients:
        public_file = client_dir / f"{name}.key"
        secret_file = client_dir / f"{name}.key_secret"
        if force or not secret_file.exists():
            made[name] = _create(client_dir, name)
        key = load_public_key(public_file).decode()
        entries[name] = AllowedClient(name=name, role=role, public_key=key)
    merge_allow_lists(entries.values())  # no key twice
    write_allow_list(allow_path, entries.values())
    return KeygenResult(server_public, server_secret, allow_path, made, server_created)


def _create(directory: Path, name: str) -> tuple[Path, Path]:
    import zmq.auth

    old = os.umask(0o077)  # the secret file is never readable by others, not even for a moment
    try:
        public, secret = zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old)
    os.chmod(public, 0o644)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def add_keygen_parser(sub) -> None:
    """Add ``keygen`` to the ``dwellwise`` subcommands."""
    p = sub.add_parser(
        "keygen",
        help="write CURVE key pairs and the allow-list of clients with their roles",
        description="Write DIR/server.key and DIR/server.key_secret (unless they exist), "
        "DIR/clients/NAME.key and NAME.key_secret for each --client, and the allow-list "
        "DIR/allow.toml (name, role, public key). Roles: observer (status, jobs, events, "
        "documents), operator (also submit, pause, resume, abort), admin (also shutdown). "
        "Then set [security] server_secret_key = 'DIR/server.key_secret' and allow_list = "
        "'DIR/allow.toml' in the daemon's config, and give each client its NAME.key_secret "
        "and server.key (dwellwise console --key ... --server-key ...).",
    )
    p.add_argument("directory", type=Path, help="where the keys go (made if missing)")
    p.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="NAME[:ROLE]",
        help="a client key pair with its role (observer when left out); repeatable",
    )
    p.add_argument(
        "--force", action="store_true", help="replace key pairs that exist (the server's too)"
    )


def cmd_keygen(args: argparse.Namespace) -> int:
    from dwellwise.cliargs import UsageError

    try:
        clients = [parse_client_spec(spec) for spec in args.client]
        result = keygen(args.directory, clients, force=args.force)
    except (KeysError, OSError) as exc:
        raise UsageError(str(exc)) from None
    verb = "wrote" if result.server_created else "kept"
    print(f"{verb} the server key pair: {result.server_secret} (secret), {result.server_public}")
    for name, (public, secret) in result.clients.items():
        print(f"wrote client {name}: {secret} (secret), {public}")
    print(f"allow-list: {result.allow_list}")
    for e in sorted(read_allow_list(result.allow_list), key=lambda e: e.name):
        print(f"  {e.name:<20} {e.role:<9} {e.public_key}")
    print(
        "\nin the daemon's config:\n  [security]\n"
        f'  server_secret_key = "{result.server_secret.resolve()}"\n'
        f'  allow_list = "{result.allow_list.resolve()}"\n'
        "a client: dwellwise console status --address tcp://HOST:60715 "
        f"--key NAME.key_secret --server-key {result.server_public.name}"
    )
    return 0
