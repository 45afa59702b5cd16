"""Helpers of the hardware tests: daemon configurations pointing at the Zaber emulator and the
caproto MCA IOC, waiting for jobs, row listeners that inject faults."""

from __future__ import annotations

import time
from pathlib import Path

from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.config import DaemonConfig
from dwellwise.simulators.clock import ScaledClock
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.mca_ioc import McaIoc
from dwellwise.simulators.zaber_emulator import ZaberEmulator

ELEMENTS = ["Ca_K", "Fe_K", "Pb_L"]
"""Element channels the EPICS detector records."""
AXIS = EnergyAxis(channels=1024, gain_kev=0.04, offset_kev=0.0)
"""The IOC's energy calibration (small spectra: fast Channel Access)."""
FINAL = ("completed", "failed", "aborted", "interrupted")
EPICS_FAST = {"timeout_s": 0.5, "acquisition_margin_s": 0.3}
"""Short EPICS timeouts: every fault ends in well under a second."""
ZABER_FAST = {"timeout_s": 0.15, "retries": 1}
"""Short Zaber timeouts: a silent controller is noticed in a fraction of a second."""
CA_ENV = ("EPICS_CA_ADDR_LIST", "EPICS_CA_AUTO_ADDR_LIST")
"""Channel Access client settings a test may change (and restores)."""


def emulator(speedup: float = 20.0, homed: bool = True, **kwargs) -> ZaberEmulator:
    """A two-device Zaber chain on a pty (homed unless asked), started (close it when done)."""
    return ZaberEmulator(clock=ScaledClock(speedup), homed=homed, **kwargs).start()


def zaber_device(emu: ZaberEmulator, **extra) -> dict:
    """``[devices.stage]`` of a Zaber stage on the emulator ``emu``."""
    return {
        "kind": "zaber",
        "port": emu.port,
        "clock_speedup": emu.clock.speedup,
        **ZABER_FAST,
        **extra,
    }


def epics_device(ioc: McaIoc, **extra) -> dict:
    """``[devices.sdd]`` of the EPICS detector on the IOC ``ioc``."""
    return {
        "kind": "epics-mca",
        "prefix": ioc.record_name,
        "elements": ELEMENTS,
        "ca_addr_list": [f"{ioc.host}:{ioc.port}"],
        **EPICS_FAST,
        **extra,
    }


def hardware_config(data_dir: Path, *, stage: dict | None = None, sdd: dict | None = None) -> DaemonConfig:
    """A daemon configuration on free loopback ports with these ``[devices]``."""
    devices = {}
    if stage is not None:
        devices["stage"] = stage
    if sdd is not None:
        devices["sdd"] = sdd
    config = DaemonConfig.model_validate({"devices": devices})
    return config.with_overrides(
        control="tcp://127.0.0.1:0",
        events="tcp://127.0.0.1:0",
        documents="tcp://127.0.0.1:0",
        data_dir=data_dir,
        status_interval=0.5,
    )


def wait_state(client: ControlClient, job_id: str, states=FINAL, timeout: float = 60.0) -> dict:
    """Poll ``job`` until its state is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.call("job", job_id=job_id)
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
        time.sleep(0.01)


class AfterRows:
    """A row listener that calls ``action`` once, when ``n`` rows have finished."""

    def __init__(self, n: int, action) -> None:
        self.n = n
        self.action = action
        self.finished = 0

    def row_started(self, gates) -> None:
        pass

    def row_aborted(self, gates) -> None:
        pass

    def row_finished(self, gates) -> None:
        self.finished += 1
        if self.finished == self.n:
            self.action()


def finish(client: ControlClient, job_id: str, *, max_faults: int = 5, timeout: float = 60.0) -> tuple[dict, list[str]]:
    """Wait for ``job_id`` to end, resuming it after any further device-fault pause (on a loaded
    machine the 20x emulator occasionally ends a row early: a genuine fault, reported and
    resumable like any other). Returns the final job and the faults it resumed after."""
    faults: list[str] = []
    while True:
        job = wait_state(client, job_id, (*FINAL, "paused"), timeout=timeout)
        if job["state"] != "paused":
            return job, faults
        assert (job["error"] or "").startswith("device fault: "), job
        faults.append(job["error"])
        assert len(faults) <= max_faults, faults
        resume(client, job)


def resume(client: ControlClient, paused: dict, timeout: float = 30.0) -> None:
    """Resume the ``paused`` job and wait until the runner took it up (its record changed: it
    runs again, or has already paused again)."""
    reply = client.request("resume", {"job_id": paused["job_id"]})
    assert reply["success"] and reply["msg"] == f"job {paused['job_id']} resumes", reply
    deadline = time.monotonic() + timeout
    while client.call("job", job_id=paused["job_id"])["updated"] == paused["updated"]:
        assert time.monotonic() < deadline, f"job {paused['job_id']} did not resume"
        time.sleep(0.005)
