"""The cube file: one HDF5 file per scan, written row by row, readable by PyMca and PyXRF.

Layout (see DESIGN.md)::

    /entry                      NXentry
    /entry/data                 NXdata, @signal="counts", @axes=["y","x","energy"]
        counts    (H, W, E) uint32   summed over passes
        energy    (E,) keV;  x (W,) mm;  y (H,) mm
        live_time, real_time (H, W) seconds, summed over passes
    /entry/passes/<n>/          dwell_planned (H, W) s, live_time (H, W) s,
                                roi_counts (C, H, W), rows_complete (H,) bool
    /entry/rois                 elements (C,), windows (C, 2) channel ranges
    /entry/truth/               rates, roi_rates (C, H, W) counts/s, elements (simulations)
    /xrfmap/detsum/counts       hard link to /entry/data/counts (PyXRF)
    /xrfmap/positions/pos       (2, H, W) mm, name = ["x_pos", "y_pos"]
    /xrfmap/scan_metadata       attributes

The writer creates every dataset up front, then switches to SWMR mode and flushes after every
row, so the file can be read while it is written and a crash loses no completed row: a row's
data are flushed before its ``rows_complete`` flag is set and flushed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dwellwise.hdf5_open import open_readonly
from dwellwise.simulators.energy import EnergyAxis

STRING = h5py.string_dtype()
STATUS_BYTES = 16
"""Width of the fixed-length ``/entry/scan_status`` string (fixed so it can change under SWMR);
null-padded, so h5py and numpy read ``b"completed"`` without padding."""
SCAN_STATUSES = ("running", "completed", "truncated", "aborted", "failed", "interrupted")
"""``truncated``: the budget ran out before the first pass was complete (see rows_complete)."""


class CubeWriter:
    """Creates a cube file and appends spectra row by row (context manager)."""

    def __init__(
        self,
        path: str | Path,
        *,
        shape: tuple[int, int],
        axis: EnergyAxis,
        pixel_size: float,
        elements: Sequence[str],
        roi_windows: np.ndarray,
        passes: int = 1,
        origin: tuple[float, float] = (0.0, 0.0),
        truth: dict[str, np.ndarray] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        h, w = shape
        self.path = Path(path)
        self.shape = (h, w)
        self.roi_windows = np.asarray(roi_windows, dtype=np.int64)
        self._datasets: dict[str, h5py.Dataset | None] = {}
        self._passes: list[str] | None = None
        self._f = h5py.File(self.path, "w", libver="latest")
        f = self._f
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs.update(NX_class="NXdata", signal="counts", axes=["y", "x", "energy"])
        e = axis.channels
        data.create_dataset(
            "counts",
            shape=(h, w, e),
            dtype=np.uint32,
            chunks=(1, min(w, 64), e),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
            fillvalue=0,
        )
        data.create_dataset("energy", data=axis.centers).attrs["units"] = "keV"
        x = origin[0] + pixel_size * np.arange(w)
        y = origin[1] + pixel_size * np.arange(h)
        data.create_dataset("x", data=x).attrs["units"] = "mm"
        data.create_dataset("y", data=y).attrs["units"] = "mm"
        for name in ("live_time", "real_time"):
            data.create_dataset(name, shape=(h, w), dtype=np.float64, fillvalue=0.0)
            data[name].attrs["units"] = "s"
        rois = entry.create_group("rois")
        rois.create_dataset("elements", data=list(elements), dtype=STRING)
        rois.create_dataset("windows", data=self.roi_windows)
        rois["windows"].attrs["units"] = "channel (inclusive range)"
        for n in range(1, passes + 1):
            g = entry.create_group(f"passes/{n}")
            g.create_dataset("dwell_planned", shape=(h, w), dtype=np.float64, fillvalue=0.0)
            g.create_dataset("live_time", shape=(h, w), dtype=np.float64, fillvalue=0.0)
            g.create_dataset("real_time", shape=(h, w), dtype=np.float64, fillvalue=0.0)
            g.create_dataset(
                "roi_counts", shape=(len(elements), h, w), dtype=np.uint32, fillvalue=0
            )
            g.create_dataset("rows_complete", shape=(h,), dtype=bool, fillvalue=False)
            g.create_dataset("row_end_s", shape=(h,), dtype=np.float64, fillvalue=np.nan)
            g["row_end_s"].attrs["units"] = "s of the budget used when the row ended"
        if truth is not None:
            t = entry.create_group("truth")
            t.create_dataset("rates", data=np.asarray(truth["rates"], dtype=np.float64))
            t.create_dataset("roi_rates", data=np.asarray(truth["roi_rates"], dtype=np.float64))
            t.create_dataset("elements", data=list(truth["elements"]), dtype=STRING)
            t["rates"].attrs["units"] = t["roi_rates"].attrs["units"] = "counts/s"
        f["xrfmap/detsum/counts"] = data["counts"]  # hard link: one dataset, two names
        xx, yy = np.meshgrid(x, y)
        pos = f.create_group("xrfmap/positions")
        pos.create_dataset("pos", data=np.stack([xx, yy]))
        pos.create_dataset("name", data=["x_pos", "y_pos"], dtype=STRING)
        entry.create_dataset("scan_status", data=_status_bytes("running"))
        entry.create_dataset("budget_used_s", data=0.0).attrs["units"] = "s"
        meta = f.create_group("xrfmap/scan_metadata")
        for key, value in (metadata or {}).items():
            meta.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
        f.swmr_mode = True

    @classmethod
    def reopen(cls, path: str | Path) -> CubeWriter:
        """Open an existing cube file to go on writing it (resuming an interrupted scan)."""
        path = Path(path)
        try:
            f = h5py.File(path, "r+", libver="latest")
        except OSError as exc:
            raise ValueError(f"{path}: cannot reopen the cube file ({exc})") from None
        missing = [name for name in (*REQUIRED, "entry/rois/windows", "entry/passes") if name not in f]
        if missing:
            f.close()
            raise ValueError(f"{path}: not a dwellwise cube file, missing {', '.join(missing)}")
        self = cls.__new__(cls)
        self.path = path
        self._f = f
        self.shape = tuple(f["entry/data/live_time"].shape)
        self.roi_windows = f["entry/rois/windows"][...].astype(np.int64)
        self._datasets, self._passes = {}, None
        f.swmr_mode = True
        return self

    def set_budget_used(
        self, seconds: float, pass_number: int | None = None, row: int | None = None
    ) -> None:
        """Record the instrument time the scan has used so far (for resuming after a crash), and
        when given, as the end time of ``row`` of ``pass_number`` (the scan's timeline)."""
        used = self._dataset("entry/budget_used_s")
        if used is not None:
            used[()] = float(seconds)
        timeline = self._dataset(f"entry/passes/{pass_number}/row_end_s")
        if row is not None and timeline is not None:
            timeline[row] = float(seconds)
        self._f.flush()

    def set_planned_dwell(self, pass_number: int, dwell: np.ndarray) -> None:
        """Record the planned dwell map of a pass, seconds ``(H, W)``."""
        self._f[f"entry/passes/{pass_number}/dwell_planned"][...] = dwell
        self._f.flush()

    def set_status(self, status: str) -> None:
        """Record the scan's state in ``/entry/scan_status`` (one of :data:`SCAN_STATUSES`)."""
        if status not in SCAN_STATUSES:
            raise ValueError(f"scan status must be one of {SCAN_STATUSES}, got {status!r}")
        self._f["entry/scan_status"][()] = _status_bytes(status)
        self._f.flush()

    def write_row(
        self,
        pass_number: int,
        row: int,
        counts: np.ndarray,
        live_time: np.ndarray,
        real_time: np.ndarray,
        planned_dwell: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add one measured row ``(W, E)`` to the cube and mark it complete for this pass;
        returns the row's ROI counts ``(C, W)``."""
        ds = self._dataset
        p = f"entry/passes/{pass_number}/"
        if ds(p + "rows_complete")[row]:
            raise ValueError(f"row {row} of pass {pass_number} is already recorded")
        counts = np.asarray(counts, dtype=np.uint32)
        total = counts + ds("entry/data/counts")[row] if pass_number > 1 else counts
        ds("entry/data/counts")[row] = total
        # per pass first, then the sums recomputed from the passes: writing a row again after a
        # crash part-way through this method gives the same sums (no read-modify-write)
        ds(p + "live_time")[row] = live_time
        if ds(p + "real_time") is not None:
            ds(p + "real_time")[row] = real_time
        passes = [f"entry/passes/{n}/" for n in self._pass_numbers()]
        ds("entry/data/live_time")[row] = sum(ds(q + "live_time")[row] for q in passes)
        if all(ds(q + "real_time") is not None for q in passes):
            ds("entry/data/real_time")[row] = sum(ds(q + "real_time")[row] for q in passes)
        else:  # a file from before per-pass real time
            ds("entry/data/real_time")[row] = ds("entry/data/real_time")[row] + real_time
        roi = roi_sums(counts, self.roi_windows)  # of this pass only
        ds(p + "roi_counts")[:, row, :] = roi
        if planned_dwell is not None:
            ds(p + "dwell_planned")[row] = planned_dwell
        # the data reach the file before the flag that vouches for them: HDF5 writes a flush's
        # chunks in no set order, so a kill during one flush could leave the flag without them
        self._f.flush()
        ds(p + "rows_complete")[row] = True
        self._f.flush()
        return roi

    def _dataset(self, name: str) -> h5py.Dataset | None:
        """The dataset at ``name`` (None if the file lacks it), looked up once: a row writes
        a dozen datasets, and each path lookup costs about as much as a small write."""
        if name not in self._datasets:
            self._datasets[name] = self._f[name] if name in self._f else None
        return self._datasets[name]

    def _pass_numbers(self) -> list[str]:
        if self._passes is None:
            self._passes = sorted(self._f["entry/passes"], key=int)
        return self._passes

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> CubeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def roi_sums(counts: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """ROI counts ``(C, W)`` of spectra ``(W, E)`` over inclusive channel ``windows`` ``(C, 2)``
    (windows are narrow: summing each slice beats a cumulative sum over every channel)."""
    out = np.empty((len(windows), counts.shape[0]), dtype=np.uint64)
    for c, (lo, hi) in enumerate(windows):
        out[c] = counts[:, lo : hi + 1].sum(axis=1, dtype=np.uint64)
    return out


@dataclass
class Cube:
    """A cube file read into memory (counts stay a lazy h5py dataset while open)."""

    counts: h5py.Dataset | np.ndarray
    """``(H, W, E)`` uint32 counts."""
    energy: np.ndarray
    """``(E,)`` channel energies, keV."""
    x: np.ndarray
    """``(W,)`` positions, mm."""
    y: np.ndarray
    """``(H,)`` positions, mm."""
    live_time: np.ndarray
    """``(H, W)`` seconds."""
    real_time: np.ndarray
    """``(H, W)`` seconds."""
    elements: list[str]
    """ROI element channels."""
    roi_windows: np.ndarray
    """``(C, 2)`` inclusive channel ranges."""
    rows_complete: dict[int, np.ndarray]
    """Pass number -> ``(H,)`` bool."""
    truth: dict[str, Any] | None
    """Simulation truth (``rates``, ``roi_rates``, ``elements``) or None."""


REQUIRED = (
    "entry/data/counts",
    "entry/data/energy",
    "entry/data/x",
    "entry/data/y",
    "entry/data/live_time",
    "entry/data/real_time",
)


def read_cube(path: str | Path, *, load_counts: bool = True) -> Cube:
    """Read a cube file, checking its layout; ``load_counts=False`` keeps counts on disk
    (the file then stays open until the dataset is garbage-collected)."""
    path = Path(path)
    try:
        f = open_readonly(path)
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    missing = [name for name in REQUIRED if name not in f]
    if missing:
        f.close()
        raise ValueError(f"{path}: not a dwellwise cube file, missing {', '.join(missing)}")
    counts = f["entry/data/counts"]
    if counts.ndim != 3:
        f.close()
        raise ValueError(f"{path}: /entry/data/counts must be (H, W, E), has shape {counts.shape}")
    dec = decode_strings
    passes = f.get("entry/passes", {})
    cube = Cube(
        counts=counts[...] if load_counts else counts,
        energy=f["entry/data/energy"][...],
        x=f["entry/data/x"][...],
        y=f["entry/data/y"][...],
        live_time=f["entry/data/live_time"][...],
        real_time=f["entry/data/real_time"][...],
        elements=dec(f["entry/rois/elements"][...]) if "entry/rois" in f else [],
        roi_windows=f["entry/rois/windows"][...] if "entry/rois" in f else np.zeros((0, 2), int),
        rows_complete={int(k): passes[k]["rows_complete"][...] for k in passes},
        truth=(
            {
                "rates": f["entry/truth/rates"][...],
                "roi_rates": f["entry/truth/roi_rates"][...],
                "elements": dec(f["entry/truth/elements"][...]),
            }
            if "entry/truth" in f
            else None
        ),
    )
    if load_counts:
        f.close()
    return cube


def _status_bytes(status: str) -> np.ndarray:
    """``status`` as the null-padded fixed-length value of ``/entry/scan_status``."""
    return np.array(status.encode(), dtype=f"S{STATUS_BYTES}")


def decode_strings(values: np.ndarray) -> list[str]:
    """A string dataset's values as ``str`` (h5py gives bytes or str by dtype)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
