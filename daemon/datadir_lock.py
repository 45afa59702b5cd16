"""One daemon per data directory: an exclusive advisory lock held while the ledger is open.

Two daemons on one data directory would each mark the other's running job ``interrupted`` and
write the same cube files. The lock is ``flock`` on ``<data dir>/daemon.lock``: the kernel drops
it when the holding process dies (even on ``kill -9``), so a crash never leaves a stale lock.
The file records the holder's pid and start time for the error message.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_FILE = "daemon.lock"
"""File name of the lock inside the data directory."""


class DataDirInUse(RuntimeError):
    """Another process (or another open ledger) holds the data directory."""


class DataDirLock:
    """Exclusive lock on a data directory, released by :meth:`release` or process exit."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirInUse(
                f"data directory {self.path.parent} is in use by another dwellwise daemon "
                f"({holder}); stop that daemon or pass another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    return text or "holder unknown"
