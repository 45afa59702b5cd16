"""Opening cube files read-only, also while a writer appends to them or after it died.

A SWMR reader retries a read that finds less data than the file's metadata promise, since a
writer may still be adding it; on a *truncated* file (an incomplete copy, a full disk) it
retries for ever. :func:`open_readonly` therefore compares the file's size with the end of file
its superblock records before it opens anything.
"""

from __future__ import annotations

from pathlib import Path

import h5py

SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""The HDF5 format signature, at offset 0 or after a user block of 512 · 2^k bytes."""


def stored_end_of_file(path: str | Path) -> int | None:
    """The end-of-file address (bytes from the start of the file) that the HDF5 superblock
    records, or None when no superblock of a known version is found."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        offset = 0
        while offset < size:
            fh.seek(offset)
            head = fh.read(64)
            if head[:8] == SIGNATURE:
                return _end_from_superblock(head)
            offset = 512 if offset == 0 else 2 * offset
    return None


def _end_from_superblock(head: bytes) -> int | None:
    version = head[8]
    if version in (2, 3):
        offsets, start = head[9], 12
    elif version in (0, 1):
        offsets, start = head[13], 24 if version == 0 else 28
    else:
        return None
    if offsets not in (2, 4, 8) or len(head) < start + 3 * offsets:
        return None
    # libhdf5 writes the end-of-file address counting the user block too (checked in the tests),
    # so it is read as an absolute offset; a writer that left the user block out would only make
    # the check more lenient
    at = start + 2 * offsets
    return int.from_bytes(head[at : at + offsets], "little")


def open_readonly(path: str | Path) -> h5py.File:
    """Open ``path`` read-only: as a SWMR reader (a file being written, or left by a writer that
    died), else plainly. ``OSError`` with a message a person can act on for a truncated file."""
    path = Path(path)
    end = stored_end_of_file(path)
    size = path.stat().st_size
    if end is not None and size < end:
        raise OSError(
            f"truncated file: {size} of the {end} bytes its HDF5 superblock records (an incomplete "
            "copy or a full disk); copy it again from the original"
        )
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError:
        return h5py.File(path, "r")
