"""Where a job's beamline and plan are built from its scan request.

:func:`build_scan` is the one place that turns a :class:`~dwellwise.daemon.protocol.ScanRequest`
into Ophyd devices and a Bluesky plan: the daemon calls it when a job is submitted (so a request
that cannot run is refused before it is queued), and resuming an interrupted job can call it again
with the same request and cube file.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dwellwise.daemon.protocol import ScanRequest


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


def new_job_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxxxx``: sortable by time, unique by its random tail."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def build_scan(
    request: ScanRequest,
    data_dir: Path,
    *,
    job_id: str | None = None,
    allow_scene_files: bool = False,
) -> PreparedScan:
    """Build the simulated beamline and the plan of ``request``; :class:`BuildError` if the
    request cannot run (the planners' :class:`~dwellwise.planners.ScanRefused` message kept)."""
    from dwellwise.drivers.sim import sim_beamline
    from dwellwise.planners import ScanRefused, adaptive_scan, budget_raster_scan
    from dwellwise.simulators.scenes import scene_names

    job_id = job_id or new_job_id()
    if request.scene not in scene_names() and not allow_scene_files:
        raise BuildError(
            f"unknown scene {request.scene!r}; scenes: {', '.join(scene_names())} "
            "(image files only when the daemon's config sets beamline.allow_scene_files)"
        )
    cube_file = Path(data_dir).resolve() / f"{job_id}.h5"
    try:
        bl = sim_beamline(
            request.scene,
            shape=tuple(request.shape),
            pixel_size=request.pixel_size,
            speedup=request.speedup,
            seed=request.seed,
        )
    except (ValueError, OSError) as exc:
        raise BuildError(f"cannot build the simulated beamline: {exc}") from None
    bl.sdd.file_path = str(cube_file)
    md = {"job_id": job_id, "daemon": "dwellwise", "scene": request.scene, "mode": request.mode}
    common = dict(shape=tuple(request.shape), pixel_size=request.pixel_size, budget=request.budget)
    try:
        if request.mode == "raster":
            plan = budget_raster_scan(bl.stage, bl.sdd, md=md, **common)
            passes = 1
        else:
            plan = adaptive_scan(
                bl.stage,
                bl.sdd,
                t0=request.t0,
                policy=request.policy,
                passes=request.passes,
                weights=request.weights,
                md=md,
                **common,
            )
            passes = request.passes
    except ScanRefused as exc:
        raise BuildError(str(exc)) from None
    except ValueError as exc:  # anything else the planners refuse
        raise BuildError(f"scan refused: {exc}") from None
    return PreparedScan(
        job_id=job_id,
        request=request,
        cube_file=cube_file,
        plan=plan,
        beamline=bl,
        passes=passes,
        budget_s=float(request.budget),
    )
