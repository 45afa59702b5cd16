"""``dwellwise simulate``: a complete file, a summary, and clear refusals of bad input."""

import subprocess
import sys

import h5py
import pytest

from dwellwise.cli import main


def run(*args):
    return main(list(args))


def test_simulate_writes_file_png_and_summary(tmp_path, capsys):
    out, png = tmp_path / "cube.h5", tmp_path / "maps.png"
    assert (
        run(
            "simulate",
            "--scene",
            "coffee",
            "--shape",
            "8x12",
            "--dwell",
            "5ms",
            "--out",
            str(out),
            "--png",
            str(png),
            "--seed",
            "1",
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "Fe_K" in text and "counts" in text
    assert out.is_file() and png.stat().st_size > 1000
    assert not list(tmp_path.glob(".*partial"))
    with h5py.File(out) as f:
        assert bytes(f["entry/scan_status"][()]).strip() == b"completed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scene", "nowhere"], "unknown scene"),
        (["--shape", "64by64"], "cannot read shape"),
        (["--dwell=-5ms"], "cannot read duration|positive"),
        (["--dwell", "0s"], "positive"),
        (["--pixel-size", "0"], "positive"),
    ],
)
def test_bad_input_exits_2_with_a_reason_and_leaves_no_file(tmp_path, args, message):
    out = tmp_path / "cube.h5"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dwellwise.cli",
            "simulate",
            "--out",
            str(out),
            "--shape",
            "4x4",
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("dwellwise simulate: error:")
    import re

    assert re.search(message, proc.stderr)
    assert not out.exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "cube.h5"
    out.write_text("precious")
    assert run("simulate", "--shape", "4x4", "--out", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "precious"


def test_unwritable_directory_and_non_image(tmp_path, capsys):
    assert run("simulate", "--shape", "4x4", "--out", str(tmp_path / "no" / "dir.h5")) == 2
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\x00\x01garbage")
    assert (
        run("simulate", "--shape", "4x4", "--scene", str(fake), "--out", str(tmp_path / "c.h5"))
        == 2
    )
    assert "not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "c.h5").exists()


def test_a_directory_as_output_or_a_negative_seed_is_refused_in_one_line(tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    assert run("simulate", "--shape", "4x4", "--out", str(folder), "--overwrite") == 2
    assert "is a directory; name the cube file" in capsys.readouterr().err
    assert list(folder.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["scans"]
    assert run("simulate", "--shape", "4x4", "--seed", "-1", "--out", str(tmp_path / "c.h5")) == 2
    assert "--seed must be a non-negative integer, got -1" in capsys.readouterr().err


def test_a_negative_value_taken_for_a_flag_gets_a_hint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run("simulate", "--dwell", "-5ms", "--out", str(tmp_path / "c.h5"))
    assert exc.value.code == 2
    assert "written with '=', e.g. --dwell=-5ms" in capsys.readouterr().err
