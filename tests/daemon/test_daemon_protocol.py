"""The wire protocol, the configuration file and the address checks (no daemon needed)."""

from __future__ import annotations

import json
import logging

import pytest
from dwellwise.daemon.addresses import AddressError, check_bind, is_loopback
from dwellwise.daemon.config import ConfigError, DaemonConfig, load_config
from dwellwise.daemon.protocol import (
    MAX_REQUEST_BYTES,
    METHODS,
    JobState,
    RequestError,
    ScanRequest,
    encode,
    parse_request,
)


def raw(obj) -> bytes:
    return json.dumps(obj).encode()


def test_scan_request_has_exactly_the_issue_fields():
    assert list(ScanRequest.model_fields) == [
        "scene", "shape", "pixel_size", "budget", "t0", "policy", "passes", "weights", "mode",
        "speedup", "seed", "analysis",
    ]  # fmt: skip
    for name, info in ScanRequest.model_fields.items():
        assert info.description, f"{name} has no docstring"


def test_job_states():
    assert {s.value for s in JobState} == {
        "queued", "running", "paused", "completed", "failed", "aborted", "interrupted",
    }  # fmt: skip


def test_methods():
    assert set(METHODS) >= {
        "ping",
        "status",
        "submit",
        "jobs",
        "job",
        "pause",
        "resume",
        "abort",
        "shutdown",
    }


def test_scan_request_accepts_units_and_shapes():
    method, req = parse_request(
        raw({"method": "submit", "params": {"budget": "2min", "t0": "5ms", "shape": "8x10",
                                            "weights": {"Fe_K": 2, "Pb_L": 1}}})
    )  # fmt: skip
    assert method == "submit"
    assert req.budget == 120.0 and req.t0 == pytest.approx(0.005) and req.shape == (8, 10)
    assert req.weights == {"Fe_K": 2.0, "Pb_L": 1.0}
    _, req = parse_request(raw({"method": "submit", "params": {"budget": 60, "weights": [1, 2]}}))
    assert req.weights == [1.0, 2.0] and req.mode == "adaptive" and req.passes == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (raw([1, 2]), "must be a JSON object"),
        (raw("status"), "must be a JSON object"),
        (raw({"params": {}}), "missing field 'method'"),
        (raw({"method": "fly"}), "unknown method 'fly'"),
        (raw({"method": 3}), "method"),
        (raw({"method": "ping", "id": 1}), "unknown field 'id'"),
        (raw({"method": "ping", "params": []}), "params"),
        (raw({"method": "ping", "params": {"x": 1}}), "unknown field 'x'"),
        (
            raw({"method": "submit", "params": {"budget": 60, "colour": "red"}}),
            "unknown field 'colour'",
        ),
        (raw({"method": "submit", "params": {}}), "missing field 'budget'"),
        (raw({"method": "submit", "params": {"budget": "soon"}}), "budget"),
        (raw({"method": "submit", "params": {"budget": 60, "passes": "2"}}), "passes"),
        (raw({"method": "submit", "params": {"budget": 60, "passes": 2.5}}), "passes"),
        (
            raw({"method": "submit", "params": {"budget": 60, "passes": 17}}),
            "passes: Input should be less than or equal to 16",
        ),
        (raw({"method": "submit", "params": {"budget": 60, "passes": 0}}), "passes"),
        (
            raw({"method": "submit", "params": {"budget": -5}}),
            "budget: Input should be greater than 0",
        ),
        (raw({"method": "submit", "params": {"budget": 60, "shape": [0, 10]}}), "shape"),
        (raw({"method": "submit", "params": {"budget": 60, "shape": [8]}}), "shape must be [H, W]"),
        (raw({"method": "submit", "params": {"budget": 60, "pixel_size": 0}}), "pixel_size"),
        (raw({"method": "submit", "params": {"budget": 60, "mode": "spiral"}}), "mode"),
        (raw({"method": "submit", "params": {"budget": 60, "analysis": "yes"}}), "analysis"),
        (raw({"method": "submit", "params": {"budget": 60, "weights": "heavy"}}), "weights"),
        (raw({"method": "submit", "params": {"budget": 60, "speedup": 0}}), "speedup"),
        (raw({"method": "jobs", "params": {"limit": 0}}), "limit"),
        (raw({"method": "job", "params": {}}), "missing field 'job_id'"),
        (raw({"method": "job", "params": {"job_id": 7}}), "job_id"),
        (b"x" * (MAX_REQUEST_BYTES + 1), "too large"),
    ],
)
def test_malformed_requests_name_the_problem(body, expected):
    with pytest.raises(RequestError) as err:
        parse_request(body)
    assert expected in str(err.value)


def test_encode_handles_numpy_and_non_finite():
    np = pytest.importorskip("numpy")
    data = json.loads(
        encode({"a": np.float64(1.5), "b": np.arange(3), "c": float("inf"), "d": (1, 2)})
    )
    assert data == {"a": 1.5, "b": [0, 1, 2], "c": None, "d": [1, 2]}


# -- configuration --------------------------------------------------------------------------------
def test_config_file(tmp_path):
    path = tmp_path / "dwellwise.toml"
    path.write_text(
        '[daemon]\ncontrol = "tcp://127.0.0.1:7000"\ndata_dir = "data"\n'
        '[beamline]\nkind = "simulated"\n[defaults]\npolicy = "uniform"\nspeedup = 10\nt0 = "2ms"\n'
    )
    cfg = load_config(path)
    assert cfg.daemon.control == "tcp://127.0.0.1:7000"
    assert cfg.daemon.events == "tcp://127.0.0.1:60716"
    assert cfg.daemon.data_dir == tmp_path / "data"
    req = cfg.defaults.apply(ScanRequest(budget=60, policy="bilevel"))
    assert req.policy == "bilevel" and req.speedup == 10.0 and req.t0 == pytest.approx(0.002)


def test_config_defaults():
    cfg = load_config(None)
    assert cfg.daemon.control == "tcp://127.0.0.1:60715"
    assert cfg.daemon.events == "tcp://127.0.0.1:60716"
    assert cfg.daemon.documents == "tcp://127.0.0.1:60717"
    assert str(cfg.daemon.data_dir) == "dwellwise-data"
    assert cfg.daemon.insecure is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[daemon]\ncontol = "tcp://127.0.0.1:1"\n', "daemon.contol: unknown key"),
        ("[deamon]\n", "deamon: unknown key"),
        ('[daemon]\ninsecure = "yes"\n', "daemon.insecure"),
        ('[daemon]\ncontrol = "localhost"\n', "daemon.control"),
        ('[beamline]\nkind = "synchrotron"\n', "beamline.kind"),
        ("[defaults]\npasses = 40\n", "passes"),
        ("[daemon\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_overrides_are_checked():
    cfg = DaemonConfig().with_overrides(control="tcp://127.0.0.1:1", events=None)
    assert cfg.daemon.control == "tcp://127.0.0.1:1" and cfg.daemon.events.endswith(":60716")
    with pytest.raises(ConfigError, match="control"):
        DaemonConfig().with_overrides(control="nowhere")


# -- addresses ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("tcp://127.0.0.1:60715", True),
        ("tcp://127.0.0.2:1", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:1", True),
        ("ipc:///tmp/dwellwise.sock", True),
        ("tcp://0.0.0.0:60715", False),
        ("tcp://*:60715", False),
        ("tcp://192.168.1.4:60715", False),
        ("tcp://eth0:60715", False),
    ],
)
def test_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_non_loopback_needs_insecure(caplog):
    with pytest.raises(AddressError, match="--insecure"):
        check_bind("tcp://0.0.0.0:60715", insecure=False, what="control")
    with caplog.at_level(logging.WARNING, logger="dwellwise.daemon.addresses"):
        check_bind("tcp://0.0.0.0:60715", insecure=True, what="control")
    assert "INSECURE" in caplog.text
