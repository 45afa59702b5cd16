"""The fly-scan plans on the simulated beamline, end to end with a plain RunEngine."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import grid_scan
from bluesky.utils import RunEngineInterrupted
from dwellwise.drivers.sim import sim_beamline
from dwellwise.drivers.sim_stage import StageFaults
from dwellwise.planners import ScanRefused, adaptive_scan, budget_raster_scan, raster_scan
from dwellwise.planners.policies import register
from event_model import DocumentNames, schema_validators

SHAPE = (10, 12)
PITCH = 0.5


@pytest.fixture
def bl(tmp_path):
    beamline = sim_beamline("astronaut", shape=(16, 16), pixel_size=PITCH, speedup=10, seed=1)
    beamline.sdd.file_path = str(tmp_path / "scan.h5")
    return beamline


def collect_docs(RE: RunEngine) -> list[tuple[str, dict]]:
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return docs


def primary_pixels(docs) -> list[tuple[int, int, int]]:
    """(pass, row, col) of every pixel event in the primary stream."""
    primary = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "primary"}
    out = []
    for name, doc in docs:
        if name == "event_page" and doc["descriptor"] in primary:
            data = doc["data"]
            out += list(zip(data["pass_number"], data["row"], data["col"], strict=True))
    return out


def test_every_document_validates_and_adaptive_scan_fills_the_file(bl, tmp_path):
    RE = RunEngine({})
    docs = collect_docs(RE)
    RE(adaptive_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, budget=25, t0=0.005,
                     policy="blindspot-sqrt"))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    names = {n for n, _ in docs}
    assert {"start", "descriptor", "event_page", "stream_resource", "stream_datum", "stop"} <= names
    start = docs[0][1]
    assert start["request"]["budget"] == 25 and start["planned_times"]["pass1_s"] > 0
    assert docs[-1][1]["exit_status"] == "success"
    pixels = primary_pixels(docs)
    assert len(pixels) == len(set(pixels)) == 2 * SHAPE[0] * SHAPE[1]
    with h5py.File(tmp_path / "scan.h5") as f:
        assert f["entry/scan_status"][()].decode() == "completed"  # no padding to strip
        p1, p2 = f["entry/passes/1"], f["entry/passes/2"]
        assert p1["rows_complete"][...].all() and p2["rows_complete"][...].all()
        summed = p1["live_time"][...] + p2["live_time"][...]
        np.testing.assert_allclose(f["entry/data/live_time"][...], summed)
        # pass 2 only adds: its ROI counts are its own, the cube holds the sum
        roi_sum = p1["roi_counts"][...].sum() + p2["roi_counts"][...].sum()
        win = f["entry/rois/windows"][...]
        cube = f["entry/data/counts"][...]
        cube_roi = sum(cube[..., lo : hi + 1].sum() for lo, hi in win)
        assert roi_sum == cube_roi
        # every pixel got at least its planned dwell in both passes (real time: beam in pixel)
        planned = p1["dwell_planned"][...] + p2["dwell_planned"][...]
        assert np.all(f["entry/data/real_time"][...] >= planned * (1 - 1e-9))


def test_raster_scan_documents_and_spectra_references(bl, tmp_path):
    RE = RunEngine({})
    docs = collect_docs(RE)
    RE(raster_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, dwell=0.008))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    resources = [d for n, d in docs if n == "stream_resource"]
    datums = [d for n, d in docs if n == "stream_datum"]
    assert len(resources) == 1 and resources[0]["parameters"]["dataset"] == "/entry/data/counts"
    assert len(datums) == SHAPE[0]
    assert sorted(d["indices"]["start"] for d in datums) == [r * SHAPE[1] for r in range(SHAPE[0])]
    with h5py.File(tmp_path / "scan.h5") as f:
        live = f["entry/data/live_time"][...]
        assert np.all(live > 0.0075) and np.all(f["entry/data/real_time"][...] >= 0.008)


def test_grid_scan_step_mode_runs_on_the_same_devices(bl):
    RE = RunEngine({})
    docs = collect_docs(RE)
    bl.sdd.preset_time.put(0.01)
    RE(grid_scan([bl.sdd], bl.stage.y, 0, 1.0, 3, bl.stage.x, 0, 1.5, 4, snake_axes=True))
    events = [d for n, d in docs if n == "event"]
    assert len(events) == 12
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    spectra = np.array([e["data"]["sdd_spectrum"] for e in events])
    assert spectra.shape == (12, bl.sdd.axis.channels) and spectra.sum() > 0
    assert all(e["data"]["sdd_real_time"] == pytest.approx(0.01) for e in events)


def test_pause_then_resume_measures_no_pixel_twice(bl, tmp_path):
    RE = RunEngine({})
    docs = collect_docs(RE)
    timer = threading.Timer(0.05, RE.request_pause, kwargs={"defer": True})
    timer.start()
    with pytest.raises(RunEngineInterrupted):
        RE(raster_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, dwell=0.02))
    assert RE.state == "paused"
    RE.resume()
    pixels = primary_pixels(docs)
    assert len(pixels) == len(set(pixels)) == SHAPE[0] * SHAPE[1]
    with h5py.File(tmp_path / "scan.h5") as f:
        assert f["entry/passes/1/rows_complete"][...].all()
        real = f["entry/data/real_time"][...]
        assert np.all(real < 2 * 0.02)  # one visit per pixel


def test_hard_pause_mid_row_then_resume_measures_no_pixel_twice(bl, tmp_path):
    RE = RunEngine({})
    docs = collect_docs(RE)
    timer = threading.Timer(0.1, RE.request_pause, kwargs={"defer": False})
    timer.start()
    with pytest.raises(RunEngineInterrupted):
        RE(raster_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, dwell=0.05))
    RE.resume()
    pixels = primary_pixels(docs)
    assert len(pixels) == len(set(pixels)) == SHAPE[0] * SHAPE[1]
    with h5py.File(tmp_path / "scan.h5") as f:
        real = f["entry/data/real_time"][...]
        assert np.all(real >= 0.05) and np.all(real < 2 * 0.05)


def test_abort_keeps_completed_rows_and_marks_the_rest_incomplete(bl, tmp_path):
    RE = RunEngine({})
    docs = collect_docs(RE)
    timer = threading.Timer(0.08, RE.request_pause, kwargs={"defer": True})
    timer.start()
    with pytest.raises(RunEngineInterrupted):
        RE(raster_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, dwell=0.03))
    RE.abort("operator stopped it")
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "abort"
    rows_seen = {r for _, r, _ in primary_pixels(docs)}
    with h5py.File(tmp_path / "scan.h5") as f:
        assert bytes(f["entry/scan_status"][()]).strip() == b"aborted"
        done = f["entry/passes/1/rows_complete"][...]
        assert 0 < done.sum() < SHAPE[0]
        assert set(np.flatnonzero(done)) == rows_seen
        live = f["entry/data/live_time"][...]
        assert np.all(live[done] > 0) and np.all(live[~done] == 0)


def test_budget_holds_with_slow_rows_stalls_and_a_stalling_policy(tmp_path):
    @register("test-stall", "sleeps past any deadline (test only)")
    def _stall(problem):
        threading.Event().wait(3.0)
        return np.full(problem.t0.shape, problem.mean_dwell)

    faults = StageFaults(stall_s={2: 1.5, 15: 0.8}, slow_factor={4: 3.0, 12: 2.0})
    bl = sim_beamline("coffee", shape=(16, 16), pixel_size=PITCH, speedup=10, seed=2, faults=faults)
    bl.sdd.file_path = str(tmp_path / "scan.h5")
    RE = RunEngine({})
    docs = collect_docs(RE)
    budget = 30.0
    start = bl.clock.now()
    RE(adaptive_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, budget=budget, t0=0.005,
                     policy="test-stall", passes=3))
    used = bl.clock.now() - start
    assert used <= budget
    assert used >= 0.3 * budget  # a loaded machine's magnified software time ends it sooner
    passes = [d["data"] for n, d in docs if n == "event" and "passes_fell_back" in d["data"]]
    assert passes and all(p["passes_fell_back"] for p in passes if p["passes_pass_number"] > 1)
    # the stalled policy trained nothing: its compute time is waiting, not training
    later = [p for p in passes if p["passes_pass_number"] > 1]
    assert all(p["passes_train_s"] == 0.0 and p["passes_compute_s"] > 0 for p in later)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"t0": 0.001}, "shorter than pitch / v_max"),
        ({"budget": 2.0}, "smallest budget that fits is"),
        ({"origin": (400.0, 0.0)}, "outside the stage limits"),
        ({"weights": [1.0, 2.0]}, "one weight per element"),
        ({"policy": "no-such-policy"}, "unknown dwell policy"),
        ({"policy": "oracle"}, "needs the true rates, which no scan has.*auto"),
        ({"pixel_size": 0.0}, "pixel_size"),
        ({"shape": (0, 5)}, "shape"),
    ],
)
def test_bad_requests_are_refused_before_anything_moves(bl, tmp_path, kwargs, needle):
    request = dict(shape=SHAPE, pixel_size=PITCH, budget=30.0, t0=0.005, policy="auto")
    request.update(kwargs)
    x0 = bl.stage.x.position
    with pytest.raises(ScanRefused, match=needle):
        adaptive_scan(bl.stage, bl.sdd, **request)
    assert bl.stage.x.position == x0
    assert not (tmp_path / "scan.h5").exists()


def test_raster_baseline_fills_its_budget_without_overrun(bl):
    RE = RunEngine({})
    budget = 12.0
    start = bl.clock.now()
    RE(budget_raster_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, budget=budget))
    used = bl.clock.now() - start
    assert 0.8 * budget <= used <= budget


def test_time_spent_paused_does_not_count_against_the_budget(bl, tmp_path):
    RE = RunEngine({})
    threading.Timer(0.2, RE.request_pause, kwargs={"defer": True}).start()
    budget = 20.0
    with pytest.raises(RunEngineInterrupted):
        RE(adaptive_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, budget=budget,
                         t0=0.005, policy="blindspot-sqrt"))
    threading.Event().wait(1.5)  # 15 s of instrument time at speedup 10
    RE.resume()
    with h5py.File(tmp_path / "scan.h5") as f:
        assert bytes(f["entry/scan_status"][()]).strip() == b"completed"
        assert f["entry/passes/1/rows_complete"][...].all()
        assert f["entry/passes/2/rows_complete"][...].sum() >= SHAPE[0] - 1
        assert f["entry/budget_used_s"][()] <= budget


def test_a_row_that_would_overrun_the_budget_is_cut_at_its_end(tmp_path):
    """However slow the stage gets, the budget's end stops the row in flight."""
    faults = StageFaults(slow_factor={n: 40.0 for n in range(12, 40)})
    bl = sim_beamline("rocket", shape=(16, 16), pixel_size=PITCH, speedup=10, seed=4, faults=faults)
    bl.sdd.file_path = str(tmp_path / "scan.h5")
    RE = RunEngine({})
    budget = 20.0
    start = bl.clock.now()
    RE(adaptive_scan(bl.stage, bl.sdd, shape=SHAPE, pixel_size=PITCH, budget=budget,
                     t0=0.005, policy="uniform"))
    assert bl.clock.now() - start <= budget
    with h5py.File(tmp_path / "scan.h5") as f:
        assert f["entry/passes/1/rows_complete"][...].all()
        assert not f["entry/passes/2/rows_complete"][...].all()
