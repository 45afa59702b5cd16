"""The analysis hand-off: after a scan whose request asks for it, ``dwellwise analyze`` runs on
the job's cube file (element maps, pigment maps, PNGs beside the file).

It runs in the runner's worker thread after the job is marked completed, so the next queued
scan waits for it and never shares the CPU with it. Whatever goes wrong, the daemon goes on:
a failure is logged (and so published on the ``log`` topic of the event socket) and the job
stays completed; its measured data is never touched (:mod:`dwellwise.analyze`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from dwellwise.daemon.protocol import Job

log = logging.getLogger(__name__)


class CubeAnalysis:
    """Callable the runner calls with each completed job that asked for analysis."""

    def __init__(self, *, device: str = "auto", png: bool = True) -> None:
        self.device = device
        """Where the models run: ``auto``, ``cpu``, ``cuda``..."""
        self.png = png
        """Whether to save PNG maps beside the cube file."""
        self.last_error: str | None = None
        """Why the most recent analysis failed (None when it succeeded)."""

    def __call__(self, job: Job) -> None:
        from dwellwise.analyze import AnalysisError, analyze_cube

        path = Path(job.cube_file)
        log.info("job %s: analysing %s", job.job_id, path.name)
        try:
            summary = analyze_cube(
                path, png_dir=path.parent if self.png else None, device=self.device
            )
        except AnalysisError as exc:
            self.last_error = str(exc)
            log.error("job %s: analysis refused: %s", job.job_id, exc)
            return
        except Exception as exc:  # a model or file error: the daemon goes on
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("job %s: the analysis failed", job.job_id)
            return
        self.last_error = None
        parts = []
        if summary.maps_model:
            parts.append(f"{len(summary.map_names)} element maps ({summary.maps_model})")
        if summary.linear_names:
            parts.append("linear-fit baseline")
        if summary.pigment_model:
            parts.append(f"{len(summary.pigment_names)} pigment maps ({summary.pigment_model})")
        log.info(
            "job %s: analysis written to %s in %.1f s: %s%s",
            job.job_id,
            path.name,
            summary.seconds,
            ", ".join(parts) or "nothing",
            "".join(f"; {note}" for note in summary.notes),
        )
