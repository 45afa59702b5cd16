"""The simulated EPICS MCA IOC, seen through a plain caproto client (no ophyd)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from caproto.threading.client import Context
from dwellwise.simulators.detector import PoissonSDD
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.mca_ioc import McaIoc, SceneAtPosition, UniformMaterial, free_port, main
from dwellwise.simulators.scenes import load_scene

RATES = {"Fe_K": 4000.0, "Pb_L": 6000.0}
AXIS = EnergyAxis(channels=2048, gain_kev=0.02, offset_kev=-0.01)


@pytest.fixture(scope="module")
def ioc():
    server = McaIoc("TIOC:", source=UniformMaterial(RATES, axis=AXIS), seed=3, n_rois=4).start()
    saved = {k: os.environ.get(k) for k in server.client_env()}
    os.environ.update(server.client_env())
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def pv(ioc):
    ctx = Context()
    fields = ("VAL", "NUSE", "PRTM", "PLTM", "ERST", "STOP", "ACQG", "ELTM", "ERTM", "CALO", "CALS",
              "CALQ", "EGU", "R0LO", "R0HI", "R0NM", "R0")  # fmt: skip
    pvs = ctx.get_pvs(*(f"{ioc.record_name}.{f}" for f in fields), timeout=5)
    yield dict(zip(fields, pvs, strict=True))
    ctx.disconnect()


@pytest.fixture(autouse=True)
def no_faults(ioc):
    yield
    ioc.answer()
    ioc.faults.clear()


def read(pv, timeout=2.0):
    data = pv.read(timeout=timeout).data
    return data[0] if len(data) == 1 else data


def acquire(pv, preset_s, timeout=5.0):
    pv["PRTM"].write([preset_s], wait=True, timeout=2)
    pv["ERST"].write([1], wait=True, timeout=2)
    deadline = time.monotonic() + timeout
    while read(pv["ACQG"]) == 1:
        assert time.monotonic() < deadline, "acquisition never ended"
        time.sleep(0.005)


def test_calibration_and_channels_come_from_the_energy_axis(pv):
    assert read(pv["NUSE"]) == AXIS.channels
    assert read(pv["CALO"]) == pytest.approx(AXIS.offset_kev)
    assert read(pv["CALS"]) == pytest.approx(AXIS.gain_kev)
    assert read(pv["CALQ"]) == 0.0
    assert read(pv["EGU"]) == b"keV"


def test_an_acquisition_counts_poisson_spectra_for_its_preset(ioc, pv):
    pv["PLTM"].write([0.0], wait=True)
    pv["R0LO"].write([300], wait=True)
    pv["R0HI"].write([340], wait=True)
    done = ioc.acquisitions
    acquire(pv, 0.2)
    assert ioc.acquisitions == done + 1
    spectrum = pv["VAL"].read().data
    real, live = read(pv["ERTM"]), read(pv["ELTM"])
    assert spectrum.size == AXIS.channels and real == pytest.approx(0.2)
    model = ioc.group.source.model
    rates = ioc.group.source.component_rates()
    n = rates.sum()
    assert live == pytest.approx(0.2 / (1 + n * 1e-6))  # non-paralyzable dead time
    expected = PoissonSDD(model).sampler.area @ rates * live
    assert abs(spectrum.sum() - expected) < 5 * np.sqrt(expected)
    assert read(pv["R0"]) == spectrum[300:341].sum()


def test_a_live_time_preset_ends_the_acquisition(pv):
    pv["PRTM"].write([0.0], wait=True)
    pv["PLTM"].write([0.05], wait=True)
    pv["ERST"].write([1], wait=True)
    while read(pv["ACQG"]) == 1:
        time.sleep(0.005)
    assert read(pv["ELTM"]) == pytest.approx(0.05)
    assert read(pv["ERTM"]) > read(pv["ELTM"])
    pv["PLTM"].write([0.0], wait=True)


def test_garbled_replies(ioc, pv):
    ioc.faults.short_spectrum = True
    assert pv["VAL"].read().data.size == AXIS.channels // 2
    ioc.faults.nan_calibration = True
    assert np.isnan(read(pv["CALS"]))


def test_a_refused_preset_keeps_the_old_value(ioc, pv):
    pv["PRTM"].write([0.3], wait=True)
    ioc.faults.reject_presets = True
    pv["PRTM"].write([0.7], wait=False)
    assert read(pv["PRTM"]) == 0.3  # the error reply is not answered as a completion


def test_a_stalled_acquisition_runs_until_stopped(ioc, pv):
    ioc.faults.stall = True
    pv["PRTM"].write([0.01], wait=True)
    pv["ERST"].write([1], wait=True)
    time.sleep(0.1)
    assert read(pv["ACQG"]) == 1
    pv["STOP"].write([1], wait=True)
    deadline = time.monotonic() + 5
    while read(pv["ACQG"]) == 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert read(pv["ERTM"]) >= 0.1  # counted for as long as it ran


def test_a_hung_ioc_answers_nothing_until_released(ioc, pv):
    ioc.hang()
    with pytest.raises(TimeoutError):
        pv["NUSE"].read(timeout=0.3)
    ioc.answer()
    assert read(pv["NUSE"]) == AXIS.channels


def test_scene_source_follows_the_position_callable():
    scene = load_scene("astronaut", shape=(8, 8), seed=0)
    where = {"xy": (1.0, 1.5)}
    source = SceneAtPosition(scene, 0.5, lambda: where["xy"])
    np.testing.assert_allclose(
        source.component_rates(), scene.component_rates(slice(3, 4))[:, 0, 2]
    )
    where["xy"] = (-5.0, 0.0)  # off the painting
    assert not source.component_rates().any()


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="finite counts/s"):
        UniformMaterial({"Fe_K": -1.0})
    assert main(["--rates", "Fe_K=1e3,Zn_K=-2", "--port", "1"]) == 2


@pytest.mark.slow
def test_runs_as_a_program_for_a_person():
    port = free_port()
    env = {**os.environ, "EPICS_CA_ADDR_LIST": f"127.0.0.1:{port}", "EPICS_CA_AUTO_ADDR_LIST": "NO"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dwellwise.simulators.mca_ioc",
            "--prefix",
            "TPROC:",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert f"serving TPROC:mca1 on 127.0.0.1:{port}" in line
        saved = os.environ.get("EPICS_CA_ADDR_LIST")
        os.environ["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{port}"
        try:
            ctx = Context()
            (nuse,) = ctx.get_pvs("TPROC:mca1.NUSE", timeout=5)
            assert nuse.read(timeout=5).data[0] == 4096
            ctx.disconnect()
        finally:
            if saved is None:
                os.environ.pop("EPICS_CA_ADDR_LIST")
            else:
                os.environ["EPICS_CA_ADDR_LIST"] = saved
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_ioc_module_needs_no_ophyd_or_bluesky():
    code = (
        "import sys, dwellwise.simulators.mca_ioc\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ophyd', 'bluesky', 'torch')]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_failing_rate_source_ends_the_acquisition_empty():
    scene = load_scene("astronaut", shape=(4, 4), seed=0)

    def nowhere():
        raise RuntimeError("stage position unavailable")

    server = McaIoc("TFAIL:", source=SceneAtPosition(scene, 0.5, nowhere)).start()
    saved = os.environ.get("EPICS_CA_ADDR_LIST", "")
    os.environ["EPICS_CA_ADDR_LIST"] = f"{saved} 127.0.0.1:{server.port}".strip()
    try:
        ctx = Context()
        erst, acqg, ertm = ctx.get_pvs(
            *(f"TFAIL:mca1.{f}" for f in ("ERST", "ACQG", "ERTM")), timeout=5
        )
        erst.write([1], wait=True, timeout=2)
        deadline = time.monotonic() + 5
        while read(acqg) == 1:
            assert time.monotonic() < deadline, "a failed acquisition never ended"
            time.sleep(0.005)
        assert read(ertm) == 0.0 and server.acquisitions == 0
        ctx.disconnect()
    finally:
        os.environ["EPICS_CA_ADDR_LIST"] = saved
        server.stop()
