"""The simulated silicon drift detector: step-mode counting and fly-scan mapping mode.

Step mode (Bluesky's ``count``, ``grid_scan``): ``trigger()`` counts for ``preset_time`` seconds
(real time) at the stage's current position; ``read()`` gives the spectrum, the live and real
time, the dead-time fraction and one ROI sum per element.

Mapping mode (dwellwise's fly plans): ``prepare(CubeSetup(...))`` opens the cube file and gates
the detector with the stage's fly rows. For each row the stage reports the time the beam spent
in every pixel; the detector draws Poisson spectra for exactly those times (live time follows
from the dead time). Writing the row to the cube file and queueing it for Bluesky (``sdd.pixels``,
``sdd.spectra``) is the shared :class:`~dwellwise.drivers.mapping.MappingDetector`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from dwellwise.drivers.fly import RowGates
from dwellwise.drivers.mapping import (
    SPECTRA_DATASET,
    CubeSetup,
    MappingDetector,
    PixelPages,
    SpectraAssets,
    with_element_rois,
)
from dwellwise.simulators.beam import BeamPosition
from dwellwise.simulators.clock import Clock, ScaledClock
from dwellwise.simulators.detector import Acquisition, PoissonSDD
from dwellwise.simulators.scenes import Scene
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

__all__ = [
    "SPECTRA_DATASET",
    "BeamPosition",
    "CubeSetup",
    "PixelPages",
    "SimSDD",
    "SpectraAssets",
    "make_sim_sdd",
]


def make_sim_sdd(scene: Scene, beam: BeamPosition, stage, **kwargs) -> SimSDD:
    """A simulated SDD for ``scene``, gated by ``stage``, with ROIs of the scene's elements."""
    cls = with_element_rois(SimSDD, tuple(scene.elements))
    return cls(scene=scene, beam=beam, stage=stage, **kwargs)


class SimSDD(MappingDetector, Device):
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
        self._init_mapping(f"SIM:{name}")
        stage.subscribe_rows(self)

    @property
    def roi_windows(self) -> np.ndarray:
        return self.scene.model.roi_windows

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
        roi = self.roi_counts(counts[None])[:, 0]
        for el, value in zip(self.elements, roi, strict=True):
            getattr(self.rois, el).put(int(value))

    def _acquire(self, rates: np.ndarray, real_time: np.ndarray) -> Acquisition:
        with self._rng_lock:
            seed = int(self._rng.integers(2**63))
        return self.counter.acquire(rates, real_time=real_time, rng=np.random.default_rng(seed))

    # -- mapping mode ------------------------------------------------------------------
    def _cube_truth(self, setup: CubeSetup) -> dict[str, Any]:
        rates, roi = self.beam.truth(setup.shape, setup.pixel_size, setup.origin)
        return {"rates": rates, "roi_rates": roi, "elements": self.elements}

    def _begin_row(self, gates: RowGates) -> tuple[np.ndarray, Acquisition]:
        """The counts are drawn when the row starts, for the times the stage plans (the
        drawing then overlaps the flight)."""
        rates = self.beam.component_rates(gates.x, gates.y)
        return gates.real_time, self._acquire(rates, gates.real_time)

    def _end_row(self, gates: RowGates, handle: tuple[np.ndarray, Acquisition]) -> Acquisition:
        """A stage that measures its pixel times (a real controller) may finish a row with
        other times than it started it with: the row is drawn again for the measured times."""
        started_with, acq = handle
        if np.array_equal(started_with, gates.real_time):
            return acq
        return self._acquire(self.beam.component_rates(gates.x, gates.y), gates.real_time)
