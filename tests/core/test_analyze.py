"""``dwellwise analyze``: truth maps recovered, PyXRF layout, clean re-runs, bounded memory, and
bad input refused with the file left as it was."""

from __future__ import annotations

import hashlib
import shutil
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from dwellwise.models import registry
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.scenes import load_scene

from dwellwise.analyze import AnalysisError, analyze_cube
from dwellwise.cli import main
from dwellwise.simulate import simulate_scan

SHAPE = (16, 20)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cube") / "scan.h5"
    simulate_scan(load_scene("astronaut", SHAPE, seed=3), path, dwell=0.05, seed=3)
    return path


@pytest.fixture
def cube(simulated, tmp_path) -> Path:
    path = tmp_path / "scan.h5"
    shutil.copy(simulated, path)
    return path


class FakeNet:
    """A stand-in network on its own calibration: Fe Kα window rate and total rate."""

    kind = "maps"
    label = "fake net"

    def __init__(self, axis: EnergyAxis, fail_on_call: int | None = None) -> None:
        self.axis = axis
        self.names = ("Fe_K", "total")
        self.calls = 0
        self.fail_on_call = fail_on_call

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("the network fell over")
        assert counts.shape[1] == self.axis.channels
        fe = (self.axis.centers > 6.2) & (self.axis.centers < 6.6)
        live = np.where(live_time > 0, live_time, 1.0)[:, None]
        return np.stack([counts[:, fe].sum(1), counts.sum(1)], axis=1) / live


class FakePigments:
    kind = "pigments"
    label = "fake pigments"
    names = ("lead_white", "vermilion")
    axis = EnergyAxis()

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        share = counts[:, 1000:1100].sum(1) / np.maximum(counts.sum(1), 1)
        return np.stack([share, 1 - share], axis=1).astype(np.float32)


def _install(monkeypatch, **nets) -> None:
    """Pretend these networks are the shipped ones (the others have no weights)."""
    monkeypatch.setattr(registry, "_load_network", lambda kind, device: nets.get(kind))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _names(ds) -> list[str]:
    return [n.decode() for n in ds[()]]


def test_linear_fit_recovers_the_truth_maps(cube, tmp_path, monkeypatch):
    _install(monkeypatch)
    with h5py.File(cube, "r") as f:
        counts_before = f["entry/data/counts"][()]
    summary = analyze_cube(cube, png_dir=tmp_path / "png")
    assert summary.maps_model == "linear fit" and summary.linear_names == ()
    assert any("linear fit made the maps" in n for n in summary.notes)
    assert any("pigments skipped" in n for n in summary.notes)
    with h5py.File(cube, "r") as f:
        fit = f["xrfmap/detsum/xrf_fit"]
        names = _names(f["xrfmap/detsum/xrf_fit_name"])
        assert f["xrfmap/detsum/xrf_fit_name"].dtype.kind == "S"  # PyXRF reads bytes
        assert fit.shape == (len(names), *SHAPE) and fit.dtype == np.float32
        assert fit.attrs["units"] == "counts/s" and fit.attrs["model"] == "linear fit"
        assert list(fit.attrs["names"]) == names
        assert any(o.startswith("S_K~Pb_M") for o in fit.attrs["overlapping_families"])
        maps = fit[()]
        truth = f["entry/truth/rates"][()]
        elements = _names(f["entry/truth/elements"])
        np.testing.assert_array_equal(f["entry/data/counts"][()], counts_before)
        assert f["xrfmap/detsum/counts"][0, 0].sum() == counts_before[0, 0].sum()  # link intact
        assert "entry/analysis/.partial" not in f and "entry/analysis/pigments" not in f
    checked = 0
    for e, t in zip(elements, truth, strict=True):
        if t.mean() * 0.05 < 20:  # fewer than 20 counts a pixel: Poisson noise rules
            continue
        r = np.corrcoef(maps[names.index(e)].ravel(), t.ravel())[0, 1]
        assert r > 0.97, (e, r)
        checked += 1
    assert checked >= 6  # Cr, Fe, Co, Zn, Au, Hg, Pb...
    assert {"Fe_K", "Pb_L", "Hg_L", "S_K", "Sr_K"} <= set(names)  # found + paper-002 targets
    assert summary.pngs == (tmp_path / "png" / "scan_elements.png",)
    assert summary.pngs[0].stat().st_size > 10_000


def test_network_maps_with_baseline_pigments_and_resampling(cube, monkeypatch):
    net = FakeNet(EnergyAxis(channels=2048, gain_kev=0.020))
    _install(monkeypatch, maps=net, pigments=FakePigments())
    summary = analyze_cube(cube, chunk_pixels=100)
    assert summary.maps_model == "fake net" and summary.pigment_model == "fake pigments"
    assert net.calls == int(np.ceil(SHAPE[0] / (100 // SHAPE[1])))  # one call per row block
    with h5py.File(cube, "r") as f:
        assert _names(f["xrfmap/detsum/xrf_fit_name"]) == ["Fe_K", "total"]
        maps = f["xrfmap/detsum/xrf_fit"][()]
        counts = f["entry/data/counts"][()].astype(np.float64)
        live = f["entry/data/live_time"][()]
        # the network saw the spectra on its own calibration, every count kept
        np.testing.assert_allclose(maps[1], counts.sum(-1) / live, rtol=1e-4)
        baseline = f["entry/analysis/linear_fit"]
        assert baseline["maps"].shape[1:] == SHAPE and "Fe_K" in _names(baseline["names"])
        fe_lin = baseline["maps"][_names(baseline["names"]).index("Fe_K")]
        assert np.corrcoef(fe_lin.ravel(), maps[0].ravel())[0, 1] > 0.9
        pig = f["entry/analysis/pigments"]
        assert pig["probability"].shape == (2, *SHAPE) and pig["probability"].dtype == np.float32
        assert _names(pig["names"]) == ["lead_white", "vermilion"]
        assert pig["probability"].attrs["model"] == "fake pigments"
        assert "weights" not in f["xrfmap/detsum/xrf_fit"].attrs  # a network not from a file


def test_the_maps_name_the_weights_that_made_them(cube, monkeypatch):
    net = FakeNet(EnergyAxis())
    net.provenance = ["maps_x.pt sha256:0123 (dwellwise train maps --arch 1dcnn+)", "long.pt"]
    _install(monkeypatch, maps=net)
    analyze_cube(cube, models=["maps"])
    with h5py.File(cube, "r") as f:
        assert list(f["xrfmap/detsum/xrf_fit"].attrs["weights"]) == net.provenance


class ShrinkingNet(FakeNet):
    """A network that reports a fraction of the Fe it sees, as networks do with faint elements at
    long dwell."""

    def __init__(self, axis: EnergyAxis, fe_scale: float) -> None:
        super().__init__(axis)
        self.fe_scale = fe_scale

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        out = super().predict(counts, live_time)
        out[:, 0] *= self.fe_scale
        return out


@pytest.mark.parametrize("fe_scale", [1.0, 0.4])
def test_maps_that_disagree_with_the_linear_fit_are_pointed_out(cube, monkeypatch, fe_scale):
    _install(monkeypatch, maps=ShrinkingNet(EnergyAxis(), fe_scale))
    summary = analyze_cube(cube, models=["maps"])
    # the Kα window holds ~0.85 of the Fe K photons the fit counts over all Fe K lines
    assert summary.scale_vs_linear_fit["Fe_K"] == pytest.approx(0.85 * fe_scale, rel=0.1)
    assert "total" not in summary.scale_vs_linear_fit  # the fit has no such family
    notes = [n for n in summary.notes if "disagree with the linear fit" in n]
    if fe_scale == 1.0:
        assert not notes
    else:
        assert len(notes) == 1 and "Fe_K 0.3" in notes[0] and "/entry/analysis/linear_fit" in notes[0]
    with h5py.File(cube, "r") as f:
        scales = f["xrfmap/detsum/xrf_fit"].attrs["scale_vs_linear_fit"]
        assert scales[0] == pytest.approx(summary.scale_vs_linear_fit["Fe_K"]) and np.isnan(scales[1])


class NoRateWithoutLiveTime(FakeNet):
    """Like the shipped networks: a pixel with no live time has no rate (NaN)."""

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        out = super().predict(counts, live_time)
        out[live_time == 0] = np.nan
        return out


def test_unmeasured_pixels_are_left_out_of_the_comparison(cube, monkeypatch):
    with h5py.File(cube, "r+") as f:  # a scan stopped before its first row was measured
        f["entry/data/counts"][0] = 0
        f["entry/data/live_time"][0] = 0.0
    _install(monkeypatch, maps=NoRateWithoutLiveTime(EnergyAxis()))
    summary = analyze_cube(cube, models=["maps"])
    assert summary.scale_vs_linear_fit["Fe_K"] == pytest.approx(0.85, rel=0.1)
    with h5py.File(cube, "r") as f:
        assert np.isnan(f["xrfmap/detsum/xrf_fit"][0, 0]).all()


def test_unmeasured_pixels_are_nan_in_every_map_and_said_so(cube, monkeypatch):
    with h5py.File(cube, "r+") as f:  # the last two rows of an aborted scan
        f["entry/data/counts"][-2:] = 0
        f["entry/data/live_time"][-2:] = 0.0
        width = f["entry/data/live_time"].shape[1]
    _install(monkeypatch, pigments=FakePigments())
    summary = analyze_cube(cube, models=["linear", "pigments"])
    assert any(f"{2 * width} of" in n and "never measured" in n for n in summary.notes)
    with h5py.File(cube, "r") as f:
        maps = f["xrfmap/detsum/xrf_fit"][()]
        probability = f["entry/analysis/pigments/probability"][()]
    assert np.isnan(maps[:, -2:]).all() and np.isfinite(maps[:, :-2]).all()
    assert np.isnan(probability[:, -2:]).all() and np.isfinite(probability[:, :-2]).all()


def test_a_truncated_copy_is_refused_at_once(cube, tmp_path):
    copy = tmp_path / "copy.h5"
    copy.write_bytes(cube.read_bytes()[: cube.stat().st_size // 2])
    with pytest.raises(AnalysisError, match="truncated file: .* copy it again"):
        analyze_cube(copy)


def test_rerun_replaces_results_and_drops_stale_ones(cube, monkeypatch):
    _install(monkeypatch, maps=FakeNet(EnergyAxis()), pigments=FakePigments())
    analyze_cube(cube)
    _install(monkeypatch)  # weights gone: the linear fit makes the maps now
    analyze_cube(cube, models=["maps"])
    with h5py.File(cube, "r") as f:
        assert f["xrfmap/detsum/xrf_fit"].attrs["model"] == "linear fit"
        assert "Pb_L" in _names(f["xrfmap/detsum/xrf_fit_name"])
        assert "entry/analysis/linear_fit" not in f  # baseline of the old network maps
        assert "entry/analysis/pigments" in f  # not asked for this time: kept
        first = f["xrfmap/detsum/xrf_fit"][()]
    analyze_cube(cube, models="linear")  # a string is read as the CLI spells it
    with h5py.File(cube, "r") as f:
        np.testing.assert_array_equal(f["xrfmap/detsum/xrf_fit"][()], first)  # deterministic


def test_a_crash_part_way_keeps_the_previous_results(cube, monkeypatch):
    _install(monkeypatch, pigments=FakePigments())
    analyze_cube(cube, models=["linear", "pigments"])
    with h5py.File(cube, "r") as f:
        before = f["xrfmap/detsum/xrf_fit"][()]
        names = _names(f["xrfmap/detsum/xrf_fit_name"])
    _install(monkeypatch, maps=FakeNet(EnergyAxis(), fail_on_call=2))
    with pytest.raises(RuntimeError, match="fell over"):
        analyze_cube(cube, models=["maps"], chunk_pixels=100)
    with h5py.File(cube, "r") as f:
        np.testing.assert_array_equal(f["xrfmap/detsum/xrf_fit"][()], before)
        assert _names(f["xrfmap/detsum/xrf_fit_name"]) == names
        assert "entry/analysis/.partial" not in f and "entry/analysis/pigments" in f


def _without(name: str):
    def edit(f: h5py.File) -> None:
        del f[name]

    return edit


def _replace(name: str, value):
    def edit(f: h5py.File) -> None:
        del f[name]
        f[name] = value

    return edit


def _running(f: h5py.File) -> None:
    f["entry/scan_status"][()] = np.bytes_(b"running".ljust(16))


BAD_FILES = {
    "no counts": (_without("entry/data/counts"), "no /entry/data/counts"),
    "no energy axis": (_without("entry/data/energy"), "no energy axis"),
    "energy decreasing": (
        _replace("entry/data/energy", np.linspace(40.95, 0.0, 4096)),
        "must increase",
    ),
    "energy 2-D": (_replace("entry/data/energy", np.zeros((64, 64))), "no usable energy axis"),
    "energy too short": (
        _replace("entry/data/energy", np.linspace(0, 20, 2048)),
        "has 2048 channels, the spectra 4096",
    ),
    "no live time": (_without("entry/data/live_time"), "live_time must be"),
    "still running": (_running, "still running"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_refused_and_left_as_they_were(cube, case, monkeypatch):
    _install(monkeypatch, pigments=FakePigments())
    edit, message = BAD_FILES[case]
    with h5py.File(cube, "r+") as f:
        edit(f)
    digest = _digest(cube)
    with pytest.raises(AnalysisError, match=message):
        analyze_cube(cube)
    assert _digest(cube) == digest


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["maps", "colours"], "unknown model 'colours'; valid names: maps, pigments, linear"),
        ([], "name at least one model"),
        (["pigments"], "no pigment weights shipped; run dwellwise train pigments"),
    ],
)
def test_bad_requests_are_refused_and_leave_the_file_as_it_was(cube, models, message, monkeypatch):
    _install(monkeypatch)
    digest = _digest(cube)
    with pytest.raises(AnalysisError, match=message):
        analyze_cube(cube, models=models)
    assert _digest(cube) == digest


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("these are not spectra")
    with pytest.raises(AnalysisError, match="not an HDF5 file"):
        analyze_cube(path)
    assert path.read_text() == "these are not spectra"


def test_memory_stays_bounded_by_the_chunk(tmp_path, monkeypatch):
    """A 32x32x4096 cube (16 MiB of counts) analysed 64 spectra at a time."""
    h, w, e = 32, 32, 4096
    path = tmp_path / "big.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        counts = f.create_dataset("entry/data/counts", (h, w, e), np.uint32, chunks=(1, w, e))
        for r in range(h):
            counts[r] = rng.poisson(0.05, (w, e))
        f["entry/data/energy"] = EnergyAxis().centers
        f["entry/data/live_time"] = np.full((h, w), 0.01)
    _install(monkeypatch, pigments=FakePigments())
    tracemalloc.start()
    try:
        analyze_cube(path, models=["pigments"], chunk_pixels=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cube_bytes = h * w * e * 4
    chunk_bytes = 64 * e * 4
    assert peak < 6 * chunk_bytes < cube_bytes / 2, (peak, chunk_bytes, cube_bytes)
    with h5py.File(path, "r") as f:
        probability = f["entry/analysis/pigments/probability"][()]
        first_row = f["entry/data/counts"][0].astype(np.float64)
    share = first_row[:, 1000:1100].sum(1) / first_row.sum(1)
    np.testing.assert_allclose(probability[0, 0], share, rtol=1e-5)


def test_cli_exit_codes_and_messages(cube, tmp_path, capsys, monkeypatch):
    _install(monkeypatch)
    assert main(["analyze", str(cube), "--models", "linear", "--png", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "/xrfmap/detsum/xrf_fit" in out and "png:" in out
    assert (tmp_path / "p" / "scan_elements.png").exists()
    digest = _digest(cube)
    assert main(["analyze", str(cube), "--models", "maps,sparkles"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "dwellwise analyze: error: unknown model 'sparkles'; valid names: maps, pigments, linear"
    ]
    assert main(["analyze", str(tmp_path / "missing.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["analyze", str(cube), "--models", "pigments"]) == 2
    assert "run dwellwise train pigments" in capsys.readouterr().err
    assert main(["analyze", str(cube), "--device", "tpu9"]) == 2
    assert "unknown device" in capsys.readouterr().err
    assert _digest(cube) == digest


KILLED_RUN = """
import sys, time
from pathlib import Path
import numpy as np
from dwellwise.models import registry
from dwellwise.simulators.energy import EnergyAxis

class Slow:
    kind, label, names, axis = "maps", "slow net", ("Fe_K",), EnergyAxis()
    calls = 0
    def predict(self, counts, live_time):
        Slow.calls += 1
        if Slow.calls == 2:  # part-way: tell the test, then wait to be killed
            Path(sys.argv[2]).write_text("busy")
            time.sleep(120)
        return np.zeros((counts.shape[0], 1), np.float32)

registry._load_network = lambda kind, device: Slow() if kind == "maps" else None
from dwellwise.analyze import analyze_cube
analyze_cube(sys.argv[1], models=["maps"], chunk_pixels=40, device="cpu")
"""


def test_an_analysis_killed_part_way_leaves_data_and_old_results(cube, tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    from dwellwise.daemon.build import clear_write_flags

    _install(monkeypatch)
    analyze_cube(cube, models=["linear"])
    with h5py.File(cube, "r") as f:
        counts = f["entry/data/counts"][()]
        before = f["xrfmap/detsum/xrf_fit"][()]
    marker = tmp_path / "busy"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(cube), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the analysis ended before it was killed"
            assert time.monotonic() < deadline, "the analysis never got part-way"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with h5py.File(cube, "r", swmr=True) as f:  # readable, measured data and old maps intact
        np.testing.assert_array_equal(f["entry/data/counts"][()], counts)
        np.testing.assert_array_equal(f["xrfmap/detsum/xrf_fit"][()], before)
    with pytest.raises(AnalysisError, match="h5clear"):  # still marked open by the dead writer
        analyze_cube(cube, models=["linear"])
    assert clear_write_flags(cube)  # what h5clear -m does
    analyze_cube(cube, models=["linear"])
    with h5py.File(cube, "r") as f:
        np.testing.assert_array_equal(f["xrfmap/detsum/xrf_fit"][()], before)
        assert "entry/analysis/.partial" not in f
