"""Scans through the daemon: documents to a stock RemoteDispatcher, events, pause, resume,
abort, shutdown."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import h5py
import pytest
from bluesky.callbacks.zmq import RemoteDispatcher
from daemon_helpers import SLOW, SMALL, make_config, wait_idle, wait_state
from dwellwise.daemon.addresses import AddressError
from dwellwise.daemon.client import ControlClient, EventStream
from dwellwise.daemon.server import Daemon


class Received:
    """A stock RemoteDispatcher in a thread, collecting (name, doc)."""

    def __init__(self, address: str) -> None:
        self.docs: list[tuple[str, dict]] = []
        self.stopped = threading.Event()
        self.dispatcher = RemoteDispatcher(address, deserializer=json.loads)
        self.dispatcher.subscribe(self._take)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _take(self, name: str, doc: dict) -> None:
        self.docs.append((name, doc))
        if name == "stop":
            self.stopped.set()

    def _run(self) -> None:
        try:
            self.dispatcher.start()
        except (asyncio.CancelledError, RuntimeError):
            pass

    def close(self) -> None:
        d = self.dispatcher
        if d._task is not None and not d.loop.is_closed():
            d.loop.call_soon_threadsafe(d._task.cancel)
        self.thread.join(5)


def test_stock_remote_dispatcher_receives_the_documents(daemon, client):
    wait_idle(client)
    received = Received(daemon.addresses["documents"])
    try:
        time.sleep(0.5)  # a SUB socket misses what is published before it has connected
        job_id = client.call("submit", **SMALL)["job_id"]
        assert received.stopped.wait(30), "no stop document"
        wait_state(client, job_id)
    finally:
        received.close()
    names = [name for name, _ in received.docs]
    assert names[0] == "start" and names[-1] == "stop"
    assert {"descriptor", "event", "event_page", "stream_resource", "stream_datum"} <= set(names)
    start = received.docs[0][1]
    assert start["job_id"] == job_id and start["cube_file"].endswith(f"{job_id}.h5")
    assert start["planned_times"]["budget_s"] == 40
    streams = {doc["name"] for name, doc in received.docs if name == "descriptor"}
    assert {"primary", "timeline", "passes"} <= streams
    stop = received.docs[-1][1]
    assert stop["run_start"] == start["uid"] and stop["exit_status"] == "success"


def test_events_progress_and_job_changes(daemon, client):
    wait_idle(client)
    with EventStream(daemon.addresses["events"]) as events:
        time.sleep(0.3)
        job_id = client.call("submit", **SMALL)["job_id"]
        seen: dict[str, list[dict]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            event = events.next(timeout=1.0)
            if event is None:
                continue
            topic, payload = event
            seen.setdefault(topic, []).append(payload)
            if topic == "job" and payload["job_id"] == job_id and payload["state"] == "completed":
                break
    job_states = [p["state"] for p in seen["job"] if p["job_id"] == job_id]
    assert job_states == ["queued", "running", "completed"]
    progress = [p for p in seen["progress"] if p["job_id"] == job_id]
    rows = [p for p in progress if p["rows_done"] > 0]
    counts = [p["rows_done_all"] for p in rows]
    assert counts and counts == sorted(counts) and set(counts) == set(range(1, counts[-1] + 1))
    last = rows[-1]
    for key in (
        "pass_number",
        "rows_done",
        "rows_total",
        "used_s",
        "left_s",
        "eta_s",
        "count_rate",
    ):
        assert key in last
    assert last["rows_total"] == 8 and last["used_s"] > 0 and last["count_rate"] > 0
    assert any(p["state"] == "running" and p["current_job"] == job_id for p in seen["status"])
    assert "log" in seen and all({"level", "logger", "msg"} <= set(p) for p in seen["log"])


def test_pause_and_resume(client, daemon):
    wait_idle(client)
    job_id = client.call("submit", **SLOW)["job_id"]
    wait_state(client, job_id, ("running",))
    reply = client.request("pause", {"job_id": job_id})
    assert reply["success"] and "pauses at the end of the current row" in reply["msg"]
    job = wait_state(client, job_id, ("paused", "completed"))
    assert job["state"] == "paused"
    st = client.call("status")
    assert st["state"] == "paused" and st["current_job"] == job_id
    assert not client.request("pause")["success"]  # already paused
    rows = job["rows_done_all"]
    time.sleep(0.2)
    assert client.call("job", job_id=job_id)["rows_done_all"] == rows  # nothing moves
    reply = client.request("resume")
    assert reply["success"] and "resumes" in reply["msg"]
    job = wait_state(client, job_id)
    assert job["state"] == "completed", job
    states = [s for s, _, _ in daemon.ledger.transitions(job_id)]
    assert states == ["queued", "running", "paused", "running", "completed"]


def test_abort_running(client):
    wait_idle(client)
    job_id = client.call("submit", **SLOW)["job_id"]
    wait_state(client, job_id, ("running",))
    time.sleep(0.1)
    t = time.perf_counter()
    reply = client.request("abort")
    assert reply["success"] and "aborted" in reply["msg"]
    job = wait_state(client, job_id)
    assert time.perf_counter() - t < 5
    assert job["state"] == "aborted" and "aborted by the operator" in job["error"]
    with h5py.File(job["cube_file"], "r") as f:
        assert bytes(f["entry/scan_status"][()]).decode().strip() == "aborted"
        in_file = sum(
            int(f[f"entry/passes/{n}/rows_complete"][...].sum()) for n in f["entry/passes"]
        )
    assert in_file >= job["rows_done_all"]  # every row the ledger counted is in the file


def test_abort_paused(client):
    wait_idle(client)
    job_id = client.call("submit", **SLOW)["job_id"]
    wait_state(client, job_id, ("running",))
    client.call("pause")
    wait_state(client, job_id, ("paused",))
    assert client.request("abort", {"job_id": job_id})["success"]
    job = wait_state(client, job_id)
    assert job["state"] == "aborted"
    assert not client.request("resume", {"job_id": job_id})["success"]


def test_queue_is_fifo_and_a_queued_job_can_be_dropped(client):
    wait_idle(client)
    first = client.call("submit", **SLOW)["job_id"]
    wait_state(client, first, ("running",))
    client.call("pause")  # hold it, so that the others stay queued
    second = client.call("submit", **SMALL)["job_id"]
    third = client.call("submit", **SMALL)["job_id"]
    wait_state(client, first, ("paused",))
    st = client.call("status")
    assert st["current_job"] == first and st["queued"] == [second, third]
    reply = client.request("pause", {"job_id": third})
    assert not reply["success"] and "queued" in reply["msg"]
    reply = client.request("abort", {"job_id": third})
    assert reply["success"] and "removed from the queue" in reply["msg"]
    assert client.call("job", job_id=third)["state"] == "aborted"
    client.call("abort", job_id=first)
    assert wait_state(client, first)["state"] == "aborted"
    assert wait_state(client, second)["state"] == "completed"
    assert client.call("job", job_id=third)["state"] == "aborted"


def test_shutdown_interrupts_the_running_job(tmp_path):
    daemon = Daemon(make_config(tmp_path)).start()
    client = ControlClient(daemon.addresses["control"], timeout=10)
    running = client.call("submit", **SLOW)["job_id"]
    queued = client.call("submit", **SMALL)["job_id"]
    wait_state(client, running, ("running",))
    reply = client.request("shutdown")
    assert reply["success"] and reply["msg"] == "shutting down"
    assert daemon.wait(30)
    from dwellwise.daemon.ledger import Ledger

    ledger = Ledger(tmp_path)
    assert ledger.get(running).state == "interrupted"
    assert ledger.get(queued).state == "interrupted"
    ledger.close()


def test_restart_marks_leftover_jobs_interrupted(tmp_path):
    from dwellwise.daemon.ledger import Ledger
    from dwellwise.daemon.protocol import JobState

    ledger = Ledger(tmp_path)  # as a killed daemon would have left it
    ledger.add("old", dict(SMALL), tmp_path / "old.h5")
    ledger.set_state("old", JobState.RUNNING)
    ledger.close()
    with Daemon(make_config(tmp_path)) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        job = client.call("job", job_id="old")
        assert job["state"] == "interrupted" and "running" in job["error"]
        reply = client.request("resume", {"job_id": "old"})
        assert not reply["success"] and "interrupted" in reply["msg"]


def test_non_loopback_needs_insecure(tmp_path, caplog):
    with pytest.raises(AddressError, match="loopback"):
        Daemon(make_config(tmp_path, control="tcp://0.0.0.0:0")).start()
    with caplog.at_level("WARNING"):
        daemon = Daemon(make_config(tmp_path, control="tcp://0.0.0.0:0", insecure=True)).start()
    try:
        assert "INSECURE" in caplog.text
        port = daemon.addresses["control"].rpartition(":")[2]
        client = ControlClient(f"tcp://127.0.0.1:{port}", timeout=10)
        assert client.call("status")["insecure"] is True
    finally:
        daemon.close()
