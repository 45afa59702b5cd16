"""The daemon runs the analysis after a scan that asks for it, logs it on the event socket, and
survives an analysis that fails."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
from daemon_helpers import SMALL, wait_idle, wait_state
from dwellwise.daemon.analysis import CubeAnalysis
from dwellwise.daemon.client import EventStream
from dwellwise.daemon.protocol import Job


def _logs_until(events: EventStream, predicate, timeout: float = 60.0) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = events.next(timeout=0.5)
        if event is None:
            continue
        topic, payload = event
        if topic == "log":
            seen.append(payload)
            if predicate(payload):
                return seen
    raise AssertionError(f"no such log event in {timeout} s; saw {[p['msg'] for p in seen]}")


def test_scan_with_analysis_writes_maps_beside_the_cube(daemon, client):
    wait_idle(client)
    with EventStream(daemon.addresses["events"]) as events:
        time.sleep(0.3)  # a SUB socket misses what is published before it has connected
        reply = client.call("submit", **SMALL, analysis=True)
        job_id, cube = reply["job_id"], Path(reply["cube_file"])
        logs = _logs_until(events, lambda p: "analysis written" in p["msg"])
    assert wait_state(client, job_id)["state"] == "completed"
    assert any(job_id in p["msg"] and "analysing" in p["msg"] for p in logs)
    with h5py.File(cube, "r") as f:
        maps = f["xrfmap/detsum/xrf_fit"]
        names = [n.decode() for n in f["xrfmap/detsum/xrf_fit_name"][()]]
        assert maps.shape == (len(names), *SMALL["shape"]) and maps.dtype == "float32"
        assert {"Fe_K", "Pb_L", "Hg_L"} <= set(names)
        assert maps.attrs["units"] == "counts/s"
        assert "entry/analysis/.partial" not in f
    assert (cube.parent / f"{cube.stem}_elements.png").stat().st_size > 0


def test_a_failing_analysis_is_logged_and_the_daemon_goes_on(daemon, client, monkeypatch):
    wait_idle(client)
    calls = []

    def broken(job: Job) -> None:
        calls.append(job.job_id)
        raise RuntimeError("model exploded")

    monkeypatch.setattr(daemon.runner, "analysis", broken)
    first = client.call("submit", **SMALL, analysis=True)["job_id"]
    assert wait_state(client, first)["state"] == "completed"
    wait_idle(client)
    assert calls == [first]
    second = client.call("submit", **SMALL)  # the daemon still takes jobs
    assert wait_state(client, second["job_id"])["state"] == "completed"
    wait_idle(client)
    assert calls == [first]  # a request without analysis gets none
    assert client.call("status")["daemon"] == "running"
    with h5py.File(second["cube_file"], "r") as f:
        assert "xrfmap/detsum/xrf_fit" not in f


def test_cube_analysis_never_raises(tmp_path, caplog):
    bad = tmp_path / "job.h5"
    bad.write_bytes(b"not an hdf5 file")
    job = Job(
        job_id="j1",
        state="completed",
        request={},
        cube_file=str(bad),
        created=0.0,
        updated=0.0,
    )
    analysis = CubeAnalysis(png=False)
    with caplog.at_level("ERROR", logger="dwellwise.daemon.analysis"):
        analysis(job)  # returns, whatever the file
    assert "not an HDF5 file" in analysis.last_error
    assert any("analysis refused" in r.getMessage() for r in caplog.records)
    assert bad.read_bytes() == b"not an hdf5 file"
