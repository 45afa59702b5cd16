"""The simulated beamline: a painting scene under a simulated stage and SDD.

>>> bl = sim_beamline("astronaut", shape=(32, 32), pixel_size=0.5, speedup=10)
>>> bl.stage, bl.sdd           # Ophyd devices for a plain RunEngine
>>> bl.truth.roi_rates         # (C, H, W) counts/s

Instrument time is wall-clock time × ``speedup`` for both devices (one shared clock).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dwellwise.drivers.sim_sdd import BeamPosition, SimSDD, make_sim_sdd
from dwellwise.drivers.sim_stage import DEFAULT_LIMITS_MM, SimStage, StageFaults
from dwellwise.simulators.clock import ScaledClock
from dwellwise.simulators.kinematics import Kinematics
from dwellwise.simulators.scenes import Scene, load_scene


@dataclass(frozen=True)
class Truth:
    """Ground truth of a simulated painting, on the painting's own pixel grid."""

    rates: np.ndarray
    """``(C, H, W)`` detected rate of each element family, counts/s."""
    roi_rates: np.ndarray
    """``(C, H, W)`` expected count rate in each element's ROI window, counts/s."""
    elements: tuple[str, ...]
    """Element channel labels, in ROI order."""


@dataclass
class SimBeamline:
    """A simulated painting under a stage and a detector that share one clock."""

    stage: SimStage
    """X/Y stage (``stage.x``, ``stage.y``; ``stage.set(FlyRow)``)."""
    sdd: SimSDD
    """Silicon drift detector."""
    truth: Truth
    """Ground truth on the painting's pixel grid (pixel (0, 0) centred at x = y = 0 mm)."""
    scene: Scene
    """The simulated painting."""
    clock: ScaledClock
    """Instrument clock (wall time × speedup)."""
    pixel_size: float
    """Pitch of the painting's pixel grid, mm."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.scene.shape


def sim_beamline(
    scene: str = "astronaut",
    shape: tuple[int, int] = (64, 64),
    pixel_size: float = 0.5,
    speedup: float = 1.0,
    seed: int = 0,
    *,
    kinematics: Kinematics | None = None,
    limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
    faults: StageFaults | None = None,
    dead_time_s: float = 1e-6,
) -> SimBeamline:
    """Build the simulated beamline for a painting ``scene`` of ``shape`` pixels of
    ``pixel_size`` mm (pixel (0, 0) centred at the stage origin)."""
    if not pixel_size > 0:
        raise ValueError(f"pixel_size must be > 0 mm, got {pixel_size}")
    painting = load_scene(scene, shape=tuple(shape), seed=seed)
    clock = ScaledClock(speedup)
    if limits is None:
        span = (max(painting.shape) - 1) * pixel_size
        hi = max(DEFAULT_LIMITS_MM[1], span + 10.0)
        limits = ((DEFAULT_LIMITS_MM[0], hi), (DEFAULT_LIMITS_MM[0], hi))
    stage = SimStage(
        "stage", kinematics=kinematics or Kinematics(), clock=clock, limits=limits, faults=faults
    )
    beam = BeamPosition(painting, pixel_size)
    sdd = make_sim_sdd(
        painting, beam, stage, name="sdd", clock=clock, dead_time_s=dead_time_s, seed=seed
    )
    truth = Truth(
        rates=painting.rates, roi_rates=painting.roi_rates, elements=tuple(painting.elements)
    )
    return SimBeamline(
        stage=stage, sdd=sdd, truth=truth, scene=painting, clock=clock, pixel_size=pixel_size
    )
