"""``dwellwise scan`` on the simulated beamline: a scan favouring one element, and bad input."""

import h5py
import pytest

from dwellwise.cli import main

SMALL = ["scan", "--sim", "--scene", "rocket", "--shape", "6x12", "--pixel-size", "0.5",
         "--speedup", "20", "--quiet"]  # fmt: skip


def test_an_adaptive_scan_favouring_one_element_writes_the_cube_and_reports_per_element(
    tmp_path, capsys
):
    out = tmp_path / "scan.h5"
    code = main([*SMALL, "--budget", "30", "--t0", "5ms", "--weights", "Cu_K=1", "--out", str(out)])
    assert code == 0
    with h5py.File(out, "r") as f:
        assert bytes(f["entry/scan_status"][()]).decode().strip() == "completed"
        assert f["entry/passes/1/rows_complete"][...].all()
        assert f["entry/passes/2/rows_complete"][...].all()
    text = capsys.readouterr().out
    assert "of the 30 s budget" in text
    assert "Cu_K " in text and "% of the element's mean rate" in text


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--budget", "30", "--weights", "Xx_K=1"], "unknown elements ['Xx_K']"),
        (["--budget", "30", "--weights", "Fe_K=two"], "cannot read --weights"),
        (["--budget", "0.5"], "smallest budget that fits is"),
        (["--budget", "30", "--t0", "1ms"], "t0"),
        (["--budget", "30", "--policy", "fastest"], "fastest"),
        (["--budget", "30", "--passes", "0"], "--passes must be >= 1"),
    ],
)
def test_bad_requests_are_refused_before_anything_is_written(tmp_path, capsys, extra, says):
    out = tmp_path / "scan.h5"
    assert main([*SMALL, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dwellwise scan: error: ") and says in err
    assert not out.exists()


def test_an_existing_file_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "scan.h5"
    out.write_bytes(b"an earlier scan")
    assert main([*SMALL, "--budget", "30", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier scan"
