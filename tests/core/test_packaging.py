"""The built wheel carries every layer and imports without the source tree."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("simulators", "drivers", "planners", "models", "daemon", "benchmarks")


def test_wheel_contains_and_imports_every_layer(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            "-q",
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("dwellwise-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for layer in LAYERS:
        assert f"dwellwise/{layer}/__init__.py" in names
    assert "dwellwise/simulators/data/pigments.json" in names
    assert not any(n.startswith(("tests/", "simulators/")) for n in names)
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # -S: no site processing, so the editable install's finder is not loaded; dependencies
    # come from site-packages added by hand, dwellwise only from the unpacked wheel.
    site_packages = sysconfig.get_paths()["purelib"]
    code = (
        f"import sys; sys.path[:0] = [{str(unpacked)!r}, {site_packages!r}]\n"
        "import dwellwise, importlib\n"
        f"for layer in {LAYERS!r}: importlib.import_module('dwellwise.' + layer)\n"
        "from dwellwise.simulators.pigments import pigment_database\n"
        "assert len(pigment_database()) >= 21\n"
        f"assert dwellwise.__file__.startswith({str(unpacked)!r}), dwellwise.__file__\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
