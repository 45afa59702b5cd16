"""The EPICS MCA SDD against the simulated caproto IOC: step mode, fly rows, calibration, faults."""

from __future__ import annotations

import os
import threading

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count, grid_scan
from dwellwise.drivers.epics import EpicsSDD, EpicsSDDError
from dwellwise.drivers.sim_stage import SimStage
from dwellwise.planners import adaptive_scan, raster_scan
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.mca_ioc import McaIoc, SceneAtPosition, UniformMaterial
from dwellwise.simulators.scenes import load_scene
from event_model import DocumentNames, schema_validators

ELEMENTS = ("Ca_K", "Fe_K", "Pb_L")
AXIS = EnergyAxis(channels=2048, gain_kev=0.02, offset_kev=-0.01)
FAST = {"timeout_s": 1.0, "acquisition_margin_s": 0.3}
"""Short timeouts so that every fault ends in well under a second."""
HANG_S = 30.0
"""A call still running after this long counts as hung (not a timing assertion)."""


class _Env:
    """The Channel Access client environment, pointing at every IOC of this module."""

    def __init__(self) -> None:
        self.saved = {
            k: os.environ.get(k) for k in ("EPICS_CA_ADDR_LIST", "EPICS_CA_AUTO_ADDR_LIST")
        }
        self.addresses: list[str] = []

    def add(self, ioc: McaIoc) -> McaIoc:
        self.addresses.append(f"{ioc.host}:{ioc.port}")
        os.environ["EPICS_CA_ADDR_LIST"] = " ".join(self.addresses)
        os.environ["EPICS_CA_AUTO_ADDR_LIST"] = "NO"
        return ioc

    def restore(self) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def env():
    e = _Env()
    yield e
    e.restore()


@pytest.fixture(scope="module")
def stage():
    return SimStage("stage")


@pytest.fixture(scope="module")
def ioc(env, stage):
    """A uniform material at the beam (the fly and fault tests)."""
    source = UniformMaterial({"Ca_K": 3000.0, "Fe_K": 5000.0, "Pb_L": 4000.0}, axis=AXIS)
    server = env.add(McaIoc("TSDD:", source=source, seed=1).start())
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_faults(ioc):
    yield
    ioc.answer()
    ioc.faults.clear()


@pytest.fixture
def sdd(ioc):
    return EpicsSDD(ioc.record_name, elements=ELEMENTS, name="sdd", **FAST)


def finishes(fn, *args, **kwargs):
    """Run ``fn`` in a thread; its exception or result, failing the test if it hangs."""
    out: dict = {}

    def run() -> None:
        try:
            out["result"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG_S)
    assert not t.is_alive(), f"{fn.__name__} hung"
    return out


def collect(RE):
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return docs


def test_calibration_and_roi_windows_come_from_the_ioc(sdd):
    axis = sdd.connect()
    assert axis == AXIS
    assert sdd.energy_gain.get() == pytest.approx(
        0.02
    ) and sdd.energy_offset.get() == pytest.approx(-0.01)
    fe_lo, fe_hi = sdd.roi_windows[ELEMENTS.index("Fe_K")]
    assert AXIS.centers[fe_lo] < 6.404 < AXIS.centers[fe_hi]  # Fe Kα1 on the IOC's axis
    assert type(sdd).__name__ == "EpicsSDD_3" and list(sdd.rois.read()) == [
        f"sdd_rois_{e}" for e in ELEMENTS
    ]


def test_count_step_mode_documents_valid_and_rois_agree_with_the_record(ioc, sdd):
    RE = RunEngine({})
    docs = collect(RE)
    sdd.preset_time.put(0.02)
    before = ioc.acquisitions
    RE(count([sdd], num=3))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    events = [d["data"] for n, d in docs if n == "event"]
    assert len(events) == 3 and ioc.acquisitions == before + 3
    last = events[-1]
    spectrum = np.asarray(last["sdd_spectrum"])
    assert spectrum.shape == (AXIS.channels,) and spectrum.sum() > 0
    assert last["sdd_real_time"] == pytest.approx(0.02)
    assert 0 < last["sdd_live_time"] < last["sdd_real_time"]
    assert last["sdd_dead_time_fraction"] == pytest.approx(1 - last["sdd_live_time"] / 0.02)
    lo, hi = sdd.roi_windows[1]
    assert last["sdd_rois_Fe_K"] == spectrum[lo : hi + 1].sum()
    # stage() programmed the record's ROIs with the same windows: the IOC's sum agrees
    roi1 = sdd.mca.rois.roi1
    assert roi1.label.get() == "Fe_K" and (roi1.lo_chan.get(), roi1.hi_chan.get()) == (lo, hi)
    assert roi1.count.get(use_monitor=False) == last["sdd_rois_Fe_K"]
    config = [d["configuration"]["sdd"]["data"] for n, d in docs if n == "descriptor"][0]
    assert config["sdd_energy_gain"] == pytest.approx(0.02)


def test_grid_scan_reads_the_painting_under_the_stage(env):
    """The IOC samples a painting where the stage is: spectra follow the scene pixel by pixel."""
    scene = load_scene("astronaut", shape=(6, 6), seed=0)
    stage = SimStage("gstage")
    source = SceneAtPosition(scene, 0.5, lambda: (stage.x.position, stage.y.position))
    server = env.add(McaIoc("TGRID:", source=source, seed=2).start())
    try:
        sdd = EpicsSDD(server.record_name, elements=("Ca_K", "Pb_L"), name="sdd", **FAST)
        sdd.preset_time.put(0.01)
        RE = RunEngine({})
        docs = collect(RE)
        RE(grid_scan([sdd], stage.y, 0, 1.0, 3, stage.x, 0, 1.5, 4, snake_axes=True))
        for name, doc in docs:
            schema_validators[DocumentNames[name]].validate(doc)
        events = [d["data"] for n, d in docs if n == "event"]
        assert len(events) == 12
        # counts track the scene's total rate under each pixel (Poisson noise aside)
        rates = []
        for e in events:
            r, c = int(round(e["gstage_y"] / 0.5)), int(round(e["gstage_x"] / 0.5))
            rates.append(scene.component_rates(slice(r, r + 1))[:, 0, c].sum())
        totals = [np.sum(e["sdd_spectrum"]) for e in events]
        assert np.corrcoef(rates, totals)[0, 1] > 0.8
    finally:
        server.stop()


def test_fly_scan_writes_the_cube_through_the_shared_collector(ioc, tmp_path):
    stage = SimStage("fstage")
    sdd = EpicsSDD(ioc.record_name, elements=ELEMENTS, name="sdd", stage=stage, **FAST)
    sdd.file_path = str(tmp_path / "fly.h5")
    RE = RunEngine({})
    docs = collect(RE)
    before = ioc.acquisitions
    RE(raster_scan(stage, sdd, shape=(3, 4), pixel_size=0.5, dwell=0.01))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    assert ioc.acquisitions == before + 12  # one acquisition per pixel
    pages = [d for n, d in docs if n == "event_page"]
    pixels = [
        (r, c) for p in pages for r, c in zip(p["data"]["row"], p["data"]["col"], strict=True)
    ]
    assert sorted(pixels) == [(r, c) for r in range(3) for c in range(4)]
    assert len([d for n, d in docs if n == "stream_datum"]) == 3
    with h5py.File(tmp_path / "fly.h5") as f:
        assert f["entry/passes/1/rows_complete"][...].all()
        assert bytes(f["entry/scan_status"][()]).strip() == b"completed"
        assert "entry/truth" not in f
        np.testing.assert_allclose(f["entry/data/energy"][...], AXIS.centers)
        real = f["entry/data/real_time"][...]
        live = f["entry/data/live_time"][...]
        assert np.all(real >= 0.01 * (1 - 1e-9)) and np.all((live > 0) & (live < real))
        counts = f["entry/data/counts"][...]
        roi = f["entry/passes/1/roi_counts"][...]
    page_roi = np.zeros_like(roi)
    for p in pages:
        d = p["data"]
        page_roi[:, d["row"], d["col"]] = np.asarray(d["roi_counts"]).T
    np.testing.assert_array_equal(page_roi, roi)
    lo, hi = sdd.roi_windows[ELEMENTS.index("Pb_L")]
    np.testing.assert_array_equal(counts[..., lo : hi + 1].sum(-1), roi[ELEMENTS.index("Pb_L")])


def test_adaptive_scan_runs_unchanged_and_inside_its_budget(ioc, tmp_path):
    stage = SimStage("astage")
    sdd = EpicsSDD(ioc.record_name, elements=ELEMENTS, name="sdd", stage=stage, **FAST)
    sdd.file_path = str(tmp_path / "adaptive.h5")
    RE = RunEngine({})
    docs = collect(RE)
    budget = 3.0
    RE(
        adaptive_scan(
            stage, sdd, shape=(4, 5), pixel_size=0.5, budget=budget, t0=0.01, policy="bilevel"
        )
    )
    assert docs[-1][1]["exit_status"] == "success"
    with h5py.File(tmp_path / "adaptive.h5") as f:
        assert f["entry/passes/1/rows_complete"][...].all()
        assert f["entry/passes/2/rows_complete"][...].all()
        assert 0 < f["entry/budget_used_s"][()] <= budget


def test_serpentine_rows_are_acquired_in_travel_order(ioc, stage):
    sdd = EpicsSDD(ioc.record_name, elements=ELEMENTS, name="sdd", stage=stage, **FAST)
    from dwellwise.drivers.fly import RowGates

    args = (1, 0, np.array([0.0, 0.5, 1.0]), 0.0, np.full(3, 0.01), np.full(3, 0.01), 0.0, 0.0)
    assert list(sdd._travel_order(RowGates(*args, reverse=True))) == [2, 1, 0]
    assert list(sdd._travel_order(RowGates(*args))) == [0, 1, 2]


@pytest.mark.parametrize(
    ("fault", "pv", "cause"),
    [
        ("stall", ".ACQG", "stalled"),
        ("short_spectrum", ".VAL", "garbled spectrum: 1024 values"),
        ("reject_presets", ".PRTM", "refused"),
    ],
)
def test_each_injected_fault_raises_naming_device_pv_and_cause(ioc, sdd, fault, pv, cause):
    sdd.connect()
    setattr(ioc.faults, fault, True)
    out = finishes(sdd.acquire, 0.0123)
    err = out.get("error")
    assert isinstance(err, EpicsSDDError), out
    assert err.device == "sdd" and err.pv == ioc.record_name + pv and cause in err.cause
    assert "'sdd'" in str(err) and ioc.record_name + pv in str(err)
    ioc.faults.clear()
    assert finishes(sdd.acquire, 0.0123)["result"].real_time[0] == pytest.approx(0.0123)


def test_a_garbled_calibration_is_refused(ioc, sdd):
    ioc.faults.nan_calibration = True
    err = finishes(sdd.connect)["error"]
    assert isinstance(err, EpicsSDDError) and err.pv.endswith(".CALS") and "garbled" in err.cause


def test_an_ioc_that_stops_answering_gives_no_reply_not_a_hang(ioc, sdd):
    sdd.connect()
    ioc.hang()
    err = finishes(sdd.acquire, 0.01).get("error")
    assert (
        isinstance(err, EpicsSDDError)
        and "no reply" in err.cause
        and err.pv.startswith(ioc.record_name)
    )
    ioc.answer()
    assert finishes(sdd.acquire, 0.01)["result"].counts.sum() > 0


def test_an_ioc_that_goes_away_is_reported_in_step_mode(env):
    server = env.add(McaIoc("TGONE:", source=UniformMaterial(axis=AXIS)).start())
    sdd = EpicsSDD(server.record_name, elements=ELEMENTS, name="gone", **FAST)
    sdd.preset_time.put(0.01)
    sdd.connect()
    server.stop()
    status = sdd.trigger()
    out = finishes(status.wait, HANG_S)
    err = out.get("error")
    assert isinstance(err, EpicsSDDError), out
    assert err.device == "gone" and err.pv.startswith("TGONE:mca1.")
    assert "not connected" in err.cause or "disconnected" in err.cause
    never = EpicsSDD("TNEVER:mca1", elements=ELEMENTS, name="never", **FAST)
    err = finishes(never.connect)["error"]
    assert isinstance(err, EpicsSDDError) and "not connected" in err.cause


def test_a_fault_during_a_fly_scan_fails_the_row_and_keeps_the_completed_ones(ioc, tmp_path):
    stage = SimStage("kstage")
    sdd = EpicsSDD(ioc.record_name, elements=ELEMENTS, name="sdd", stage=stage, **FAST)
    sdd.file_path = str(tmp_path / "fault.h5")
    RE = RunEngine({})

    def stall_after_first_row(name, doc):
        if name == "event_page":
            ioc.faults.stall = True

    RE.subscribe(stall_after_first_row)
    with pytest.raises(Exception) as info:  # noqa: B017 - bluesky wraps the failure
        RE(raster_scan(stage, sdd, shape=(3, 3), pixel_size=0.5, dwell=0.01))
    err = info.value
    chain = []
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    faults = [e for e in chain if isinstance(e, EpicsSDDError)]
    assert faults, f"no EpicsSDDError in {chain}"
    assert faults[0].pv.endswith(".ACQG") and "row 1 of pass 1" in faults[0].cause
    with h5py.File(tmp_path / "fault.h5") as f:
        assert list(f["entry/passes/1/rows_complete"][...]) == [True, False, False]
        assert bytes(f["entry/scan_status"][()]).strip() == b"failed"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"elements": ()}, "give the element channels"),
        ({"elements": ("Fe_K", "Fe_K")}, "unique"),
        ({"elements": ("Xx_K",)}, "unknown element"),
        ({"elements": ("Fe-K",)}, "not a name"),
        ({"elements": ("Fe_K",), "timeout_s": 0}, "timeout_s"),
        ({"elements": ("Fe_K",), "poll_s": "2ms"}, "poll_s"),
    ],
)
def test_bad_construction_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EpicsSDD("XRF:mca1", name="sdd", **kwargs)
    with pytest.raises(ValueError, match="PV name"):
        EpicsSDD("", elements=("Fe_K",))


def test_resuming_a_file_recorded_on_another_calibration_is_refused(sdd, tmp_path):
    from dwellwise.drivers.mapping import CubeSetup

    from dwellwise.cube import CubeWriter

    path = tmp_path / "old.h5"
    CubeWriter(path, shape=(2, 2), axis=EnergyAxis(), pixel_size=0.5, elements=["Fe_K"],
               roi_windows=np.array([[630, 650]])).close()  # fmt: skip
    sdd.connect()
    with pytest.raises(ValueError, match="resume with the calibration the scan started with"):
        sdd.prepare(CubeSetup(path=path, shape=(2, 2), pixel_size=0.5, resume=True))
    assert sdd.writer is None


def test_a_socket_torn_down_under_a_write_reads_as_a_lost_ioc():
    # CI saw the IOC's socket close between the connect and the write: a BrokenPipeError
    from dwellwise.drivers.epics import _describe

    for exc in (
        BrokenPipeError(32, "Broken pipe"),
        ConnectionResetError(),
        ConnectionRefusedError(),
    ):
        assert _describe(exc, 2.0, "write").startswith("not connected (IOC gone")
    assert _describe(TimeoutError(), 2.0, "write").startswith("no reply to a write")
