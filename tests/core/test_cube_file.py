"""The cube file: layout, hard link, row-by-row writing, and the way PyMca/PyXRF read it."""

import h5py
import numpy as np
import pytest
from dwellwise.simulators.scenes import load_scene

from dwellwise.cube import read_cube
from dwellwise.simulate import simulate_scan


@pytest.fixture(scope="module")
def cube_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cube") / "scan.h5"
    scene = load_scene("astronaut", (12, 10), seed=0)
    simulate_scan(scene, path, dwell=0.01, seed=0)
    return path


def test_layout_is_nexus_and_pyxrf(cube_path):
    with h5py.File(cube_path, "r") as f:
        counts = f["entry/data/counts"]
        assert counts.shape == (12, 10, 4096) and counts.dtype == np.uint32
        assert f["entry"].attrs["NX_class"] == "NXentry"
        assert f["entry/data"].attrs["signal"] == "counts"
        assert list(f["entry/data"].attrs["axes"]) == ["y", "x", "energy"]
        assert f["entry/data/energy"][1] == pytest.approx(0.01)
        assert f["entry/data/x"].shape == (10,) and f["entry/data/y"].shape == (12,)
        assert f["entry/data/live_time"].shape == (12, 10)
        # PyXRF: the same dataset, not a copy
        assert f["xrfmap/detsum/counts"].id == counts.id
        assert f["xrfmap/positions/pos"].shape == (2, 12, 10)
        assert [n.decode() for n in f["xrfmap/positions/name"][...]] == ["x_pos", "y_pos"]
        truth = f["entry/truth"]
        n = len(truth["elements"])
        assert truth["rates"].shape == truth["roi_rates"].shape == (n, 12, 10)
        assert f["entry/passes/1/rows_complete"][...].all()


def test_read_as_pymca_and_pyxrf_do(cube_path):
    # PyMca: file.h5::/entry/data/counts, energy last; PyXRF: /xrfmap/detsum/counts
    with h5py.File(cube_path, "r") as f:
        pymca = f["/entry/data/counts"][...]
        pyxrf = f["/xrfmap/detsum/counts"][...]
    assert np.array_equal(pymca, pyxrf)
    assert pymca.sum(axis=(0, 1)).argmax() > 0  # a real spectrum along the last axis
    cube = read_cube(cube_path)
    assert np.all(cube.live_time <= cube.real_time)
    assert cube.truth["elements"] == cube.elements


def test_file_is_readable_while_written_and_rows_survive(tmp_path):
    from dwellwise.simulators.energy import EnergyAxis

    from dwellwise.cube import CubeWriter

    axis = EnergyAxis(channels=64, gain_kev=0.5)
    path = tmp_path / "live.h5"
    writer = CubeWriter(
        path,
        shape=(3, 4),
        axis=axis,
        pixel_size=0.5,
        elements=["Fe_K"],
        roi_windows=np.array([[10, 14]]),
    )
    writer.write_row(1, 0, np.ones((4, 64)), np.full(4, 0.01), np.full(4, 0.011))
    with h5py.File(path, "r", swmr=True) as reader:
        assert reader["entry/passes/1/rows_complete"][...].tolist() == [True, False, False]
        assert reader["entry/data/counts"][0].sum() == 4 * 64
        assert reader["entry/passes/1/roi_counts"][0, 0].tolist() == [5] * 4
    with pytest.raises(ValueError, match="already recorded"):
        writer.write_row(1, 0, np.ones((4, 64)), np.full(4, 0.01), np.full(4, 0.011))
    writer.close()


def test_not_a_cube_is_refused(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_cube(bad)
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    with pytest.raises(ValueError, match="missing"):
        read_cube(tmp_path / "empty.h5")
