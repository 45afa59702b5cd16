"""An SDD behind the standard EPICS MCA record (XIA, Xspress3, Amptek and other IOCs expose it).

``EpicsSDD("XRF:mca1", elements=("Ca_K", "Fe_K", "Pb_L"))`` is an Ophyd device built on
:class:`ophyd.mca.EpicsMCARecord` with the same interface as the simulated SDD:

- **step mode** (``bluesky.plans.count``, ``grid_scan``): ``trigger()`` writes the preset real
  time ``.PRTM`` (when it changed; read back to catch a refused or clamped value), erase-starts
  ``.ERST`` with put completion, waits the preset, polls ``.ACQG`` until the acquisition is
  done, and reads ``.VAL`` (``.NUSE`` channels), ``.ELTM`` and ``.ERTM``. ``read()`` gives the
  spectrum, live and real time, dead-time fraction and one ROI sum per element.
- **fly rows** (dwellwise's plans): the SDD listens to the stage's rows (``stage=`` or
  ``stage.subscribe_rows(sdd)``). The standard record has no gate input, so each row is measured
  as one acquisition per pixel, back to back in the stage's travel order, each with the preset
  real time the stage reports for that pixel (:class:`~dwellwise.drivers.fly.RowGates`). The row
  is written to the cube file by the shared :class:`~dwellwise.drivers.mapping.MappingDetector`.
  Trade-off: every pixel costs a few Channel Access round trips on top of its dwell (see
  :meth:`EpicsSDD.acquire`), so the detector lags a stage that flies at the planned speed; the
  measured spectra and live times are exact, but on a real stage the pixel boundaries smear by
  the accumulated lag (measured against the caproto IOC on loopback: ~3 ms per pixel, ~4 ms when
  the preset changes). This fits dwells well above that overhead; hardware-gated mapping
  (XIA/Xspress3 mapping mode through areaDetector) needs its own driver behind the same mixin.

Energy calibration comes from the IOC (``.CALO`` + ``.CALS`` · channel, ``.EGU`` keV or eV; a
``.CALQ`` that bends the axis by more than half a channel is refused: dwellwise needs a linear
axis). Element ROIs are each element's strongest line ± 1 FWHM (the dwellwise SDD response) on
that axis; they are written to the record's ROIs ``.R<n>LO``/``.R<n>HI``/``.R<n>NM`` on
``stage()`` so the IOC's own displays agree, and summed from the spectrum here.

Every Channel Access operation has a timeout: an IOC that is gone or stops answering, a refused
write, an acquisition that never ends or a garbled reply raises :class:`EpicsSDDError` naming the
device, the PV and the cause. The control layer is ophyd's caproto shim when pyepics is absent.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dwellwise.drivers.faults import DeviceFault
from dwellwise.drivers.fly import RowGates
from dwellwise.drivers.mapping import MappingDetector, with_element_rois
from dwellwise.simulators.detector import Acquisition
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.lines import line_group
from dwellwise.simulators.spectra import SpectrumModel
from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Signal
from ophyd.mca import EpicsMCARecord
from ophyd.status import Status

log = logging.getLogger(__name__)

MAX_RECORD_ROIS = 32
"""ROIs of the standard MCA record."""
ACQUIRING = 1
"""``.ACQG`` value while acquiring (mcaSTRT menu: Done, Acquire)."""


class EpicsSDDError(DeviceFault):
    """A fault of an EPICS SDD: which device, which PV, what happened (``device``, ``pv`` and
    ``cause``; as a :class:`~dwellwise.drivers.faults.DeviceFault` its ``part`` is the PV)."""

    def __init__(self, device: str, pv: str, cause: str) -> None:
        self.pv = pv
        """The PV involved (or the record name)."""
        super().__init__(f"SDD {device!r}: {pv}: {cause}", device=device, part=pv, cause=cause)


class McaRecord(EpicsMCARecord):
    """ophyd's MCA record plus the standard fields it lacks and dwellwise uses."""

    erase_start = Cpt(EpicsSignal, ".ERST", kind="omitted")
    """Erase and start acquiring (mcaSTRT menu)."""
    acquiring = Cpt(EpicsSignalRO, ".ACQG", kind="omitted")
    """1 while acquiring."""
    channels = Cpt(EpicsSignalRO, ".NUSE", kind="omitted")
    """Number of channels in use (length of ``.VAL``)."""
    calibration_offset = Cpt(EpicsSignalRO, ".CALO", kind="omitted")
    """Energy of channel 0, in ``.EGU``."""
    calibration_slope = Cpt(EpicsSignalRO, ".CALS", kind="omitted")
    """Energy per channel, in ``.EGU``."""
    calibration_quadratic = Cpt(EpicsSignalRO, ".CALQ", kind="omitted")
    """Quadratic term, ``.EGU`` per channel²."""
    energy_units = Cpt(EpicsSignalRO, ".EGU", kind="omitted", string=True)
    """Units of the calibration (keV or eV)."""


@dataclass
class _RowRun:
    """Per-pixel acquisitions of one fly row, run by a worker thread."""

    order: np.ndarray
    """Columns in the order the beam crosses them."""
    presets: np.ndarray
    """``(W,)`` preset real time per column, seconds."""
    counts: np.ndarray
    """``(W, E)`` spectra by column."""
    live: np.ndarray
    real: np.ndarray
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None
    deadline: float = math.inf
    """Monotonic time by which the worker must have ended (its every step is bounded)."""


class EpicsSDD(MappingDetector, Device):
    """An SDD on the standard EPICS MCA record ``prefix`` (``XRF:mca1``), see the module doc.

    ``elements``: element channels whose ROIs are recorded (``Fe_K``, ``Pb_L`` ...), in order.
    ``stage``: a stage whose fly rows gate this detector (optional; or
    ``stage.subscribe_rows(sdd)``). ``timeout_s`` bounds every Channel Access operation;
    an acquisition may end ``acquisition_margin_s`` after its preset before it counts as
    stalled; ``.ACQG`` is polled every ``poll_s``."""

    mca = Cpt(McaRecord, "", kind="omitted")
    """The MCA record's fields."""
    spectrum = Cpt(Signal, value=np.zeros(1, np.uint32), kind="normal")
    """Last spectrum, counts per channel (step mode)."""
    live_time = Cpt(Signal, value=0.0, kind="normal")
    """Live time of the last acquisition, seconds."""
    real_time = Cpt(Signal, value=0.0, kind="normal")
    """Real time of the last acquisition, seconds."""
    dead_time_fraction = Cpt(Signal, value=0.0, kind="normal")
    """1 − live/real of the last acquisition."""
    preset_time = Cpt(Signal, value=0.1, kind="config")
    """Step-mode acquisition time (preset real time), seconds."""
    energy_offset = Cpt(Signal, value=0.0, kind="config")
    """Calibration read from the IOC: energy of channel 0, keV."""
    energy_gain = Cpt(Signal, value=0.0, kind="config")
    """Calibration read from the IOC: channel width, keV."""

    _roi_elements: tuple[str, ...] = ()

    def __new__(cls, prefix: str = "", *args, elements: Sequence[str] = (), **kwargs):
        elements = _check_elements(elements, kwargs.get("name", "sdd"))
        if cls._roi_elements != elements:  # a subclass with one ROI signal per element
            cls = with_element_rois(cls.__mro__[1] if cls._roi_elements else cls, elements)
        return super().__new__(cls)

    def __init__(
        self,
        prefix: str,
        *,
        elements: Sequence[str],
        name: str = "sdd",
        stage: Any = None,
        timeout_s: float = 2.0,
        acquisition_margin_s: float = 1.0,
        poll_s: float = 0.002,
        **kwargs,
    ) -> None:
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(
                f"EpicsSDD {name!r}: the MCA record name must be a PV name, got {prefix!r}"
            )
        for label, value in (
            ("timeout_s", timeout_s),
            ("acquisition_margin_s", acquisition_margin_s),
            ("poll_s", poll_s),
        ):
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(
                    f"EpicsSDD {name!r}: {label} must be a finite number > 0 s, got {value!r}"
                )
        super().__init__(prefix, name=name, **kwargs)
        self.mca.stage_sigs.clear()  # the mode is set (with timeouts) in stage()
        self.elements = tuple(elements)
        self.record_name = prefix
        """The MCA record, e.g. ``XRF:mca1``."""
        self.timeout_s = float(timeout_s)
        self.acquisition_margin_s = float(acquisition_margin_s)
        self.poll_s = float(poll_s)
        self.axis: EnergyAxis | None = None  # read from the IOC by connect()
        self._windows: np.ndarray | None = None
        self._preset_written: float | None = None
        self._abort = threading.Event()
        self._io_lock = threading.RLock()  # one acquisition sequence at a time
        self._init_mapping(f"PV:{prefix}")
        if stage is not None:
            stage.subscribe_rows(self)

    # -- connection and calibration ------------------------------------------------------
    def connect(self, timeout_s: float | None = None) -> EnergyAxis:
        """Wait for the record's PVs and read the energy calibration; returns the axis."""
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        signals = [
            getattr(self.mca, attr)
            for attr in self.mca.component_names
            if not getattr(type(self.mca), attr).lazy
        ]
        signals = [s for s in signals if isinstance(s, EpicsSignalRO | EpicsSignal)]
        deadline = time.monotonic() + timeout
        for sig in signals:
            try:
                sig.wait_for_connection(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                missing = [s.pvname for s in signals if not s.connected]
                raise self._error(
                    sig.pvname,
                    f"not connected within {timeout:g} s (IOC down or unreachable, or no such "
                    f"record; {len(missing)} of {len(signals)} PVs missing)",
                ) from None
        self.axis = self._read_calibration()
        self._windows = SpectrumModel(self.elements, axis=self.axis).roi_windows
        self.energy_offset.put(self.axis.offset_kev)
        self.energy_gain.put(self.axis.gain_kev)
        if np.asarray(self.spectrum.get()).size != self.axis.channels:
            self.spectrum.put(np.zeros(self.axis.channels, np.uint32))
        return self.axis

    def _read_calibration(self) -> EnergyAxis:
        m = self.mca
        n = self._get(m.channels)
        calo, cals, calq = (
            self._get(s)
            for s in (m.calibration_offset, m.calibration_slope, m.calibration_quadratic)
        )
        units = str(self._get(m.energy_units)).strip()
        try:
            n = int(n)
        except (TypeError, ValueError):
            raise self._error(m.channels.pvname, f"garbled channel count {n!r}") from None
        if not 2 <= n <= 65534:
            raise self._error(m.channels.pvname, f"{n} channels in use; dwellwise needs 2..65534")
        for sig, value in (
            (m.calibration_offset, calo),
            (m.calibration_slope, cals),
            (m.calibration_quadratic, calq),
        ):
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise self._error(sig.pvname, f"garbled energy calibration: {value!r}")
        scale = {"kev": 1.0, "": 1.0, "ev": 1e-3}.get(units.lower())
        if scale is None:
            raise self._error(
                m.energy_units.pvname, f"calibration in {units!r}; dwellwise needs keV or eV"
            )
        if not cals > 0:
            raise self._error(
                m.calibration_slope.pvname, f"energy per channel must be > 0, got {cals}"
            )
        if abs(calq) * (n - 1) ** 2 > 0.5 * cals:
            raise self._error(
                m.calibration_quadratic.pvname,
                f"quadratic calibration {calq:g} bends the axis by more than half a channel; "
                "dwellwise needs a linear calibration",
            )
        return EnergyAxis(channels=n, gain_kev=float(cals) * scale, offset_kev=float(calo) * scale)

    @property
    def roi_windows(self) -> np.ndarray:
        if self._windows is None:
            self.connect()
        return self._windows

    def _connected_axis(self) -> EnergyAxis:
        return self.axis if self.axis is not None else self.connect()

    # -- Bluesky -------------------------------------------------------------------------
    def stage(self) -> list:
        """Connect, read the calibration afresh, select PHA mode and program the record's ROIs
        (the first 32 elements; ROI sums of every element are computed from the spectrum)."""
        self.connect()
        m = self.mca
        if self._get(m.mode, as_string=True) != "PHA":
            self._put(m.mode, "PHA", check=lambda rb: rb in ("PHA", 0))
        self._put(m.preset_live_time, 0.0)  # real time governs
        self._preset_written = None
        for i, (el, (lo, hi)) in enumerate(
            zip(self.elements[:MAX_RECORD_ROIS], self._windows, strict=False)
        ):
            roi = getattr(m.rois, f"roi{i}")
            self._put(roi.lo_chan, int(lo))
            self._put(roi.hi_chan, int(hi))
            self._put(roi.label, el)
        return super().stage()

    def describe(self) -> dict:
        self._connected_axis()
        return super().describe()

    def prepare(self, setup) -> Status:
        self._connected_axis()
        return super().prepare(setup)

    def trigger(self) -> Status:
        status = Status(obj=self)
        preset = float(self.preset_time.get())

        def run() -> None:
            try:
                acq = self.acquire(preset)
                self._publish(acq)
            except Exception as exc:
                status.set_exception(exc)
            else:
                status.set_finished()

        threading.Thread(target=run, name=f"{self.name}-count", daemon=True).start()
        return status

    def stop(self, *, success: bool = False) -> None:
        """Stop any acquisition (best effort: a stop that cannot reach the IOC is logged)."""
        self._abort.set()
        try:
            self.mca.stop_signal.put(1, connection_timeout=min(self.timeout_s, 0.5))
        except Exception as exc:  # stopping must never raise
            log.warning("%s: could not stop %s: %s", self.name, self.mca.stop_signal.pvname, exc)

    def _publish(self, acq: Acquisition) -> None:
        counts = acq.counts[0]
        live, real = float(acq.live_time[0]), float(acq.real_time[0])
        self.spectrum.put(counts)
        self.live_time.put(live)
        self.real_time.put(real)
        self.dead_time_fraction.put(1.0 - live / real if real > 0 else 0.0)
        for el, value in zip(self.elements, self.roi_counts(counts[None])[:, 0], strict=True):
            getattr(self.rois, el).put(int(value))

    # -- one acquisition -------------------------------------------------------------------
    def acquire(self, preset_s: float, stop: threading.Event | None = None) -> Acquisition:
        """One acquisition of ``preset_s`` seconds of real time; its spectrum ``(1, E)``, live
        and real time. Costs: the preset, plus Channel Access round trips for ``.PRTM`` (write
        and read back, only when the preset changes), ``.ERST`` (with completion), one or more
        ``.ACQG`` polls, ``.VAL``, ``.ELTM`` and ``.ERTM``."""
        if not (preset_s > 0 and math.isfinite(preset_s)):
            raise ValueError(
                f"SDD {self.name!r}: preset time must be a finite number > 0 s, got {preset_s}"
            )
        axis = self._connected_axis()
        m = self.mca
        if stop is None:
            self._abort.clear()  # a stop() ends the acquisition under way, not later ones
        with self._io_lock:
            if self._preset_written is None or not math.isclose(
                self._preset_written, preset_s, rel_tol=1e-9
            ):
                self._preset_written = None
                self._put(
                    m.preset_real_time, float(preset_s), check=lambda rb: _close(rb, preset_s)
                )
                self._preset_written = float(preset_s)
            self._put(m.erase_start, 1, check=None, timeout_s=self.timeout_s + preset_s)
            started = time.monotonic()
            deadline = started + preset_s + self.acquisition_margin_s
            waiter = stop or self._abort
            waiter.wait(preset_s)
            while self._get(m.acquiring) == ACQUIRING:
                if waiter.is_set():
                    self._put(m.stop_signal, 1, check=None)
                    raise self._error(self.record_name, "acquisition stopped before its end")
                if time.monotonic() > deadline:
                    self._stop_quietly()
                    raise self._error(
                        m.acquiring.pvname,
                        f"acquisition of {preset_s:g} s still running {time.monotonic() - started:.3g} s "
                        "after it started (stalled; stop sent)",
                    )
                waiter.wait(self.poll_s)
            counts = self._get(m.spectrum)
            live, real = self._get(m.elapsed_live_time), self._get(m.elapsed_real_time)
        counts = np.asarray(counts)
        if counts.ndim != 1 or counts.size != axis.channels:
            raise self._error(
                m.spectrum.pvname,
                f"garbled spectrum: {counts.size} values, {m.channels.pvname} says {axis.channels}",
            )
        if counts.size and (counts.min() < 0 or not np.issubdtype(counts.dtype, np.integer)):
            raise self._error(m.spectrum.pvname, "garbled spectrum: counts must be integers >= 0")
        for sig, value in ((m.elapsed_live_time, live), (m.elapsed_real_time, real)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise self._error(sig.pvname, f"garbled elapsed time {value!r}")
        if not real > 0:
            raise self._error(
                m.elapsed_real_time.pvname, "the acquisition did not count (elapsed real time 0 s)"
            )
        if live > real * (1 + 1e-6):
            raise self._error(
                m.elapsed_live_time.pvname, f"live time {live:g} s exceeds real time {real:g} s"
            )
        return Acquisition(
            counts=counts.astype(np.uint32)[None],
            live_time=np.array([float(live)]),
            real_time=np.array([float(real)]),
        )

    def _stop_quietly(self) -> None:
        try:
            self._put(self.mca.stop_signal, 1, check=None)
        except EpicsSDDError as exc:
            log.warning("%s: %s", self.name, exc)

    # -- fly rows ----------------------------------------------------------------------------
    def _begin_row(self, gates: RowGates) -> _RowRun:
        axis = self._connected_axis()
        w = gates.x.size
        presets = np.asarray(gates.real_time, dtype=float)
        run = _RowRun(
            order=self._travel_order(gates),
            presets=presets,
            counts=np.zeros((w, axis.channels), np.uint32),
            live=np.zeros(w),
            real=np.zeros(w),
        )
        # each pixel: its preset, the margin, and at most ~8 bounded CA operations
        run.deadline = (
            time.monotonic()
            + float(presets.sum())
            + w * (self.acquisition_margin_s + 8 * self.timeout_s)
        )
        run.thread = threading.Thread(
            target=self._run_row, args=(run,), name=f"{self.name}-row", daemon=True
        )
        run.thread.start()
        return run

    def _run_row(self, run: _RowRun) -> None:
        try:
            for col in run.order:
                if run.stop.is_set():
                    return
                acq = self.acquire(float(run.presets[col]), stop=run.stop)
                run.counts[col] = acq.counts[0]
                run.live[col] = acq.live_time[0]
                run.real[col] = acq.real_time[0]
        except BaseException as exc:
            run.error = exc

    def _end_row(self, gates: RowGates, handle: _RowRun) -> Acquisition:
        handle.thread.join(max(0.0, handle.deadline - time.monotonic()))
        if handle.thread.is_alive():
            handle.stop.set()
            raise self._error(
                self.record_name,
                f"row {gates.row} of pass {gates.pass_number}: acquisitions did not end in time",
            )
        if handle.error is not None:
            err = handle.error
            if isinstance(err, EpicsSDDError):
                raise EpicsSDDError(
                    err.device, err.pv, f"row {gates.row} of pass {gates.pass_number}: {err.cause}"
                ) from err
            raise err
        return Acquisition(counts=handle.counts, live_time=handle.live, real_time=handle.real)

    def _cancel_row(self, gates: RowGates, handle: _RowRun) -> None:
        handle.stop.set()
        handle.thread.join(self.timeout_s * 2)

    def _travel_order(self, gates: RowGates) -> np.ndarray:
        """Columns in the order the beam crosses them (reversed for a serpentine row the stage
        flies from its last column, ``gates.reverse``)."""
        cols = np.arange(gates.x.size)
        return cols[::-1] if gates.reverse else cols

    # -- Channel Access with timeouts and clear errors -------------------------------------------
    def _error(self, pv: str, cause: str) -> EpicsSDDError:
        return EpicsSDDError(self.name, pv, cause)

    def _get(self, sig, *, as_string: bool | None = None) -> Any:
        try:
            return sig.get(
                use_monitor=False,
                timeout=self.timeout_s,
                connection_timeout=self.timeout_s,
                as_string=as_string,
            )
        except Exception as exc:
            raise self._error(
                sig.pvname, _describe(exc, self.timeout_s, "read", sig.connected)
            ) from exc

    def _put(
        self,
        sig,
        value: Any,
        *,
        check: Callable[[Any], bool] | None | bool = True,
        timeout_s: float | None = None,
    ) -> None:
        """Write with put completion; ``check`` the read-back (``True``: equal to ``value``)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        done = threading.Event()
        try:
            sig.put(
                value,
                use_complete=True,
                callback=lambda *a, **k: done.set(),
                timeout=timeout,
                connection_timeout=self.timeout_s,
            )
        except Exception as exc:
            raise self._error(
                sig.pvname, _describe(exc, self.timeout_s, "write", sig.connected)
            ) from exc
        if not done.wait(timeout):
            if not sig.connected:
                raise self._error(
                    sig.pvname,
                    f"disconnected during a write of {value!r} (IOC gone or unreachable)",
                )
            try:  # refused (an error reply) or no reply at all?
                readback = sig.get(use_monitor=False, timeout=min(timeout, self.timeout_s))
            except Exception:
                raise self._error(
                    sig.pvname,
                    f"no reply to a write of {value!r} within {timeout:g} s (IOC not answering)",
                ) from None
            raise self._error(sig.pvname, f"write of {value!r} refused (reads back {readback!r})")
        if check is None or check is False:
            return
        readback = self._get(sig)
        ok = readback == value if check is True else check(readback)
        if not ok:
            raise self._error(
                sig.pvname, f"write of {value!r} refused or changed (reads back {readback!r})"
            )


def _close(readback: Any, value: float) -> bool:
    try:
        return math.isclose(float(readback), float(value), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _describe(exc: BaseException, timeout_s: float, what: str, connected: bool = True) -> str:
    """A person's words for a Channel Access failure."""
    name = type(exc).__name__
    # a socket torn down under a write (BrokenPipe, reset, refused) is a lost IOC too
    lost = isinstance(exc, ConnectionError) or "Connection" in name or "Disconnected" in name
    if not connected or lost:
        return f"not connected (IOC gone or unreachable within {timeout_s:g} s)"
    if isinstance(exc, TimeoutError) or "Timeout" in name:
        return f"no reply to a {what} within {timeout_s:g} s (IOC not answering)"
    return f"{what} failed: {name}: {exc}"


def _check_elements(elements: Sequence[str], name: str) -> tuple[str, ...]:
    """Element channels as a tuple; ``ValueError`` naming what is wrong."""
    if isinstance(elements, str):
        elements = (elements,)
    elements = tuple(elements)
    if not elements:
        raise ValueError(
            f"EpicsSDD {name!r}: give the element channels to record, e.g. elements=('Fe_K', 'Pb_L')"
        )
    if len(set(elements)) != len(elements):
        raise ValueError(
            f"EpicsSDD {name!r}: element channels must be unique, got {list(elements)}"
        )
    for el in elements:
        if not isinstance(el, str) or not el.isidentifier():
            raise ValueError(f"EpicsSDD {name!r}: element channel {el!r} is not a name like 'Fe_K'")
        line_group(el)  # ValueError for an unknown element or family
    return elements
