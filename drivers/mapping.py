"""Mapping-mode recording shared by every SDD driver, simulated or real.

A mapping scan gates the detector with the stage's fly rows (``stage.subscribe_rows(sdd)``): the
stage calls ``row_started``, then ``row_finished`` or ``row_aborted`` with the row's
:class:`~dwellwise.drivers.fly.RowGates`. What a driver does to *measure* a row differs (the
simulated SDD draws Poisson spectra, the EPICS SDD runs acquisitions on the IOC); everything else
is here, in :class:`MappingDetector`, a mixin for an Ophyd device:

- ``prepare(CubeSetup(...))`` creates (or, to resume, reopens) the cube file;
- each finished row is written to the file (:class:`~dwellwise.cube.CubeWriter`; a row already
  recorded for its pass is refused there, so a replayed row never counts twice) and queued for
  Bluesky: ``sdd.pixels`` yields one event page per row (ROI counts, live time, positions),
  ``sdd.spectra`` yields StreamResource/StreamDatum documents pointing into the file;
- ``set_planned_dwell``, ``set_budget_used``, ``set_scan_status`` and ``file_path`` pass the
  plan's bookkeeping through to the file.

A driver supplies ``elements``, ``axis``, ``roi_windows`` and three hooks: ``_begin_row`` (start
measuring a row), ``_end_row`` (its spectra as an :class:`Acquisition`) and ``_cancel_row``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from dwellwise.drivers.fly import RowGates
from dwellwise.simulators.detector import Acquisition
from dwellwise.simulators.energy import EnergyAxis
from event_model import StreamRange, compose_stream_resource
from ophyd import DynamicDeviceComponent as DDC
from ophyd import Signal
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


def roi_sums(counts: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """``(N, E)`` spectra -> ``(C, N)`` counts in each inclusive channel window ``(C, 2)``."""
    counts = np.atleast_2d(counts)
    csum = np.concatenate(
        [np.zeros((counts.shape[0], 1), np.int64), np.cumsum(counts, axis=1, dtype=np.int64)],
        axis=1,
    )
    windows = np.asarray(windows, dtype=np.int64)
    return (csum[:, windows[:, 1] + 1] - csum[:, windows[:, 0]]).T


@cache
def with_element_rois(base: type, elements: tuple[str, ...]) -> type:
    """A subclass of the SDD class ``base`` with one hinted ROI signal per element channel
    (``sdd.rois.Fe_K`` ...), so step scans show each element's counts."""
    rois = DDC(
        {el: (Signal, None, {"value": 0, "kind": "hinted"}) for el in elements},
        doc="Counts in each element's ROI window",
    )
    attrs = {"rois": rois, "_roi_elements": elements, "__module__": base.__module__}
    return type(f"{base.__name__}_{len(elements)}", (base,), attrs)


class MappingDetector:
    """Mixin for an Ophyd SDD recorded row by row in a mapping scan (see the module docstring).

    Put it before ``Device`` in the bases and call :meth:`_init_mapping` from ``__init__``."""

    file_path: str = ""
    """Cube file the plans write (an empty string lets the plan choose one)."""
    elements: tuple[str, ...]
    """Element channels, in ROI order (the order of ``roi_counts`` in the ``primary`` stream)."""
    axis: EnergyAxis
    """Energy calibration of the spectra."""

    def _init_mapping(self, data_source: str) -> None:
        """Set up the mapping state; ``data_source`` names the data in descriptors
        (``SIM:sdd``, ``PV:XRF:mca1``)."""
        self.writer: CubeWriter | None = None
        self.setup: CubeSetup | None = None
        self.data_source = data_source
        self._pending: dict[tuple[int, int], Any] = {}
        self._pages: deque[dict] = deque()
        self._assets: deque[tuple[str, dict]] = deque()
        self._resources: dict[int, Any] = {}
        self.pixels = PixelPages(self)
        """Event pages of per-pixel ROI counts, live time and positions (one per row)."""
        self.spectra = SpectraAssets(self)
        """StreamResource/StreamDatum documents of the spectra in the cube file."""

    # -- what a driver provides --------------------------------------------------------
    @property
    def roi_windows(self) -> np.ndarray:
        """``(C, 2)`` inclusive channel range of each element's ROI."""
        raise NotImplementedError(f"{type(self).__name__} must define roi_windows")

    def _begin_row(self, gates: RowGates) -> Any:
        """Start measuring a row as the stage starts it; returns a handle for ``_end_row``."""
        raise NotImplementedError(f"{type(self).__name__} must define _begin_row")

    def _end_row(self, gates: RowGates, handle: Any) -> Acquisition:
        """The row's spectra ``(W, E)`` with live and real time per pixel, by column."""
        raise NotImplementedError(f"{type(self).__name__} must define _end_row")

    def _cancel_row(self, gates: RowGates, handle: Any) -> None:
        """The stage abandoned the row: stop measuring it (nothing is recorded)."""

    def _cube_truth(self, setup: CubeSetup) -> dict[str, Any] | None:
        """Ground truth to store in a new cube file (simulations), or None."""
        return None

    # -- shared -------------------------------------------------------------------------
    def roi_counts(self, counts: np.ndarray) -> np.ndarray:
        """``(N, E)`` spectra -> ``(C, N)`` ROI counts in this detector's element order."""
        return roi_sums(counts, self.roi_windows)

    def prepare(self, setup: CubeSetup) -> Status:
        """Open the cube file for a mapping scan (closing any previous one)."""
        self.close_file()
        if setup.resume:
            self._check_file_axis(setup.path)
            self.writer = CubeWriter.reopen(setup.path)
            if self.writer.shape != tuple(setup.shape):
                shape = self.writer.shape
                self.close_file()
                raise ValueError(f"{setup.path} holds a {shape} scan, not {setup.shape}")
            self.writer.set_status("running")
        else:
            self.writer = CubeWriter(
                setup.path,
                shape=setup.shape,
                axis=self.axis,
                pixel_size=setup.pixel_size,
                elements=self.elements,
                roi_windows=self.roi_windows,
                passes=setup.passes,
                origin=setup.origin,
                truth=self._cube_truth(setup),
                metadata=setup.metadata,
            )
        self.setup = setup
        self._pending.clear()
        self._pages.clear()
        self._assets.clear()
        self._resources.clear()
        status = Status(obj=self)
        status.set_finished()
        return status

    def _check_file_axis(self, path: Path) -> None:
        """A resumed file must hold spectra on this detector's energy axis (a re-calibrated
        detector would add counts channel by channel onto different energies)."""
        try:
            with h5py.File(path, "r") as f:
                energy = f["entry/data/energy"][...]
        except (OSError, KeyError):
            return  # CubeWriter.reopen says what is wrong with the file
        axis = self.axis
        if energy.shape != (axis.channels,) or not np.allclose(
            energy, axis.centers, rtol=0, atol=1e-3 * axis.gain_kev
        ):
            raise ValueError(
                f"{path}: its spectra have {energy.size} channels from {energy[:1].sum():.4g} keV; "
                f"the detector now has {axis.channels} from {axis.offset_kev:.4g} keV by "
                f"{axis.gain_kev * 1e3:.4g} eV: resume with the calibration the scan started with"
            )

    def row_started(self, gates: RowGates) -> None:
        if self.writer is None:
            return
        self._pending[(gates.pass_number, gates.row)] = self._begin_row(gates)

    def row_aborted(self, gates: RowGates) -> None:
        handle = self._pending.pop((gates.pass_number, gates.row), None)
        if handle is not None:
            self._cancel_row(gates, handle)

    def row_finished(self, gates: RowGates) -> None:
        handle = self._pending.pop((gates.pass_number, gates.row), None)
        if handle is None or self.writer is None:
            return
        self.record_row(gates, self._end_row(gates, handle))

    def record_row(self, gates: RowGates, acq: Acquisition) -> np.ndarray:
        """Write a measured row to the cube file and queue its documents; returns its ROI
        counts ``(C, W)``."""
        if self.writer is None:
            raise RuntimeError(f"{getattr(self, 'name', 'sdd')}: no cube file open (prepare first)")
        roi = self.writer.write_row(
            gates.pass_number,
            gates.row,
            acq.counts,
            acq.live_time,
            acq.real_time,
            planned_dwell=gates.planned_dwell,
        )
        self._queue_row(gates, acq, roi)
        return roi

    def _queue_row(self, gates: RowGates, acq: Acquisition, roi: np.ndarray) -> None:
        w = gates.x.size
        now = time.time()
        data = {
            "pass_number": [gates.pass_number] * w,
            "row": [gates.row] * w,
            "col": list(range(w)),
            "x": gates.x.tolist(),
            "y": [gates.y] * w,
            "planned_dwell": gates.planned_dwell.tolist(),
            "live_time": np.asarray(acq.live_time, dtype=float).tolist(),
            "real_time": np.asarray(acq.real_time, dtype=float).tolist(),
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
            (
                "stream_datum",
                # composed by event-model from a validated resource each row; the tests
                # validate every document, the row loop does not pay for it again
                resource.compose_stream_datum(
                    StreamRange(start=start, stop=start + w), validate=False
                ),
            )
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

    def __init__(self, sdd: MappingDetector) -> None:
        self._sdd = sdd
        self.name = f"{sdd.name}_pixels"
        self.parent = sdd

    def describe_collect(self) -> dict[str, dict]:
        sdd = self._sdd
        src = sdd.data_source
        keys: dict[str, dict] = {
            "pass_number": _key(src, "integer", "pass number", ""),
            "row": _key(src, "integer", "row index", ""),
            "col": _key(src, "integer", "column index", ""),
            "x": _key(src, "number", "pixel centre x", "mm"),
            "y": _key(src, "number", "pixel centre y", "mm"),
            "planned_dwell": _key(src, "number", "planned dwell", "s"),
            "live_time": _key(src, "number", "live time in this pass", "s"),
            "real_time": _key(src, "number", "real time in this pass", "s"),
        }
        what = "ROI counts in this pass, one per element: " + ", ".join(sdd.elements)
        keys["roi_counts"] = {
            **_key(src, "integer", what, "counts"),
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

    def __init__(self, sdd: MappingDetector) -> None:
        self._sdd = sdd
        self.name = f"{sdd.name}_spectra"
        self.parent = sdd

    def describe_collect(self) -> dict[str, dict]:
        return {
            "spectrum": {
                "source": self._sdd.data_source,
                "dtype": "array",
                "dtype_numpy": np.dtype(np.uint32).str,
                "shape": [self._sdd.axis.channels],
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


def _key(source: str, dtype: str, description: str, units: str) -> dict:
    return {
        "source": source,
        "dtype": dtype,
        "shape": [],
        "dtype_numpy": np.dtype(np.int64 if dtype == "integer" else np.float64).str,
        "units": units,
        "description": description,
    }
