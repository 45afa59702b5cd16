"""The SQLite job ledger."""

from __future__ import annotations

import threading

import pytest
from dwellwise.daemon.ledger import LEDGER_FILE, Ledger
from dwellwise.daemon.protocol import JobState

REQUEST = {"scene": "astronaut", "shape": [8, 10], "budget": 40.0}


def test_records_jobs_and_every_transition(tmp_path):
    ledger = Ledger(tmp_path)
    assert (tmp_path / LEDGER_FILE).exists()
    job = ledger.add("j1", REQUEST, tmp_path / "j1.h5", passes=2, budget_s=40.0)
    assert job.state == JobState.QUEUED and job.request == REQUEST and job.left_s == 40.0
    ledger.set_state("j1", JobState.RUNNING)
    ledger.update("j1", rows_done=3, rows_total=8, used_s=5.0, left_s=35.0, policy="uniform")
    ledger.set_state("j1", JobState.PAUSED)
    ledger.set_state("j1", JobState.RUNNING, note="resumed")
    done = ledger.set_state("j1", JobState.FAILED, error="boom")
    assert done.state == JobState.FAILED and done.error == "boom" and done.rows_done == 3
    assert done.started is not None and done.finished >= done.started
    states = [s for s, _, _ in ledger.transitions("j1")]
    assert states == ["queued", "running", "paused", "running", "failed"]
    with pytest.raises(ValueError, match="not progress columns"):
        ledger.update("j1", state="completed")
    with pytest.raises(KeyError):
        ledger.get("nope")
    ledger.close()


def test_leftover_jobs_become_interrupted_on_reopen(tmp_path):
    ledger = Ledger(tmp_path)
    for job_id, state in [
        ("a", JobState.RUNNING),
        ("b", JobState.PAUSED),
        ("c", JobState.COMPLETED),
    ]:
        ledger.add(job_id, REQUEST, tmp_path / f"{job_id}.h5")
        ledger.set_state(job_id, state)
    ledger.add("q", REQUEST, tmp_path / "q.h5")
    ledger.close()  # the process "dies" here

    again = Ledger(tmp_path)
    assert sorted(again.recovered) == ["a", "b", "q"]
    assert again.get("a").state == JobState.INTERRUPTED
    assert "running" in again.get("a").error
    assert again.get("b").state == JobState.INTERRUPTED
    assert again.get("c").state == JobState.COMPLETED
    assert again.transitions("a")[-1][0] == "interrupted"
    assert [j.job_id for j in again.recent(2)] == ["q", "c"]
    again.close()


def test_many_threads_write_at_once(tmp_path):
    ledger = Ledger(tmp_path)
    errors = []

    def work(k: int) -> None:
        try:
            for i in range(20):
                job_id = f"t{k}-{i}"
                ledger.add(job_id, REQUEST, tmp_path / f"{job_id}.h5")
                ledger.set_state(job_id, JobState.RUNNING)
                ledger.update(job_id, rows_done=i)
                ledger.set_state(job_id, JobState.COMPLETED)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ledger.in_state(JobState.COMPLETED)) == 120
    ledger.close()


def test_a_ledger_from_an_older_release_gains_the_new_columns(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "ledger.sqlite")
    old.executescript(
        "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, state TEXT NOT NULL, request TEXT NOT NULL,"
        " cube_file TEXT NOT NULL, pass_number INTEGER NOT NULL DEFAULT 0,"
        " passes INTEGER NOT NULL DEFAULT 1, rows_done INTEGER NOT NULL DEFAULT 0,"
        " rows_total INTEGER NOT NULL DEFAULT 0, rows_done_all INTEGER NOT NULL DEFAULT 0,"
        " budget_s REAL, used_s REAL NOT NULL DEFAULT 0, left_s REAL, policy TEXT,"
        " fell_back INTEGER NOT NULL DEFAULT 0, train_device TEXT,"
        " train_s REAL NOT NULL DEFAULT 0, error TEXT, run_uid TEXT, created REAL NOT NULL,"
        " started REAL, finished REAL, updated REAL NOT NULL);"
        "INSERT INTO jobs (job_id, state, request, cube_file, created, updated)"
        " VALUES ('old', 'completed', '{}', 'old.h5', 1.0, 1.0);"
    )
    old.commit()
    old.close()
    ledger = Ledger(tmp_path)
    job = ledger.get("old")
    assert job.state == JobState.COMPLETED and job.compute_s == 0.0
    ledger.update("old", compute_s=2.5)
    assert ledger.get("old").compute_s == 2.5
    ledger.close()
