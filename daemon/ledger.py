"""The job ledger: an embedded SQLite database in the data directory.

Two tables: ``jobs`` (one row per job, its latest state and progress) and ``transitions`` (every
state change, appended, never rewritten). Every write is its own transaction, so a ``kill -9``
loses at most the change in flight. One connection per thread (SQLite connections must not be
shared between threads), in WAL mode so that readers never wait for the writer.

On open, a job that a previous process left ``queued``, ``running`` or ``paused`` becomes
``interrupted``: that process is gone, so nobody is running it any more. The open ledger holds
the data directory's lock (:mod:`dwellwise.daemon.datadir_lock`), so a second daemon on the same
directory is refused instead of interrupting the first one's jobs.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dwellwise.daemon.datadir_lock import DataDirLock
from dwellwise.daemon.protocol import Job, JobState, ScanProgressFields, jsonable

LEDGER_FILE = "ledger.sqlite"
"""File name of the ledger inside the data directory."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    request       TEXT NOT NULL,
    cube_file     TEXT NOT NULL,
    pass_number   INTEGER NOT NULL DEFAULT 0,
    passes        INTEGER NOT NULL DEFAULT 1,
    rows_done     INTEGER NOT NULL DEFAULT 0,
    rows_total    INTEGER NOT NULL DEFAULT 0,
    rows_done_all INTEGER NOT NULL DEFAULT 0,
    budget_s      REAL,
    used_s        REAL NOT NULL DEFAULT 0,
    left_s        REAL,
    policy        TEXT,
    fell_back     INTEGER NOT NULL DEFAULT 0,
    train_device  TEXT,
    compute_s     REAL NOT NULL DEFAULT 0,
    train_s       REAL NOT NULL DEFAULT 0,
    error         TEXT,
    run_uid       TEXT,
    created       REAL NOT NULL,
    started       REAL,
    finished      REAL,
    updated       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE TABLE IF NOT EXISTS transitions (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    state   TEXT NOT NULL,
    time    REAL NOT NULL,
    note    TEXT
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions (job_id);
"""

_COLUMN_DECLS = {
    m.group(1): m.group(2).rstrip(",")
    for m in re.finditer(r"^    (\w+)\s+(\w+.*)$", _SCHEMA.split("CREATE INDEX")[0], re.M)
}
"""Column name -> SQL declaration of the ``jobs`` table (for upgrading older ledgers)."""

PROGRESS_COLUMNS = frozenset({*ScanProgressFields.model_fields, "cube_file"})
"""Columns :meth:`Ledger.update` may change (state changes go through :meth:`Ledger.set_state`)."""


class Ledger:
    """Jobs and their state changes, safe to use from several threads."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / LEDGER_FILE
        self._dir_lock = DataDirLock(self.data_dir)  # raises DataDirInUse before touching jobs
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._db().executescript(_SCHEMA)  # executescript manages its own transaction
        self._add_missing_columns()
        self.recovered: list[str] = self._interrupt_leftovers()
        """Jobs this open marked ``interrupted``."""

    def _add_missing_columns(self) -> None:
        """Bring a ledger written by an older dwellwise up to the current columns."""
        db = self._db()
        have = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
        for name, decl in _COLUMN_DECLS.items():
            if name not in have:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")

    # -- connections ------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the ledger is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (call once no thread uses the ledger any more)."""
        with self._lock:
            self._closed = True
            for db in self._connections:
                try:
                    db.close()
                except sqlite3.ProgrammingError:  # made in another thread: sqlite3 refuses
                    pass
            self._connections.clear()
            self._dir_lock.release()

    # -- writing -----------------------------------------------------------------------------
    def add(
        self,
        job_id: str,
        request: dict[str, Any],
        cube_file: str | Path,
        *,
        state: JobState = JobState.QUEUED,
        passes: int = 1,
        budget_s: float | None = None,
        note: str = "submitted",
    ) -> Job:
        """Record a new job."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (job_id, state, request, cube_file, passes, budget_s, left_s,"
                " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    str(state),
                    json.dumps(jsonable(request)),
                    str(cube_file),
                    passes,
                    budget_s,
                    budget_s,
                    now,
                    now,
                ),
            )
            _transition(db, job_id, state, now, note)
        return self.get(job_id)

    def set_state(
        self, job_id: str, state: JobState, *, error: str | None = None, note: str = ""
    ) -> Job:
        """Change a job's state (and its error: ``None`` keeps it, ``""`` clears it), recording
        the transition."""
        now = time.time()
        fields = {"state": str(state), "updated": now}
        if state == JobState.RUNNING:
            fields["started"] = now
        if state.finished or state == JobState.INTERRUPTED:
            fields["finished"] = now
        if error is not None:
            fields["error"] = error or None
        with self._tx() as db:
            row = db.execute("SELECT started FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            if state == JobState.RUNNING and row["started"] is not None:
                del fields["started"]  # resumed: keep the first start
            _update(db, job_id, fields)
            _transition(db, job_id, state, now, note or (error or ""))
        return self.get(job_id)

    def requeue(self, job_id: str, *, note: str = "resumed") -> Job:
        """Queue an interrupted job again (``interrupted`` -> ``queued``): its error and finish
        time are cleared, its first start is kept; ``ValueError`` if it is not interrupted."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            if row["state"] != str(JobState.INTERRUPTED):
                raise ValueError(f"job {job_id} is {row['state']}, not interrupted")
            _update(
                db,
                job_id,
                {"state": str(JobState.QUEUED), "error": None, "finished": None, "updated": now},
            )
            _transition(db, job_id, JobState.QUEUED, now, note)
        return self.get(job_id)

    def update(self, job_id: str, **fields: Any) -> None:
        """Record progress (see :data:`PROGRESS_COLUMNS`); no transition is recorded."""
        bad = set(fields) - PROGRESS_COLUMNS
        if bad:
            raise ValueError(f"not progress columns: {sorted(bad)}")
        values = {k: (str(v) if isinstance(v, Path) else jsonable(v)) for k, v in fields.items()}
        values["updated"] = time.time()
        with self._tx() as db:
            _update(db, job_id, values)

    def _interrupt_leftovers(self) -> list[str]:
        now = time.time()
        leftovers = (JobState.QUEUED, JobState.RUNNING, JobState.PAUSED)
        with self._tx() as db:
            rows = db.execute(
                f"SELECT job_id, state FROM jobs WHERE state IN ({','.join('?' * len(leftovers))})",
                [str(s) for s in leftovers],
            ).fetchall()
            for row in rows:
                note = f"the daemon stopped while the job was {row['state']}"
                _update(
                    db,
                    row["job_id"],
                    {"state": str(JobState.INTERRUPTED), "error": note, "updated": now},
                )
                _transition(db, row["job_id"], JobState.INTERRUPTED, now, note)
        return [row["job_id"] for row in rows]

    # -- reading -----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """One job; ``KeyError`` if there is none."""
        row = self._db().execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return _job(row)

    def find(self, job_id: str) -> Job | None:
        """One job, or ``None``."""
        try:
            return self.get(job_id)
        except KeyError:
            return None

    def recent(self, limit: int = 20) -> list[Job]:
        """The most recently submitted jobs, newest first."""
        rows = self._db().execute(
            "SELECT * FROM jobs ORDER BY created DESC, rowid DESC LIMIT ?", (int(limit),)
        )
        return [_job(row) for row in rows]

    def in_state(self, *states: JobState) -> list[Job]:
        """Jobs in any of ``states``, oldest first."""
        rows = self._db().execute(
            f"SELECT * FROM jobs WHERE state IN ({','.join('?' * len(states))}) ORDER BY created",
            [str(s) for s in states],
        )
        return [_job(row) for row in rows]

    def transitions(self, job_id: str) -> list[tuple[str, float, str]]:
        """Every state change of a job: ``(state, time, note)``, oldest first."""
        rows = self._db().execute(
            "SELECT state, time, note FROM transitions WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [(r["state"], r["time"], r["note"] or "") for r in rows]


def _update(db: sqlite3.Connection, job_id: str, fields: dict[str, Any]) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)  # keys come from code, never from clients
    db.execute(f"UPDATE jobs SET {cols} WHERE job_id = ?", (*fields.values(), job_id))


def _transition(
    db: sqlite3.Connection, job_id: str, state: JobState, now: float, note: str
) -> None:
    db.execute(
        "INSERT INTO transitions (job_id, state, time, note) VALUES (?, ?, ?, ?)",
        (job_id, str(state), now, note),
    )


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["request"] = json.loads(data["request"])
    data["fell_back"] = bool(data["fell_back"])
    return Job.model_validate(data)
