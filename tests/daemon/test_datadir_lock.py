"""One daemon per data directory: a second one is refused, a dead one never blocks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from dwellwise.daemon.datadir_lock import DataDirInUse
from dwellwise.daemon.ledger import Ledger
from dwellwise.daemon.protocol import JobState

REQUEST = {"scene": "astronaut", "shape": [8, 8]}


def test_second_ledger_on_a_directory_is_refused_and_leaves_jobs_alone(tmp_path):
    first = Ledger(tmp_path)
    first.add("a", REQUEST, tmp_path / "a.h5")
    first.set_state("a", JobState.RUNNING)
    with pytest.raises(DataDirInUse, match="in use by another dwellwise daemon.*--data-dir"):
        Ledger(tmp_path)
    assert first.get("a").state == JobState.RUNNING  # not marked interrupted by the intruder
    first.close()
    again = Ledger(tmp_path)  # released on close
    assert again.get("a").state == JobState.INTERRUPTED
    again.close()


def test_lock_of_a_killed_process_is_gone(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from dwellwise.daemon.ledger import Ledger; "
            f"Ledger({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirInUse, match=f"pid {holder.pid}"):
            Ledger(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    deadline = time.monotonic() + 10
    while True:
        try:
            Ledger(tmp_path).close()
            break
        except DataDirInUse:
            assert time.monotonic() < deadline, "the lock outlived its process"
            time.sleep(0.05)


def test_serve_on_a_busy_directory_exits_with_a_clear_message(tmp_path):
    ledger = Ledger(tmp_path)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dwellwise.cli",
                "serve",
                "--data-dir",
                str(tmp_path),
                "--control",
                "tcp://127.0.0.1:0",
                "--events",
                "tcp://127.0.0.1:0",
                "--documents",
                "tcp://127.0.0.1:0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        ledger.close()
    assert proc.returncode == 2
    assert "in use by another dwellwise daemon" in proc.stderr
