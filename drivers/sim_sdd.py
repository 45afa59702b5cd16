"""The simulated silicon drift detector: step-mode counting and fly-scan mapping mode.

Step mode (Bluesky's ``count``, ``grid_scan``): ``trigger()`` counts for ``preset_time`` seconds
(real time) at the stage's current position; ``read()`` gives the spectrum, the live and real
time, the dead-time fraction and one ROI sum per element.

Mapping mode (dwellwise's fly plans): ``prepare(CubeSetup(...))`` opens the cube file and gates
the detector with the stage's fly rows. For each row the stage reports the time the beam spent
in every pixel; the detector draws Poisson spectra for exactly those times (live time follows
from the dead time), writes the row to the cube file when the row ends and queues it for
Bluesky: ``sdd.pixels`` yields one event page per row (ROI counts, live time, positions) and
``sdd.spectra`` yields StreamResource/StreamDatum documents that point into the cube file.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from dwellwise.drivers.fly import RowGates
from dwellwise.simulators.clock import Clock, ScaledClock
from dwellwise.simulators.detector import PoissonSDD
from dwellwise.simulators.scenes import Scene
from event_model import StreamRange, compose_stream_resource
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd import DynamicDeviceComponent as DDC
from ophyd.status import Status

from dwellwise.cube import CubeWriter

SPECTRA_DATASET = "/entry/data/counts"
"""Where the spectra referenced by the ``spectra`` stream live in the cube file."""


@dataclass(frozen=True)
class CubeSetup:
    """What the detector needs to record a mapping scan (``bps.prepare(sdd, CubeSetup(...))``)."""

    path: Path
    """Cube file to create, overwritten if present."""
    shape: tuple[int, int]
    """Region ``(H, W)`` pixels."""
    pixel_size: float
    """Pitch, mm."""
    origin: tuple[float, float] = (0.0, 0.0)
    """Centre of pixel (0, 0), ``(x, y)`` mm."""
    passes: int = 1
    """Number of passes the file holds."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Written to ``/xrfmap/scan_metadata``."""
    resume: bool = False
    """Reopen the existing file at ``path`` and go on writing it (an interrupted scan)."""


class BeamPosition:
    """Where the beam is on the painting: maps stage positions (mm) to scene pixels."""

    def __init__(self, scene: Scene, pixel_size: float) -> None:
        self.scene = scene
        self.pixel_size = float(pixel_size)
        self._rows: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def pixel(self, x: np.ndarray, y: float) -> tuple[int, np.ndarray]:
        """Scene row and columns under positions ``x`` (mm) on row position ``y`` (mm); -1 when
        off the painting."""
        h, w = self.scene.shape
        r = int(np.floor(y / self.pixel_size + 0.5))
        c = np.floor(np.asarray(x) / self.pixel_size + 0.5).astype(np.int64)
        c[(c < 0) | (c >= w)] = -1
        return (r if 0 <= r < h else -1), c

    def component_rates(self, x: np.ndarray, y: float) -> np.ndarray:
        """``(J, N)`` component rates, counts/s, under positions ``x`` on row ``y`` (0 off the
        painting)."""
        r, c = self.pixel(np.atleast_1d(x), y)
        n_comp = self.scene.model.n_components
        out = np.zeros((n_comp, c.size))
        if r < 0:
            return out
        row = self._row(r)
        on = c >= 0
        out[:, on] = row[:, c[on]]
        return out

    def truth(self, shape: tuple[int, int], pixel_size: float, origin: tuple[float, float]):
        """Truth ``(rates, roi_rates)`` ``(C, H, W)`` counts/s sampled on a scan grid."""
        h, w = shape
        xs = origin[0] + pixel_size * np.arange(w)
        ys = origin[1] + pixel_size * np.arange(h)
        rates = np.zeros((len(self.scene.elements), h, w))
        roi = np.zeros_like(rates)
        for i, y in enumerate(ys):
            r, c = self.pixel(xs, y)
            if r < 0:
                continue
            on = c >= 0
            rates[:, i, on] = self.scene.rates[:, r, c[on]]
            roi[:, i, on] = self.scene.roi_rates[:, r, c[on]]
        return rates, roi

    def _row(self, r: int) -> np.ndarray:
        with self._lock:
            if r not in self._rows:
                self._rows[r] = self.scene.component_rates(slice(r, r + 1))[:, 0, :]
            return self._rows[r]


@cache
def _sdd_class(elements: tuple[str, ...]) -> type[SimSDD]:
    """A SimSDD subclass with one ROI signal per element channel."""
    rois = DDC(
        {el: (Signal, None, {"value": 0, "kind": "hinted"}) for el in elements},
        doc="Counts in each element's ROI window (strongest line ± 1 FWHM)",
    )
    return type(f"SimSDD_{len(elements)}", (SimSDD,), {"rois": rois})


def make_sim_sdd(scene: Scene, beam: BeamPosition, stage, **kwargs) -> SimSDD:
    """A simulated SDD for ``scene``, gated by ``stage``, with ROIs of the scene's elements."""
    cls = _sdd_class(tuple(scene.elements))
    return cls(scene=scene, beam=beam, stage=stage, **kwargs)


class SimSDD(Device):
    """Simulated SDD (use :func:`make_sim_sdd`, which adds one ROI signal per element)."""

    spectrum = Cpt(Signal, value=np.zeros(1, np.uint32), kind="normal")
    """Last spectrum, counts per channel (step mode)."""
    live_time = Cpt(Signal, value=0.0, kind="normal")
    """Live time of the last acquisition, seconds."""
    real_time = Cpt(Signal, value=0.0, kind="normal")
    """Real time of the last acquisition, seconds."""
    dead_time_fraction = Cpt(Signal, value=0.0, kind="normal")
    """1 − live/real of the last acquisition."""
    preset_time = Cpt(Signal, value=0.1, kind="config")
    """Step-mode acquisition time (real time), seconds."""

    def __init__(
        self,
        *,
        scene: Scene,
        beam: BeamPosition,
        stage,
        name: str = "sdd",
        clock: Clock | None = None,
        dead_time_s: float = 1e-6,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.scene = scene
        self.beam = beam
        self.motion = stage
        self.clock = clock or ScaledClock(1.0)
        self.counter = PoissonSDD(scene.model, dead_time_s=dead_time_s)
        self.axis = scene.model.axis
        self.elements = tuple(scene.elements)
        self.spectrum.put(np.zeros(self.axis.channels, np.uint32))
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self.writer: CubeWriter | None = None
        self.setup: CubeSetup | None = None
        self._pending: dict[tuple[int, int], Any] = {}
        self._pages: deque[dict] = deque()
        self._assets: deque[tuple[str, dict]] = deque()
        self._resources: dict[int, Any] = {}
        self._frames_written = 0
        self.pixels = PixelPages(self)
        """Event pages of per-pixel ROI counts, live time and positions (one per row)."""
        self.spectra = SpectraAssets(self)
        """StreamResource/StreamDatum documents of the spectra in the cube file."""
        stage.subscribe_rows(self)

    # -- step mode ---------------------------------------------------------------------
    def trigger(self) -> Status:
        status = Status(obj=self)
        preset = float(self.preset_time.get())

        def run() -> None:
            try:
                start = self.clock.now()
                rates = self.beam.component_rates(
                    np.array([float(self.motion.x.position)]), float(self.motion.y.position)
                )
                acq = self._acquire(rates, np.array([preset]))
                self._publish(acq.counts[0], float(acq.live_time[0]), preset)
                self.clock.sleep_until(start + preset)
                status.set_finished()
            except Exception as exc:
                status.set_exception(exc)

        threading.Thread(target=run, name=f"{self.name}-count", daemon=True).start()
        return status

    def _publish(self, counts: np.ndarray, live: float, real: float) -> None:
        self.spectrum.put(counts)
        self.live_time.put(live)
        self.real_time.put(real)
        self.dead_time_fraction.put(1.0 - live / real if real > 0 else 0.0)
        roi = self._roi(counts[None])[:, 0]
        for el, value in zip(self.elements, roi, strict=True):
            getattr(self.rois, el).put(int(value))

    def _roi(self, counts: np.ndarray) -> np.ndarray:
        """``(N, E)`` spectra -> ``(C, N)`` ROI counts."""
        csum = np.concatenate(
            [np.zeros((counts.shape[0], 1), np.int64), np.cumsum(counts, axis=1, dtype=np.int64)],
            axis=1,
        )
        win = self.scene.model.roi_windows
        return (csum[:, win[:, 1] + 1] - csum[:, win[:, 0]]).T

    def _acquire(self, rates: np.ndarray, real_time: np.ndarray):
        with self._rng_lock:
            seed = int(self._rng.integers(2**63))
        return self.counter.acquire(rates, real_time=real_time, rng=np.random.default_rng(seed))

    # -- mapping mode ------------------------------------------------------------------
    def prepare(self, setup: CubeSetup) -> Status:
        """Open the cube file for a mapping scan (closing any previous one)."""
        self.close_file()
        if setup.resume:
            self.writer = CubeWriter.reopen(setup.path)
            if self.writer.shape != tuple(setup.shape):
                self.close_file()
                raise ValueError(f"{setup.path} holds a {self.writer.shape} scan, not {setup.shape}")
            self.writer.set_status("running")
            return self._prepared(setup)
        rates, roi = self.beam.truth(setup.shape, setup.pixel_size, setup.origin)
        self.writer = CubeWriter(
            setup.path,
            shape=setup.shape,
            axis=self.axis,
            pixel_size=setup.pixel_size,
            elements=self.elements,
            roi_windows=self.scene.model.roi_windows,
            passes=setup.passes,
            origin=setup.origin,
            truth={"rates": rates, "roi_rates": roi, "elements": self.elements},
            metadata=setup.metadata,
        )
        return self._prepared(setup)

    def _prepared(self, setup: CubeSetup) -> Status:
        self.setup = setup
        self._pending.clear()
        self._pages.clear()
        self._assets.clear()
        self._resources.clear()
        status = Status(obj=self)
        status.set_finished()
        return status

    def row_started(self, gates: RowGates) -> None:
        if self.writer is None:
            return
        rates = self.beam.component_rates(gates.x, gates.y)
        self._pending[(gates.pass_number, gates.row)] = self._acquire(rates, gates.real_time)

    def row_aborted(self, gates: RowGates) -> None:
        self._pending.pop((gates.pass_number, gates.row), None)

    def row_finished(self, gates: RowGates) -> None:
        acq = self._pending.pop((gates.pass_number, gates.row), None)
        if acq is None or self.writer is None:
            return
        roi = self.writer.write_row(
            gates.pass_number,
            gates.row,
            acq.counts,
            acq.live_time,
            acq.real_time,
            planned_dwell=gates.planned_dwell,
        )
        self._queue_row(gates, acq, roi)

    def _queue_row(self, gates: RowGates, acq, roi: np.ndarray) -> None:
        w = gates.x.size
        now = time.time()
        data = {
            "pass_number": [gates.pass_number] * w,
            "row": [gates.row] * w,
            "col": list(range(w)),
            "x": gates.x.tolist(),
            "y": [gates.y] * w,
            "planned_dwell": gates.planned_dwell.tolist(),
            "live_time": acq.live_time.tolist(),
            "real_time": acq.real_time.tolist(),
            "roi_counts": roi.T.tolist(),
        }
        self._pages.append(
            {"data": data, "timestamps": {k: [now] * w for k in data}, "time": [now] * w}
        )
        resource = self._resources.get(gates.pass_number)
        if resource is None:
            resource = compose_stream_resource(
                mimetype="application/x-hdf5",
                uri=Path(self.writer.path).absolute().as_uri(),
                data_key="spectrum",
                parameters={
                    "dataset": SPECTRA_DATASET,
                    "pass_number": gates.pass_number,
                    "frames": "row-major (row, col) pixels; spectra summed over passes so far",
                },
            )
            self._resources[gates.pass_number] = resource
            self._assets.append(("stream_resource", resource.stream_resource_doc))
        start = gates.row * w
        self._assets.append(
            ("stream_datum", resource.compose_stream_datum(StreamRange(start=start, stop=start + w)))
        )

    def set_planned_dwell(self, pass_number: int, dwell: np.ndarray) -> None:
        """Record a pass's planned dwell map in the cube file (before its first row)."""
        if self.writer is not None:
            self.writer.set_planned_dwell(pass_number, dwell)

    def set_budget_used(
        self, seconds: float, pass_number: int | None = None, row: int | None = None
    ) -> None:
        """Record the instrument time used so far (and when ``row`` ended) in the cube file."""
        if self.writer is not None:
            self.writer.set_budget_used(seconds, pass_number, row)

    def set_scan_status(self, status: str) -> None:
        """Record the scan's final state in the cube file (``completed``, ``aborted`` ...)."""
        if self.writer is not None:
            self.writer.set_status(status)

    def close_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def unstage(self) -> list:
        self.close_file()
        return super().unstage()


class PixelPages:
    """The ``primary`` stream of a mapping scan: one event page per recorded row.

    Each event is one pixel. ``roi_counts`` holds the ROI counts of every element in the
    detector's element order (``sdd.elements``, also in the start document's ``elements``): one
    array key instead of one key per element keeps schema validation cheap (~0.3 ms per key and
    row), which matters at a few rows per second."""

    def __init__(self, sdd: SimSDD) -> None:
        self._sdd = sdd
        self.name = f"{sdd.name}_pixels"
        self.parent = sdd

    def describe_collect(self) -> dict[str, dict]:
        sdd = self._sdd
        keys: dict[str, dict] = {
            "pass_number": _key("integer", "pass number", ""),
            "row": _key("integer", "row index", ""),
            "col": _key("integer", "column index", ""),
            "x": _key("number", "pixel centre x", "mm"),
            "y": _key("number", "pixel centre y", "mm"),
            "planned_dwell": _key("number", "planned dwell", "s"),
            "live_time": _key("number", "live time in this pass", "s"),
            "real_time": _key("number", "real time in this pass", "s"),
        }
        keys["roi_counts"] = {
            **_key("integer", "ROI counts in this pass, one per element: " + ", ".join(sdd.elements), "counts"),
            "dtype": "array",
            "shape": [len(sdd.elements)],
        }
        return keys

    def collect_pages(self):
        pages = self._sdd._pages
        while pages:
            yield pages.popleft()


class SpectraAssets:
    """The ``spectra`` stream of a mapping scan: references into the cube file."""

    def __init__(self, sdd: SimSDD) -> None:
        self._sdd = sdd
        self.name = f"{sdd.name}_spectra"
        self.parent = sdd

    def describe_collect(self) -> dict[str, dict]:
        e = self._sdd.axis.channels
        return {
            "spectrum": {
                "source": f"SIM:{self._sdd.name}",
                "dtype": "array",
                "dtype_numpy": np.dtype(np.uint32).str,
                "shape": [e],
                "external": "STREAM:",
            }
        }

    def get_index(self) -> int:
        return sum(1 for name, _ in self._sdd._assets if name == "stream_datum")

    def collect_asset_docs(self, index: int | None = None):
        """Yield any new stream resource and at most one stream datum (one row) per call."""
        assets = self._sdd._assets
        while assets:
            name, doc = assets.popleft()
            yield name, doc
            if name == "stream_datum":
                return


def _key(dtype: str, description: str, units: str) -> dict:
    return {
        "source": "SIM:sdd",
        "dtype": dtype,
        "shape": [],
        "dtype_numpy": np.dtype(np.int64 if dtype == "integer" else np.float64).str,
        "units": units,
        "description": description,
    }
