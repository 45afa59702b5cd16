"""The devices a daemon owns when its configuration names real hardware (``[devices]``).

A simulated beamline is built afresh for every job (:func:`~dwellwise.daemon.build.build_scan`).
Real devices are different: they are opened once, when the daemon starts, serve every job one
after another, and are closed when it stops. :class:`Devices` holds them:

* ``stage``: a :class:`~dwellwise.drivers.zaber.ZaberStage` (``kind = "zaber"``), or the simulated
  stage with ``[beamline]``'s limits and kinematics on a real-time clock when only the detector
  is real;
* ``sdd``: an :class:`~dwellwise.drivers.epics.EpicsSDD` gated by that stage (``kind =
  "epics-mca"``), or ``None`` when the detector is simulated: each job then gets a simulated
  detector reading its own scene where the (real) stage is.

Opening can fail (an unplugged adapter, an IOC that is down): :class:`DevicesUnavailable` names
the device and the cause; the daemon keeps serving, reports it in ``status`` and tries again at
the next ``submit``. ``dwellwise check-hardware`` uses the same openers, one device at a time.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from typing import Any

from dwellwise.daemon.config import (
    BeamlineSection,
    DevicesSection,
    EpicsMcaDevice,
    ZaberStageDevice,
)

log = logging.getLogger(__name__)


class DevicesUnavailable(RuntimeError):
    """A configured device cannot be opened; the message names it and says why."""


def open_stage(config: ZaberStageDevice | Any, beamline: BeamlineSection) -> Any:
    """The stage of ``[devices.stage]``: a connected :class:`ZaberStage`, or the simulated stage
    (``kind = "sim"``) on a real-time clock. Raises the driver's error (a
    :class:`~dwellwise.drivers.faults.DeviceFault`, ``ValueError`` for settings the devices
    refuse)."""
    from dwellwise.simulators.clock import ScaledClock
    from dwellwise.simulators.kinematics import Kinematics

    if not isinstance(config, ZaberStageDevice):
        from dwellwise.drivers.sim_stage import SimStage

        options = beamline.stage_options()
        return SimStage("stage", clock=ScaledClock(1.0), **options)
    from dwellwise.drivers.zaber import ZaberStage

    kwargs: dict[str, Any] = {}
    if config.microstep_mm is not None:
        kwargs["microstep_mm"] = config.microstep_mm
    if config.limits_x is not None or config.limits_y is not None:
        wide = (-math.inf, math.inf)
        kwargs["limits"] = (tuple(config.limits_x or wide), tuple(config.limits_y or wide))
    stage = ZaberStage(
        "stage",
        config.port,
        x_axis=tuple(config.x_axis),
        y_axis=tuple(config.y_axis),
        baudrate=config.baudrate,
        offset_mm=tuple(config.offset_mm),
        clock=ScaledClock(config.clock_speedup),
        timeout_s=config.timeout_s,
        retries=config.retries,
        home=config.home,
        max_segments=config.max_segments,
        move_timeout_s=config.move_timeout_s,
        **kwargs,
    )
    try:
        if config.v_max is not None or config.a_max is not None or config.settle_s:
            have = stage.kinematics
            stage.set_kinematics(
                Kinematics(
                    v_max=config.v_max or have.v_max,
                    a_max=config.a_max or have.a_max,
                    settle_s=config.settle_s,
                )
            )
    except BaseException:
        stage.close()
        raise
    return stage


def open_sdd(config: EpicsMcaDevice, stage: Any) -> Any:
    """The :class:`EpicsSDD` of ``[devices.sdd]``, gated by ``stage``, connected (its calibration
    read). Raises :class:`~dwellwise.drivers.epics.EpicsSDDError` naming the PV and the cause."""
    from dwellwise.drivers.epics import EpicsSDD

    if config.ca_addr_list is not None:
        os.environ["EPICS_CA_ADDR_LIST"] = " ".join(config.ca_addr_list)
        os.environ["EPICS_CA_AUTO_ADDR_LIST"] = "NO"
    sdd = EpicsSDD(
        config.prefix,
        elements=tuple(config.elements),
        name="sdd",
        stage=stage,
        timeout_s=config.timeout_s,
        acquisition_margin_s=config.acquisition_margin_s,
        poll_s=config.poll_s,
    )
    try:
        sdd.connect()
    except BaseException:
        stage.unsubscribe_rows(sdd)
        raise
    return sdd


class Devices:
    """The daemon's own devices (see the module docstring); safe to use from several threads."""

    def __init__(self, section: DevicesSection, beamline: BeamlineSection) -> None:
        if not section.hardware:
            raise ValueError("Devices holds real hardware; this configuration has none")
        self.section = section
        self.beamline = beamline
        self.stage: Any = None
        """The stage (``None`` until opened)."""
        self.sdd: Any = None
        """The real detector, or ``None`` (not opened yet, or simulated per job)."""
        self.error: str | None = None
        """Why the last attempt to open them failed (``None``: open, or not tried yet)."""
        self._lock = threading.Lock()
        self._closed = False

    @property
    def speedup(self) -> float:
        """Instrument seconds per wall second (1: real time)."""
        return self.section.speedup

    @property
    def real_sdd(self) -> bool:
        """Whether the detector is real (else each job simulates one on its scene)."""
        return self.section.sdd.kind != "sim"

    @property
    def ready(self) -> bool:
        return self.stage is not None and (self.sdd is not None or not self.real_sdd)

    def open(self) -> Devices:
        """Open what is not open yet; :class:`DevicesUnavailable` names the device and why."""
        with self._lock:
            if self._closed:
                raise DevicesUnavailable("the daemon's devices are closed (shutting down)")
            if self.ready:
                return self
            try:
                if self.stage is None:
                    self.stage = self._open("stage", lambda: open_stage(self.section.stage, self.beamline))
                if self.real_sdd and self.sdd is None:
                    self.sdd = self._open("sdd", lambda: open_sdd(self.section.sdd, self.stage))
            except DevicesUnavailable as exc:
                self.error = str(exc)
                raise
            self.error = None
            log.info(
                "devices open: stage %s; detector %s",
                self.section.stage.describe(),
                self.section.sdd.describe(),
            )
            return self

    def _open(self, key: str, opener) -> Any:
        config = getattr(self.section, key)
        try:
            return opener()
        except Exception as exc:  # the driver's words: DeviceFault, ValueError, OSError
            raise DevicesUnavailable(
                f"devices.{key} ({config.describe()}) cannot be opened: {exc}"
            ) from exc

    def describe(self) -> dict[str, Any]:
        """What ``status`` reports under ``devices``."""
        return {
            "beamline": "hardware",
            "stage": self.section.stage.describe(),
            "detector": self.section.sdd.describe(),
            "open": self.ready,
            "error": self.error,
        }

    def close(self) -> None:
        """Close the serial line and forget the devices (at shutdown)."""
        with self._lock:
            self._closed = True
            stage, self.stage, self.sdd = self.stage, None, None
        close = getattr(stage, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("cannot close the stage")
