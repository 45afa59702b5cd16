"""``dwellwise console`` against an in-process daemon, and ``dwellwise serve`` as a process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from daemon_helpers import SMALL, wait_idle, wait_state
from dwellwise.daemon.client import ControlClient

from dwellwise.cli import main


def console(*args: str) -> list[str]:
    return ["console", *args]


def test_console_status(daemon, capsys):
    assert main(console("status", "--address", daemon.addresses["control"])) == 0
    out = capsys.readouterr().out
    assert "daemon running at" in out and "queue: 0" in out and "compute:" in out


def test_console_status_json(daemon, capsys):
    assert main(console("status", "--json", "--address", daemon.addresses["control"])) == 0
    assert json.loads(capsys.readouterr().out)["daemon"] == "running"


def test_console_no_daemon(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    assert main(console("status", "--address", address, "--timeout", "0.3")) == 3
    assert f"no daemon at {address}" in capsys.readouterr().err


def test_console_submit_watch_jobs_job(daemon, client, capsys):
    wait_idle(client)
    address = daemon.addresses["control"]
    code = main(
        console(
            "submit", "--address", address, "--scene", "astronaut", "--shape", "8x10",
            "--budget", "40", "--t0", "5ms", "--policy", "auto", "--mode", "adaptive",
            "--speedup", "50", "--watch",
        )
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured
    assert "queued; cube file" in captured.out
    assert ": completed" in captured.out and "cube file:" in captured.out
    assert "pass 1/2 [" in captured.err and "s left of 40 s" in captured.err  # the progress bar
    job_id = captured.out.split()[1]
    assert main(console("jobs", "--address", address)) == 0
    assert job_id in capsys.readouterr().out
    assert main(console("job", job_id, "--address", address)) == 0
    out = capsys.readouterr().out
    assert f"job {job_id}: completed" in out and "policy:" in out


def test_console_submit_from_file(daemon, client, tmp_path, capsys):
    wait_idle(client)
    request = tmp_path / "request.toml"
    request.write_text(
        'scene = "astronaut"\nshape = [8, 10]\nbudget = "40s"\nt0 = "5ms"\nspeedup = 50.0\n'
    )
    address = daemon.addresses["control"]
    assert (
        main(
            console(
                "submit", "--file", str(request), "--mode", "raster", "--address", address, "--json"
            )
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    job = wait_state(client, result["job_id"])
    assert job["state"] == "completed" and job["request"]["mode"] == "raster" and job["passes"] == 1


def test_console_bad_requests(daemon, tmp_path, capsys):
    address = daemon.addresses["control"]
    assert (
        main(
            console(
                "submit",
                "--address",
                address,
                "--budget",
                "2s",
                "--shape",
                "8x10",
                "--speedup",
                "50",
            )
        )
        == 1
    )
    assert "smallest budget that fits" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("budget = 40\ncolour = 'red'\n")
    assert main(console("submit", "--address", address, "--file", str(bad))) == 2
    assert "unknown field 'colour'" in capsys.readouterr().err
    assert main(console("job", "nope", "--address", address)) == 1
    assert main(console("pause", "--address", address)) == 1
    assert "no job is running" in capsys.readouterr().err


def test_console_pause_resume_abort(daemon, client, capsys):
    wait_idle(client)
    address = daemon.addresses["control"]
    job_id = client.call("submit", **SMALL)["job_id"]
    wait_state(client, job_id, ("running",))
    assert main(console("pause", "--address", address)) == 0
    wait_state(client, job_id, ("paused",))
    assert main(console("resume", job_id, "--address", address)) == 0
    assert wait_state(client, job_id)["state"] == "completed"
    job_id = client.call("submit", **SMALL)["job_id"]
    wait_state(client, job_id, ("running",))
    assert main(console("pause", job_id, "--address", address)) == 0
    wait_state(client, job_id, ("paused",))
    assert main(console("abort", "--address", address)) == 0
    assert wait_state(client, job_id)["state"] == "aborted"
    assert main(console("watch", job_id, "--address", address)) == 1  # not completed
    out = capsys.readouterr().out
    assert "resumes" in out and "being aborted" in out and f"job {job_id}: aborted" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_process(tmp_path):
    for _attempt in range(3):  # another process may take a free port before the daemon binds it
        out, code = _serve_once(tmp_path)
        if "Address already in use" not in out:
            break
    assert code == 0, out
    assert "INFO dwellwise.daemon.server: dwellwise daemon serving" in out
    assert "dwellwise daemon stopped" in out
    assert "\x1b[" not in out  # no colours


def _serve_once(tmp_path) -> tuple[str, int]:
    ports = [_free_port() for _ in range(3)]
    control = f"tcp://127.0.0.1:{ports[0]}"
    cmd = [
        sys.executable, "-m", "dwellwise.cli", "serve", "--data-dir", str(tmp_path / "data"),
        "--control", control, "--events", f"tcp://127.0.0.1:{ports[1]}",
        "--documents", f"tcp://127.0.0.1:{ports[2]}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        client = ControlClient(control, timeout=1.0)
        deadline = time.monotonic() + 60
        while True:
            try:
                status = client.call("status")
                break
            except ConnectionError:
                if proc.poll() is not None:
                    return proc.stdout.read(), proc.returncode
                assert time.monotonic() < deadline, "the daemon did not come up"
        assert status["data_dir"] == str((tmp_path / "data").resolve())
        assert client.request("shutdown")["success"]
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return out, proc.returncode


def test_serve_refuses_public_address(capsys):
    assert main(["serve", "--control", "tcp://0.0.0.0:0"]) == 2
    assert "--insecure" in capsys.readouterr().err


def test_serve_refuses_a_file_as_data_directory(tmp_path, capsys):
    plain = tmp_path / "afile"
    plain.write_text("")
    assert main(["serve", "--data-dir", str(plain)]) == 2
    assert "is a file; name a directory" in capsys.readouterr().err


def test_console_refuses_an_address_that_is_not_zeromq(capsys):
    assert main(["console", "status", "--address", "notanaddress"]) == 2
    assert "is not a ZeroMQ address; write e.g. tcp://" in capsys.readouterr().err


def test_serve_bad_config(tmp_path, capsys):
    cfg = tmp_path / "dwellwise.toml"
    cfg.write_text("[daemon]\nport = 5\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "daemon.port: unknown key" in capsys.readouterr().err


def test_serve_refuses_a_default_scene_that_does_not_exist(tmp_path, capsys):
    cfg = tmp_path / "dwellwise.toml"
    cfg.write_text('[defaults]\nscene = "nosuch"\n')
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "defaults.scene 'nosuch' is not a scene; scenes: astronaut" in capsys.readouterr().err
