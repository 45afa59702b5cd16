"""CURVE keys and roles: keygen, the allow-list, per-role permissions, encrypted events and
documents, the console with --key, and the example deploy config."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth
from daemon_helpers import SMALL, make_config, wait_idle, wait_state
from dwellwise.daemon.client import ClientKeys, ControlClient, DaemonUnreachable, EventStream
from dwellwise.daemon.config import ConfigError, SecuritySection, load_config
from dwellwise.daemon.keys import (
    ALLOW_LIST_NAME,
    KeysError,
    keygen,
    read_allow_list,
    role_allows,
)
from dwellwise.daemon.server import Daemon

from dwellwise.cli import main

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = [("obs", "observer"), ("op", "operator"), ("adm", "admin")]


@pytest.fixture(scope="module")
def keydir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    keygen(d, CLIENTS)
    stranger = d / "stranger"
    stranger.mkdir()
    zmq.auth.create_certificates(stranger, "stranger")
    return d


def keys_of(keydir: Path, name: str) -> ClientKeys:
    secret = keydir / "clients" / f"{name}.key_secret"
    if name == "stranger":
        secret = keydir / "stranger" / "stranger.key_secret"
    return ClientKeys.load(secret, keydir / "server.key")


def secure_config(data_dir: Path, keydir: Path, **daemon):
    config = make_config(data_dir, **daemon)
    security = SecuritySection(
        server_secret_key=keydir / "server.key_secret", allow_list=keydir / ALLOW_LIST_NAME
    )
    return config.model_copy(update={"security": security})


@pytest.fixture(scope="module")
def secure(tmp_path_factory, keydir):
    d = Daemon(secure_config(tmp_path_factory.mktemp("secure-data"), keydir)).start()
    yield d
    d.close()
    assert d.wait(30), "the daemon did not shut down"


def client_for(daemon: Daemon, keydir: Path, name: str | None, timeout: float = 10.0):
    keys = None if name is None else keys_of(keydir, name)
    return ControlClient(daemon.addresses["control"], timeout=timeout, keys=keys)


# -- keygen -----------------------------------------------------------------------------------------
def test_keygen_layout(tmp_path, capsys):
    d = tmp_path / "keys"
    assert main(["keygen", str(d), "--client", "alice:operator", "--client", "bob"]) == 0
    out = capsys.readouterr().out
    assert "server_secret_key" in out and "allow_list" in out
    for f in ("server.key", "server.key_secret", "clients/alice.key", "clients/bob.key_secret"):
        assert (d / f).is_file(), f
    for f in ("server.key_secret", "clients/alice.key_secret", "clients/bob.key_secret"):
        assert stat.S_IMODE((d / f).stat().st_mode) == 0o600, f
    roles = {e.name: e.role for e in read_allow_list(d / "allow.toml")}
    assert roles == {"alice": "operator", "bob": "observer"}
    server = (d / "server.key_secret").read_text()
    alice = (d / "clients/alice.key_secret").read_text()
    # again: the server pair and alice's pair are kept, bob gets a new role, carol is added
    assert main(["keygen", str(d), "--client", "bob:admin", "--client", "carol:observer"]) == 0
    assert "kept the server key pair" in capsys.readouterr().out
    assert (d / "server.key_secret").read_text() == server
    assert (d / "clients/alice.key_secret").read_text() == alice
    roles = {e.name: e.role for e in read_allow_list(d / "allow.toml")}
    assert roles == {"alice": "operator", "bob": "admin", "carol": "observer"}
    assert main(["keygen", str(d), "--client", "eve:root"]) == 2
    assert "role of 'eve' must be one of observer, operator, admin" in capsys.readouterr().err


def test_roles():
    assert role_allows("observer", "status") and not role_allows("observer", "submit")
    assert role_allows("operator", "abort") and not role_allows("operator", "shutdown")
    assert role_allows("admin", "shutdown") and not role_allows(None, "ping")


# -- control -----------------------------------------------------------------------------------------
def test_stranger_gets_no_reply(secure, keydir):
    for name in ("stranger", None):  # a key not on the allow-list, and no key at all
        client = client_for(secure, keydir, name, timeout=0.5)
        t = time.monotonic()
        with pytest.raises(DaemonUnreachable, match="no reply: no daemon at"):
            client.call("ping")
        assert time.monotonic() - t < 3.0
    assert client_for(secure, keydir, "obs").call("ping")["role"] == "observer"


def test_wrong_server_key_gets_no_reply(secure, keydir, tmp_path):
    zmq.auth.create_certificates(tmp_path, "other")
    good = keys_of(keydir, "adm")
    keys = ClientKeys(
        good.public, good.secret, zmq.auth.load_certificate(tmp_path / "other.key")[0]
    )
    client = ControlClient(secure.addresses["control"], timeout=0.5, keys=keys)
    with pytest.raises(DaemonUnreachable, match="server key"):
        client.call("status")


def test_observer_reads_but_cannot_act(secure, keydir):
    client = client_for(secure, keydir, "obs")
    status = client.call("status")
    assert status["security"] == {"curve": True, "clients": 3} and status["insecure"] is False
    assert isinstance(client.call("jobs")["jobs"], list)
    assert "no job 'nope'" in client.request("job", {"job_id": "nope"})["msg"]
    for method, params in (("submit", SMALL), ("pause", {}), ("abort", {}), ("shutdown", {})):
        reply = client.request(method, params)
        assert reply["success"] is False, method
        assert "role observer" in reply["msg"] and f"may not call '{method}'" in reply["msg"]
    # the role is checked before the parameters: a bad submit is still refused for the role
    reply = client.request("submit", {"budget": -1, "nonsense": 1})
    assert not reply["success"] and "role observer" in reply["msg"]
    assert client.call("status")["daemon"] == "running"


def test_operator_submits_but_cannot_shut_down(secure, keydir):
    client = client_for(secure, keydir, "op")
    wait_idle(client)
    job_id = client.call("submit", **SMALL)["job_id"]
    assert wait_state(client, job_id)["state"] == "completed"
    reply = client.request("shutdown")
    assert reply["success"] is False
    assert "role operator" in reply["msg"] and "admin" in reply["msg"]
    assert client.call("status")["daemon"] == "running"
    # malformed requests from an allowed client still get a reply naming the problem
    assert "not JSON" in client.request_raw(b"{nope")["msg"]


def test_events_and_documents_reach_allowed_subscribers_only(secure, keydir):
    ctx = zmq.Context.instance()
    subs = {}
    for name in ("obs", "stranger"):
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        keys_of(keydir, name).apply(sock)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(secure.addresses["documents"])
        subs[name] = sock
    events = {n: EventStream(secure.addresses["events"], keys=keys_of(keydir, n)) for n in subs}
    try:
        time.sleep(0.3)  # let the subscriptions reach the publisher
        client = client_for(secure, keydir, "op")
        wait_idle(client)
        job_id = client.call("submit", **SMALL)["job_id"]
        wait_state(client, job_id)
        names = []
        deadline = time.monotonic() + 10
        while "stop" not in names and time.monotonic() < deadline:
            if subs["obs"].poll(500):
                _, name, doc = subs["obs"].recv().split(b" ", 2)
                names.append(name.decode())
                if name == b"start":
                    assert json.loads(doc)["job_id"] == job_id
        assert names[0] == "start" and "event_page" in names and names[-1] == "stop"
        topics = set()
        while (event := events["obs"].next(timeout=1.0)) is not None and "status" not in topics:
            topics.add(event[0])
        assert "status" in topics  # the heartbeat comes every 0.5 s
        assert subs["stranger"].poll(0) == 0
        assert events["stranger"].next(timeout=0.2) is None
    finally:
        for sock in subs.values():
            sock.close(linger=0)
        for stream in events.values():
            stream.close()


def test_admin_can_shut_down_and_public_address_needs_no_insecure(tmp_path, keydir):
    config = secure_config(tmp_path, keydir, control="tcp://0.0.0.0:0")
    daemon = Daemon(config).start()
    try:
        port = daemon.addresses["control"].rpartition(":")[2]
        client = ControlClient(f"tcp://127.0.0.1:{port}", timeout=10, keys=keys_of(keydir, "adm"))
        assert client.call("status")["insecure"] is False
        assert client.request("shutdown")["success"]
        assert daemon.wait(30)
    finally:
        daemon.close()


# -- the console -------------------------------------------------------------------------------------
def test_console_with_keys(secure, keydir, tmp_path, capsys):
    address = secure.addresses["control"]
    key = str(keydir / "clients" / "obs.key_secret")
    server = str(keydir / "server.key")
    base = ["console", "status", "--address", address]
    assert main([*base, "--key", key, "--server-key", server]) == 0
    assert "daemon running at" in capsys.readouterr().out
    # the server key from the daemon's config (its secret file holds the public half too)
    config = tmp_path / "dwellwise.toml"
    config.write_text(
        f'[daemon]\ncontrol = "{address}"\n[security]\n'
        f'server_secret_key = "{keydir / "server.key_secret"}"\n'
        f'allow_list = "{keydir / "allow.toml"}"\n'
    )
    assert main(["console", "status", "--config", str(config), "--key", key]) == 0
    assert "daemon running at" in capsys.readouterr().out
    code = main(["console", "submit", "--address", address, "--key", key, "--server-key", server,
                 "--budget", "40", "--shape", "8x10"])  # fmt: skip
    assert code == 1 and "role observer" in capsys.readouterr().err
    stranger = str(keydir / "stranger" / "stranger.key_secret")
    code = main([*base, "--key", stranger, "--server-key", server, "--timeout", "0.5"])
    assert code == 3 and "no reply" in capsys.readouterr().err
    assert main([*base, "--key", key]) == 2
    assert "--server-key" in capsys.readouterr().err
    assert main([*base, "--key", server, "--server-key", server]) == 2  # a public key as --key
    assert "only a public key" in capsys.readouterr().err


# -- configuration -------------------------------------------------------------------------------------
def test_security_config(tmp_path, keydir):
    cfg = tmp_path / "dwellwise.toml"
    cfg.write_text(
        '[security]\nserver_secret_key = "keys/server.key_secret"\nallow_list = "keys/allow.toml"\n'
        f'[security.clients.extra]\nrole = "admin"\npublic_key = "{"x" * 40}"\n'
    )
    sec = load_config(cfg).security
    assert sec.enabled and sec.server_secret_key == tmp_path / "keys/server.key_secret"
    assert sec.allow_list == tmp_path / "keys/allow.toml"
    assert sec.clients["extra"].role == "admin"
    for text, expected in (
        ('[security]\nallow_list = "a.toml"\n', "needs server_secret_key"),
        ('[security]\nserver_secret_key = "s"\n', "no client could connect"),
        (
            '[security]\nserver_secret_key = "s"\n[security.clients.a]\nrole = "god"\n'
            f'public_key = "{"x" * 40}"\n',
            "security.clients.a.role",
        ),
        (
            '[security]\nserver_secret_key = "s"\n[security.clients.a]\nrole = "admin"\n'
            'public_key = "short"\n',
            "40 Z85 characters",
        ),
        ('[security]\nkeys = "x"\n', "security.keys: unknown key"),
    ):
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=expected):
            load_config(cfg)


def test_serve_refuses_missing_keys(tmp_path, keydir, capsys):
    cfg = tmp_path / "dwellwise.toml"
    cfg.write_text(
        '[security]\nserver_secret_key = "nowhere.key_secret"\n'
        f'allow_list = "{keydir / "allow.toml"}"\n'
    )
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "nowhere.key_secret does not exist" in capsys.readouterr().err
    # a client key listed twice (file and inline) is refused too
    key = read_allow_list(keydir / "allow.toml")[0].public_key
    cfg.write_text(
        f'[security]\nserver_secret_key = "{keydir / "server.key_secret"}"\n'
        f'allow_list = "{keydir / "allow.toml"}"\n'
        f'[security.clients.again]\nrole = "admin"\npublic_key = "{key}"\n'
    )
    with pytest.raises(KeysError, match="same public key"):
        Daemon(load_config(cfg)).start()


def test_example_deploy_config_loads():
    config = load_config(ROOT / "deploy" / "dwellwise.toml")
    assert config.security.enabled
    assert config.daemon.control.endswith(":60715") and config.daemon.events.endswith(":60716")
    assert config.daemon.documents.endswith(":60717")
    assert config.beamline.kind == "simulated"
