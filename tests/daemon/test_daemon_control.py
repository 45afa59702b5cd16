"""The control socket: every method, every class of malformed input, refused scans."""

from __future__ import annotations

import json
import time

import pytest
import zmq
from daemon_helpers import SMALL, wait_idle, wait_state
from dwellwise.daemon.client import ControlClient, DaemonUnreachable
from dwellwise.daemon.protocol import MAX_REQUEST_BYTES


def assert_still_serving(client: ControlClient) -> None:
    t = time.perf_counter()
    reply = client.request("status")
    assert reply["success"], reply
    assert time.perf_counter() - t < 1.0


def test_ping(client):
    reply = client.request("ping")
    assert (
        reply["success"] and reply["msg"] == "pong" and set(reply) == {"success", "msg", "result"}
    )


def test_status(client, daemon):
    st = client.call("status")
    assert st["daemon"] == "running"
    assert st["state"] in ("idle", "running", "paused")
    assert st["queue_length"] == 0 and st["queued"] == []
    assert st["devices"]["beamline"] == "simulated"
    assert st["compute"]["device"] in ("cuda", "cpu")
    assert st["addresses"] == daemon.addresses


def test_submit_job_jobs(client, daemon):
    result = client.call("submit", **SMALL)
    job_id = result["job_id"]
    assert result["cube_file"].endswith(f"{job_id}.h5")
    job = wait_state(client, job_id)
    assert job["state"] == "completed", job
    assert job["cube_file"] == result["cube_file"]
    # a loaded machine at speedup 50 may spend the budget before pass 2: the governor's call
    assert job["rows_total"] == 8 and job["passes"] == 2 and job["pass_number"] in (1, 2)
    assert job["rows_done_all"] >= 1
    assert job["budget_s"] == 40 and job["used_s"] > 0 and job["left_s"] is not None
    assert job["policy"] and job["train_device"] is not None
    assert 0 <= job["train_s"] and 0 <= job["compute_s"]
    assert job["error"] is None and job["request"]["shape"] == [8, 10]
    jobs = client.call("jobs", limit=5)["jobs"]
    assert jobs[0]["job_id"] == job_id
    states = [s for s, _, _ in daemon.ledger.transitions(job_id)]
    assert states == ["queued", "running", "completed"]
    import h5py

    with h5py.File(job["cube_file"], "r") as f:
        assert f["entry/data/counts"].shape[:2] == (8, 10)


def test_job_unknown(client):
    reply = client.request("job", {"job_id": "nope"})
    assert not reply["success"] and "no job 'nope'" in reply["msg"]


@pytest.mark.parametrize("method", ["pause", "resume", "abort"])
def test_control_without_a_job(client, method):
    wait_idle(client)
    reply = client.request(method)
    assert not reply["success"] and "no job is running" in reply["msg"]
    reply = client.request(method, {"job_id": "nope"})
    assert not reply["success"] and "nope" in reply["msg"]


def test_refused_scan_names_the_smallest_budget(client):
    reply = client.request("submit", {**SMALL, "budget": 5})
    assert not reply["success"]
    assert "smallest budget that fits is" in reply["msg"]
    assert not any(j["request"].get("budget") == 5 for j in client.call("jobs")["jobs"])
    reply = client.request("submit", {**SMALL, "mode": "raster", "budget": 0.5})
    assert not reply["success"] and "smallest budget that fits is" in reply["msg"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"scene": "no-such-scene"}, "unknown scene 'no-such-scene'"),
        ({"scene": "/etc/passwd"}, "unknown scene"),
        ({"policy": "telepathy"}, "telepathy"),
        ({"policy": "oracle"}, "needs the true rates, which no scan has"),
        ({"t0": 1e-6}, "shorter than pitch / v_max"),
        ({"weights": [1.0]}, "weights has 1 values"),
        ({"weights": {"Xx_K": 1.0}}, "unknown elements"),
    ],
)
def test_refused_scans(client, params, expected):
    reply = client.request("submit", {**SMALL, **params})
    assert not reply["success"] and expected in reply["msg"], reply


MALFORMED = [
    (b"this is not json", "not JSON"),
    (b"", "not JSON"),
    (b"\x80\x81", "not UTF-8"),
    (b"[1, 2, 3]", "must be a JSON object"),
    (b"42", "must be a JSON object"),
    (b'{"method": "teleport"}', "unknown method 'teleport'"),
    (b'{"method": ["status"]}', "method"),
    (b'{"method": "status", "params": "all"}', "params"),
    (b'{"method": "job", "params": {"job_id": 5}}', "job_id"),
    (b'{"method": "submit", "params": {"budget": "lots"}}', "budget"),
    (b'{"method": "submit", "params": {"budget": 60, "passes": "two"}}', "passes"),
    (
        b'{"method": "submit", "params": {"budget": 60, "frobnicate": 1}}',
        "unknown field 'frobnicate'",
    ),
    (b'{"method": "submit", "params": {"budget": 60, "passes": 99}}', "passes"),
    (b'{"method": "submit", "params": {"budget": 60, "shape": [8, -1]}}', "shape"),
    (b'{"method": "submit", "params": {"budget": 1e300}}', "budget"),
    (b'{"method": "jobs", "params": {"limit": 100000}}', "limit"),
]


@pytest.mark.parametrize(("body", "expected"), MALFORMED)
def test_malformed_input_answered_and_daemon_keeps_serving(client, body, expected):
    reply = client.request_raw(body)
    assert reply["success"] is False and expected in reply["msg"], reply
    assert_still_serving(client)


def test_oversize_request(client):
    body = json.dumps(
        {"method": "ping", "params": {"pad": "x" * (MAX_REQUEST_BYTES + 10)}}
    ).encode()
    reply = client.request_raw(body)
    assert not reply["success"] and "too large" in reply["msg"] and "1 MiB" in reply["msg"]
    assert_still_serving(client)


def test_misbehaving_peers_cannot_wedge_it(daemon, client):
    ctx = zmq.Context.instance()
    address = daemon.addresses["control"]
    # a DEALER with several frames and no delimiter, never reading its replies
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(address)
    for _ in range(50):
        dealer.send_multipart([b'{"method": "ping"}', b"extra"])
        dealer.send(b"garbage")
    # a REQ that sends and disappears without waiting for the answer
    for _ in range(20):
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(address)
        req.send(b'{"method": "status"}')
        req.close()
    assert_still_serving(client)
    # a DEALER that speaks the REQ envelope gets a proper answer; one with two frames an error
    dealer.send_multipart([b"", b'{"method": "ping"}'])
    dealer.send_multipart([b"", b"a", b"b"])
    answers = []
    deadline = time.monotonic() + 5
    while len(answers) < 2 and time.monotonic() < deadline:
        if dealer.poll(100):
            frames = dealer.recv_multipart()
            if frames[0] == b"":
                answers.append(json.loads(frames[-1]))
    dealer.close()
    assert answers[0]["success"] is True and answers[0]["msg"] == "pong"
    assert answers[1]["success"] is False and "one frame" in answers[1]["msg"]


def test_no_daemon_is_reported_not_hung():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ControlClient(f"tcp://127.0.0.1:{port}", timeout=0.3)
    t = time.perf_counter()
    with pytest.raises(DaemonUnreachable, match=f"no daemon at tcp://127.0.0.1:{port}"):
        client.call("status")
    assert time.perf_counter() - t < 2
