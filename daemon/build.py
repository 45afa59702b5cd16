"""Where a job's beamline and plan are built from its scan request.

:func:`build_scan` is the one place that turns a :class:`~dwellwise.daemon.protocol.ScanRequest`
into Ophyd devices and a Bluesky plan: the daemon calls it when a job is submitted (so a request
that cannot run is refused before it is queued), and resuming an interrupted job can call it again
with the same request and cube file (``resume=True``): the plan then goes on from the first row the
file does not hold (:func:`~dwellwise.planners.plans.resume_scan`).

Without real devices every job gets its own simulated beamline (the request's scene, speedup and
seed). With real devices (:class:`~dwellwise.daemon.devices.Devices`, from ``[devices]``) the job
runs the same plans on the daemon's devices; a simulated detector beside a real stage is made per
job from the request's scene. Request fields that mean nothing on the configured devices are
refused when a client sets them (:func:`check_request`) and left out of the job record.

A daemon killed with ``kill -9`` leaves its cube file with the HDF5 superblock's "open for
(SWMR) write" flags set; HDF5 then refuses to open it for writing ("may use h5clear"), although
every flushed row is intact and a SWMR reader reads it. :func:`check_resumable` clears those flags
the way ``h5clear -m`` does (after making sure no live process holds the file) before the resumed
plan reopens it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import struct
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dwellwise.daemon.devices import Devices, DevicesUnavailable
from dwellwise.daemon.protocol import ScanRequest

from dwellwise.hdf5_open import open_readonly

log = logging.getLogger(__name__)


class BuildError(ValueError):
    """A scan request the beamline cannot run; the message says why (and what would fit)."""


@dataclass
class PreparedScan:
    """A job ready for the RunEngine."""

    job_id: str
    """The job's id."""
    request: ScanRequest
    """The request, defaults filled in."""
    cube_file: Path
    """The cube file the scan writes."""
    plan: Generator[Any, Any, Any] = field(repr=False)
    """The Bluesky plan (not started)."""
    beamline: Any = field(repr=False)
    """The devices (``.stage``, ``.sdd``, ``.clock``)."""
    passes: int
    """Passes planned."""
    budget_s: float
    """Instrument-time budget, seconds."""
    resumed: ResumePoint | None = None
    """Where a resumed job goes on (``None``: a new scan)."""
    not_applicable: tuple[str, ...] = ()
    """Request fields that mean nothing on the devices it runs on (left out of the job record)."""


@dataclass(frozen=True)
class ResumePoint:
    """What an interrupted job's cube file says about where it goes on."""

    pass_number: int
    """Pass it goes on with (1-based)."""
    rows_recorded: int
    """Rows of all passes already in the file."""
    budget_used_s: float
    """Instrument time used before the interruption, seconds."""
    flags_cleared: bool = False
    """Whether the file's "open for write" flags were left set (by a killed writer) and cleared."""
    charged_s: float = 0.0
    """Instrument time charged for rows recorded after the last budget write, seconds."""
    charged_rows: tuple[tuple[int, int], ...] = ()
    """Those rows, ``(pass, row)``."""
    partial_rows: tuple[tuple[int, int], ...] = ()
    """``(pass, row)`` left half-written by the killed writer (their summed times already hold
    part of the killed attempt; see :func:`_partial_rows`)."""
    reopened_rows: tuple[tuple[int, int], ...] = ()
    """``(pass, row)`` marked complete whose data never reached the file (see
    :func:`_reopen_rows_without_data`): measured again by the resumed scan."""


def new_job_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxxxx``: sortable by time, unique by its random tail."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def build_scan(
    request: ScanRequest,
    data_dir: Path,
    *,
    job_id: str | None = None,
    allow_scene_files: bool = False,
    resume: bool = False,
    cube_file: str | Path | None = None,
    stage_options: dict[str, Any] | None = None,
    devices: Devices | None = None,
) -> PreparedScan:
    """Build the beamline and the plan of ``request``; :class:`BuildError` if the request cannot
    run (the planners' :class:`~dwellwise.planners.ScanRefused` message kept).

    ``devices``: the daemon's real devices (``None``: a simulated beamline of the request's
    scene, with ``stage_options`` for its stage). ``resume=True`` (with the interrupted job's
    ``job_id``; ``cube_file`` defaults to the one a new scan of that job would write): the plan
    goes on with the scan in ``cube_file`` from its first incomplete row, counting the budget
    already spent (:func:`check_resumable` first)."""
    from dwellwise.drivers.sim import sim_beamline

    if resume and job_id is None:
        raise ValueError("resuming needs the interrupted job's id")
    job_id = job_id or new_job_id()
    simulated_sdd = devices is None or not devices.real_sdd
    if simulated_sdd:
        _check_scene(request.scene, allow_scene_files)
    if cube_file is None:
        cube_file = Path(data_dir).resolve() / f"{job_id}.h5"
    cube_file = Path(cube_file).resolve()
    if devices is not None:
        try:
            devices.open()
        except DevicesUnavailable as exc:
            raise BuildError(f"the devices are not available: {exc}") from None
    point = check_resumable(cube_file) if resume else None
    md: dict[str, Any] = {"job_id": job_id, "daemon": "dwellwise", "mode": request.mode}
    if simulated_sdd:
        md["scene"] = request.scene
    job_sdd = None
    if devices is None:
        try:
            bl = sim_beamline(
                request.scene,
                shape=tuple(request.shape),
                pixel_size=request.pixel_size,
                speedup=request.speedup,
                seed=request.seed,
                **(stage_options or {}),
            )
        except (ValueError, OSError) as exc:
            raise BuildError(f"cannot build the simulated beamline: {exc}") from None
        bl.sdd.file_path = str(cube_file)
    else:
        md["devices"] = devices.describe()
        sdd = devices.sdd
        if sdd is None:
            job_sdd = sdd = _job_sdd(request, devices.stage)
        bl = SimpleNamespace(stage=devices.stage, sdd=sdd, clock=devices.stage.clock)
    if point is not None:
        _fresh_counting_noise(bl.sdd, request.seed, point)
    plan, passes = _plan(request, bl.stage, bl.sdd, md, cube_file if point is not None else None)
    if devices is not None:
        plan = _on_shared_devices(plan, bl.stage, bl.sdd, cube_file, job_sdd)
    return PreparedScan(
        job_id=job_id,
        request=request,
        cube_file=cube_file,
        plan=plan,
        beamline=bl,
        passes=passes,
        budget_s=float(request.budget),
        resumed=point,
        not_applicable=not_applicable(devices),
    )


def _check_scene(scene: str, allow_scene_files: bool) -> None:
    from dwellwise.simulators.scenes import scene_names

    if scene not in scene_names() and not allow_scene_files:
        raise BuildError(
            f"unknown scene {scene!r}; scenes: {', '.join(scene_names())} "
            "(image files only when the daemon's config sets beamline.allow_scene_files)"
        )


def _plan(request: ScanRequest, stage: Any, sdd: Any, md: dict, resume_from: Path | None):
    """The Bluesky plan of ``request`` on ``stage`` and ``sdd`` and the passes it plans
    (``resume_from``: the cube file of an interrupted scan to go on with)."""
    from dwellwise.planners import ScanRefused, adaptive_scan, budget_raster_scan
    from dwellwise.planners.plans import resume_scan

    common = dict(shape=tuple(request.shape), pixel_size=request.pixel_size, budget=request.budget)
    try:
        if resume_from is not None:
            plan = resume_scan(stage, sdd, cube_file=resume_from, md=md)
            return plan, 1 if request.mode == "raster" else request.passes
        if request.mode == "raster":
            return budget_raster_scan(stage, sdd, md=md, **common), 1
        plan = adaptive_scan(
            stage,
            sdd,
            t0=request.t0,
            policy=request.policy,
            passes=request.passes,
            weights=request.weights,
            md=md,
            **common,
        )
        return plan, request.passes
    except ScanRefused as exc:
        raise BuildError(str(exc)) from None
    except ValueError as exc:  # anything else the planners refuse
        raise BuildError(f"scan refused: {exc}") from None


def _job_sdd(request: ScanRequest, stage: Any) -> Any:
    """A simulated detector of the request's scene beside a real stage (gated by the stage only
    while its job runs, see :func:`_on_shared_devices`)."""
    from dwellwise.drivers.sim_sdd import BeamPosition, make_sim_sdd
    from dwellwise.simulators.scenes import load_scene

    try:
        scene = load_scene(request.scene, shape=tuple(request.shape), seed=request.seed)
    except (ValueError, OSError) as exc:
        raise BuildError(f"cannot build the simulated detector: {exc}") from None
    beam = BeamPosition(scene, request.pixel_size)
    sdd = make_sim_sdd(scene, beam, stage, name="sdd", clock=stage.clock, seed=request.seed)
    stage.unsubscribe_rows(sdd)
    return sdd


def _on_shared_devices(plan, stage: Any, sdd: Any, cube_file: Path, job_sdd: Any = None):
    """Run ``plan`` on devices that outlive it: when it starts (not when it is queued, while
    another job may be running) point the detector at this job's cube file and gate a per-job
    simulated detector; when it ends, ungate it."""
    stage.resume()  # a pause an aborted job left open is no scan's time
    sdd.file_path = str(cube_file)
    if job_sdd is not None:
        stage.subscribe_rows(job_sdd)
    try:
        return (yield from plan)
    finally:
        if job_sdd is not None:
            stage.unsubscribe_rows(job_sdd)


def not_applicable(devices: Devices | None) -> tuple[str, ...]:
    """Scan-request fields that mean nothing on ``devices``: the scene and seed of a simulated
    detector, the speedup of a simulated clock."""
    if devices is None:
        return ()
    return ("scene", "seed", "speedup") if devices.real_sdd else ("speedup",)


def check_request(request: ScanRequest, devices: Devices | None) -> None:
    """Refuse (:class:`BuildError`, naming the field) request fields a client set that mean
    nothing on the daemon's real devices (fields left out are fine, and so are defaults)."""
    if devices is None:
        return
    given = request.model_fields_set
    for key in not_applicable(devices):
        if key not in given:
            continue
        if key == "speedup" and request.speedup == devices.speedup:
            continue
        if key == "speedup" and devices.speedup == 1.0:
            why = "the devices run in real time"
        elif key == "speedup":
            why = f"the devices run at {devices.speedup:g} instrument seconds per second"
        else:
            why = f"the detector is real ({devices.section.sdd.describe()})"
        raise BuildError(
            f"{key}: this daemon drives real hardware and {why}; leave {key} out of the request"
        )


def _fresh_counting_noise(sdd: Any, seed: int, point: ResumePoint) -> None:
    """A resumed simulation must not replay the counting noise its first run already drew (the
    painting stays the one ``seed`` made; only the detector's Poisson draws are reseeded)."""
    import numpy as np

    if hasattr(sdd, "_rng"):
        sdd._rng = np.random.default_rng([int(seed), 1 + point.rows_recorded])


def check_resumable(cube_file: str | Path) -> ResumePoint:
    """Check that an interrupted scan can go on from ``cube_file``; :class:`BuildError` saying
    why not (missing, unreadable, not written by a plan, already complete).

    Recovers what a ``kill -9`` leaves: the superblock's "open for write" flags are cleared
    (:func:`clear_write_flags`), and a row recorded after the last budget write (a kill between
    the row's write and the budget's, see :func:`_charge_unrecorded_time`) is charged to the budget.
    """
    import h5py
    from dwellwise.planners import ScanRefused
    from dwellwise.planners.resume import read_resume_state

    path = Path(cube_file)
    if not path.is_file():
        raise BuildError(f"its cube file {path} is missing; there is nothing to resume from")
    try:
        cleared = clear_write_flags(path)
    except OSError as exc:
        raise BuildError(f"its cube file {path} is unreadable ({exc})") from None
    try:  # the resumed plan reopens it for writing: make sure HDF5 lets it
        f = h5py.File(path, "r+", libver="latest")
    except OSError as exc:
        raise BuildError(f"its cube file {path} is unreadable ({exc})") from None
    try:
        with f:
            reopened = _reopen_rows_without_data(f)
            charged = _charge_unrecorded_time(f)
            suspect = _partial_rows(f)
    except (OSError, KeyError, ValueError, TypeError) as exc:  # a damaged layout
        raise BuildError(
            f"its cube file {path} is unreadable ({type(exc).__name__}: {exc})"
        ) from None
    try:
        state = read_resume_state(path)
    except ScanRefused as exc:
        raise BuildError(str(exc)) from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise BuildError(
            f"its cube file {path} is unreadable ({type(exc).__name__}: {exc})"
        ) from None
    if state.finished:
        raise BuildError(f"its cube file {path} already holds every pass; nothing to resume")
    with open_readonly(path) as f:
        recorded = sum(int(g["rows_complete"][...].sum()) for g in f["entry/passes"].values())
    if suspect:
        log.warning(
            "%s: row(s) %s were being written when the writer died; their summed live/real "
            "time already holds part of that attempt, which the resumed row adds to again",
            path,
            ", ".join(f"{r} of pass {n}" for n, r in suspect),
        )
    return ResumePoint(
        pass_number=state.pass_number,
        rows_recorded=recorded,
        budget_used_s=float(state.budget_used_s),
        flags_cleared=cleared,
        charged_s=sum(s for _, _, s in charged),
        charged_rows=tuple((n, r) for n, r, _ in charged),
        partial_rows=tuple(suspect),
        reopened_rows=tuple(reopened),
    )


def _reopen_rows_without_data(f: Any) -> list[tuple[int, int]]:
    """Clear ``rows_complete`` of rows whose flag reached the file but whose live time did not
    (a pixel with planned dwell and no live time), so that the resumed scan measures them again;
    returns those ``(pass, row)``. Files written by this version flush a row's data before its
    flag; an older writer killed during its one flush per row could leave this."""
    import numpy as np

    out = []
    for name in sorted(f["entry/passes"], key=int):
        g = f["entry/passes"][name]
        done = g["rows_complete"][...].astype(bool)
        empty = np.any((g["dwell_planned"][...] > 0) & (g["live_time"][...] <= 0), axis=1)
        for r in np.flatnonzero(done & empty):
            g["rows_complete"][r] = False
            out.append((int(name), int(r)))
    if out:
        f.flush()
        log.warning(
            "%s: row(s) %s were marked complete without their data; they are measured again",
            f.filename, ", ".join(f"{r} of pass {n}" for n, r in out),
        )
    return out


def _charge_unrecorded_time(f: Any) -> list[tuple[int, int, float]]:
    """Charge the budget for a row the file holds whose time it does not (``(pass, row, s)``).

    The plan records a row (``rows_complete``) before the budget it used (``budget_used_s`` and
    the row's ``row_end_s``, written next); a kill between the two leaves a recorded row whose
    time is in no budget. Its time is estimated as the row's planned dwell plus the largest
    row overhead (row time less its dwell) seen between consecutive rows of the same pass, and
    added to ``budget_used_s`` (so the resumed scan does not spend it twice)."""
    import numpy as np

    if "entry/budget_used_s" not in f or "entry/passes" not in f:
        return []
    passes = f["entry/passes"]
    used = float(f["entry/budget_used_s"][()])
    missing: list[tuple[str, int, float]] = []
    overheads: list[float] = []
    last_end = 0.0
    for name in sorted(passes, key=int):
        g = passes[name]
        if "row_end_s" not in g:  # written before the file kept a timeline
            return []
        done = g["rows_complete"][...].astype(bool)
        ends = g["row_end_s"][...]
        dwell = g["dwell_planned"][...].sum(axis=1)
        timed = np.flatnonzero(done & np.isfinite(ends))
        order = timed[np.argsort(ends[timed])]
        overheads += [
            float(ends[b] - ends[a] - dwell[b]) for a, b in zip(order[:-1], order[1:], strict=True)
        ]
        if timed.size:
            last_end = max(last_end, float(ends[timed].max()))
        missing += [
            (name, int(r), float(dwell[r])) for r in np.flatnonzero(done & ~np.isfinite(ends))
        ]
    if not missing:
        return []
    if used > last_end + 1e-9:  # the budget write landed, only the row's end time did not
        for name, r, _ in missing:
            passes[name]["row_end_s"][r] = used
        f.flush()
        return []
    extra = max([0.0, *overheads])
    charged = []
    for name, r, dwell in missing:
        used += dwell + extra
        passes[name]["row_end_s"][r] = used
        charged.append((int(name), r, dwell + extra))
    f["entry/budget_used_s"][()] = used
    f.flush()
    log.warning(
        "%s: row(s) %s were recorded after the last budget write; charged %.4g s to the budget",
        f.filename,
        ", ".join(f"{r} of pass {n}" for n, r, _ in charged),
        sum(s for _, _, s in charged),
    )
    return charged


def _partial_rows(f: Any) -> list[tuple[int, int]]:
    """Rows not recorded in a pass whose summed live time (``/entry/data/live_time``) differs from
    the sum of the passes that did record them: a writer killed while writing the row."""
    import numpy as np

    passes = f["entry/passes"]
    names = sorted(passes, key=int)
    done = {n: passes[n]["rows_complete"][...].astype(bool) for n in names}
    expected = sum(np.where(done[n][:, None], passes[n]["live_time"][...], 0.0) for n in names)
    summed = f["entry/data/live_time"][...]
    bad = ~np.all(np.isclose(summed, expected, rtol=1e-9, atol=1e-12), axis=1)
    out = []
    for r in np.flatnonzero(bad):
        pending = [int(n) for n in names if not done[n][r]]
        out.append((pending[0] if pending else 0, int(r)))
    return out


# -- the HDF5 superblock's file-consistency flags ----------------------------------------------
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WRITE_FLAGS = 0x01 | 0x04
"""Superblock v3 status flags: file open for write (bit 0), for SWMR write (bit 2)."""


def clear_write_flags(path: str | Path) -> bool:
    """Clear the "open for write / SWMR write" flags a killed writer left in an HDF5 file's
    superblock (what ``h5clear -m`` does), so HDF5 opens it again; ``True`` if they were set.

    The end-of-file address is raised to the file's size, so that new allocations never land on
    data the killed writer put past its last recorded end. Refuses (``OSError``) when the
    superblock's checksum does not match, or when a live writer holds the file's ``flock`` (HDF5
    holds it while a file is open for writing, but gives it up once the writer enters SWMR mode,
    so a live SWMR writer cannot be told from a dead one: call this only on files no process
    writes any more, as the runner does for a job it neither runs nor queues). Only version 2
    and 3 superblocks carry these flags; others are left alone."""
    path = Path(path)
    with open(path, "r+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(f"{path} is open in another process") from None
        try:
            size = os.fstat(fh.fileno()).st_size
            base = _find_superblock(fh, size)
            fh.seek(base)
            head = fh.read(12)
            version, offsets, flags = head[8], head[9], head[11]
            if version not in (2, 3) or not flags & _WRITE_FLAGS:
                return False
            if offsets not in (4, 8):
                raise OSError(f"{path}: unexpected HDF5 superblock ({offsets}-byte addresses)")
            n = 12 + 4 * offsets
            fh.seek(base)
            block = bytearray(fh.read(n + 4))
            if (
                len(block) != n + 4
                or _lookup3(bytes(block[:n])) != struct.unpack("<I", block[n:])[0]
            ):
                raise OSError(f"{path}: the HDF5 superblock is damaged (checksum mismatch)")
            fmt = "<Q" if offsets == 8 else "<I"
            eof_at = 12 + 2 * offsets  # base address, superblock extension, end of file
            (eof,) = struct.unpack_from(fmt, block, eof_at)
            struct.pack_into(fmt, block, eof_at, max(eof, size - base))
            block[11] = flags & ~_WRITE_FLAGS & 0xFF
            struct.pack_into("<I", block, n, _lookup3(bytes(block[:n])))
            fh.seek(base)
            fh.write(bytes(block))
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    log.warning("%s: cleared the HDF5 'open for write' flags a killed writer left", path)
    return True


def _find_superblock(fh: Any, size: int) -> int:
    """The superblock sits at 0, 512, 1024, 2048, ... (after a user block, if any)."""
    at = 0
    while at + len(_SIGNATURE) <= size:
        fh.seek(at)
        if fh.read(len(_SIGNATURE)) == _SIGNATURE:
            return at
        at = 512 if at == 0 else at * 2
    raise OSError("not an HDF5 file (no superblock signature)")


_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum of HDF5 metadata."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _M32
    i = 0
    while n - i > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _M32
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _M32
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _M32
        a = (a - c) & _M32 ^ _rot(c, 4)
        c = (c + b) & _M32
        b = (b - a) & _M32 ^ _rot(a, 6)
        a = (a + c) & _M32
        c = (c - b) & _M32 ^ _rot(b, 8)
        b = (b + a) & _M32
        a = (a - c) & _M32 ^ _rot(c, 16)
        c = (c + b) & _M32
        b = (b - a) & _M32 ^ _rot(a, 19)
        a = (a + c) & _M32
        c = (c - b) & _M32 ^ _rot(b, 4)
        b = (b + a) & _M32
        i += 12
    tail = data[i:]
    if not tail:
        return c
    words = [a, b, c]
    for j, byte in enumerate(tail):
        words[j // 4] = (words[j // 4] + (byte << (8 * (j % 4)))) & _M32
    a, b, c = words
    c = (c ^ b) - _rot(b, 14) & _M32
    a = (a ^ c) - _rot(c, 11) & _M32
    b = (b ^ a) - _rot(a, 25) & _M32
    c = (c ^ b) - _rot(b, 16) & _M32
    a = (a ^ c) - _rot(c, 4) & _M32
    b = (b ^ a) - _rot(a, 14) & _M32
    c = (c ^ b) - _rot(b, 24) & _M32
    return c
