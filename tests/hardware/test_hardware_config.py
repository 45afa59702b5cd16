"""``[devices]`` in the daemon's configuration: validation with errors that name the key, the
documented example, and what the daemon does with requests and devices that do not answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.config import ConfigError, load_config
from dwellwise.daemon.server import Daemon
from hardware_helpers import epics_device, hardware_config, zaber_device

from dwellwise.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
ZABER = '[devices.stage]\nkind = "zaber"\nport = "/dev/ttyUSB0"\n'
EPICS = '[devices.sdd]\nkind = "epics-mca"\nprefix = "XRF:mca1"\nelements = ["Fe_K"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[devices.stage]\nkind = "galil"\n', """devices.stage.kind: unknown kind 'galil'; allowed: "sim" | "zaber\""""),
        ('[devices.sdd]\nkind = "zaber"\n', """devices.sdd.kind: unknown kind 'zaber'; allowed: "sim" | "epics-mca\""""),
        ("[devices.stage]\nport = 3\n", 'devices.stage.kind: missing; allowed: "sim" | "zaber"'),
        ('[devices.stage]\nkind = "zaber"\n', "devices.stage.port: missing (kind 'zaber' needs it)"),
        ('[devices.sdd]\nkind = "epics-mca"\nelements = ["Fe_K"]\n', "devices.sdd.prefix: missing (kind 'epics-mca' needs it)"),
        ('[devices.sdd]\nkind = "epics-mca"\nprefix = "XRF:mca1"\n', "devices.sdd.elements: missing"),
        ('[devices.stage]\nkind = "zaber"\nport = 5\n', "devices.stage.port: Input should be a valid string (got 5)"),
        (ZABER + "x_axis = [0, 1]\n", "devices.stage.x_axis: must be [device 1-99, axis 1-9], got [0, 1]"),
        (ZABER + "y_axis = [1, 1]\n", "x_axis and y_axis must differ"),
        (ZABER + "baudrate = 1234\n", "devices.stage.baudrate: Input should be 9600, 19200, 38400, 57600 or 115200"),
        (ZABER + 'timeout_s = "2s"\n', "devices.stage.timeout_s: Input should be a valid number (got '2s')"),
        (ZABER + "limits_x = [5.0, 1.0]\n", "limits_x must be [low, high] with low < high"),
        (ZABER + 'prefix = "XRF:"\n', "devices.stage.prefix: unknown key for kind 'zaber'"),
        (EPICS.replace('["Fe_K"]', '"Fe_K"'), "devices.sdd.elements: Input should be a valid list"),
        (EPICS.replace("Fe_K", "Fe-K"), "'Fe-K' is not an element channel like 'Fe_K'"),
        (EPICS.replace("Fe_K", "Xx_K"), "unknown element 'Xx'"),
        (EPICS.replace('"XRF:mca1"', '"XRF mca1"'), "devices.sdd.prefix: must be a PV name without spaces"),
        (EPICS + "timeout_s = 0\n", "devices.sdd.timeout_s: Input should be greater than 0"),
        ('[devices]\nstage = "zaber"\n', "devices.stage: Input should be a valid dictionary"),
        (ZABER + "[beamline]\nv_max = 50.0\n", "beamline.v_max sets the simulated stage, but devices.stage.kind is 'zaber'"),
    ],
)
def test_bad_device_sections_are_refused_naming_the_key(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_good_device_sections_load(tmp_path):
    path = tmp_path / "hw.toml"
    path.write_text(
        ZABER + "limits_x = [0, 100]\nv_max = 50\nmicrostep_mm = [1e-3, 5e-4]\n" + EPICS
        + '[beamline]\nallow_scene_files = true\n'
    )  # fmt: skip
    devices = load_config(path).devices
    assert devices.hardware and devices.speedup == 1.0
    assert devices.stage.port == "/dev/ttyUSB0" and devices.stage.limits_x == (0.0, 100.0)
    assert devices.stage.v_max == 50.0 and devices.stage.microstep_mm == (1e-3, 5e-4)
    assert devices.sdd.prefix == "XRF:mca1" and devices.sdd.elements == ["Fe_K"]
    assert not load_config(None).devices.hardware


def test_the_documented_hardware_example_is_valid():
    """deploy/dwellwise.toml keeps the devices simulated and documents real ones commented
    out: with those tables uncommented (in place of the simulated ones) it still loads."""
    text = (ROOT / "deploy" / "dwellwise.toml").read_text()
    config = load_config(ROOT / "deploy" / "dwellwise.toml")
    assert not config.devices.hardware
    text = text.replace('[devices.stage]\nkind = "sim"\n', "").replace('[devices.sdd]\nkind = "sim"\n', "")
    start = text.index('# [devices.stage]\n# kind = "zaber"')
    end = text.index("\n[defaults]\n")
    block = re.sub(r"(?m)^# (\[devices\.\w+\]|\w+ = .*)$", r"\1", text[start:end])
    real = text[:start] + block + text[end:]
    assert len(re.findall(r"(?m)^\[devices\.(stage|sdd)\]$", real)) == 2
    path = ROOT / "deploy" / ".hardware-example-test.toml"
    try:
        path.write_text(real)
        devices = load_config(path).devices
    finally:
        path.unlink(missing_ok=True)
    assert devices.stage.kind == "zaber" and devices.stage.port == "/dev/ttyUSB0"
    assert devices.sdd.kind == "epics-mca" and devices.sdd.elements == ["Ca_K", "Fe_K", "Cu_K", "Pb_L"]


def test_serve_with_a_bad_device_section_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[devices.stage]\nkind = "zaber"\n')
    assert cli_main(["serve", "--config", str(path)]) == 2
    assert "devices.stage.port: missing" in capsys.readouterr().err


def test_a_stage_that_cannot_be_opened_leaves_the_daemon_serving(tmp_path):
    stage = {"kind": "zaber", "port": str(tmp_path / "no-such-tty"), "timeout_s": 0.1}
    with Daemon(hardware_config(tmp_path, stage=stage), trainer=False) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        devices = client.call("status")["devices"]
        assert devices["open"] is False and devices["beamline"] == "hardware"
        assert "devices.stage (Zaber X/Y stage on" in devices["error"]
        assert "no-such-tty: cannot open it" in devices["error"]
        reply = client.request("submit", {"shape": [4, 4], "budget": 10})
        assert not reply["success"]
        assert reply["msg"].startswith("the devices are not available: devices.stage (")
        assert client.call("ping") is not None  # still serving


def test_requests_may_not_set_what_real_devices_cannot_do(tmp_path, clean_ioc, zaber):
    job = {"shape": [2, 3], "budget": 2.0, "t0": 0.01, "mode": "raster"}
    config = hardware_config(tmp_path / "a", sdd=epics_device(clean_ioc))
    with Daemon(config, trainer=False) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        for field, value in (("scene", "astronaut"), ("seed", 3), ("speedup", 10.0)):
            reply = client.request("submit", {**job, field: value})
            assert not reply["success"] and reply["msg"].startswith(f"{field}: this daemon drives real hardware"), reply
        assert "leave scene out" in client.request("submit", {**job, "scene": "rocket"})["msg"]
        assert "run in real time" in client.request("submit", {**job, "speedup": 2.0})["msg"]
        assert client.request("submit", {**job, "speedup": 1.0})["success"]  # what it is anyway
    # a real stage with a simulated detector: the scene and seed are the detector's
    config = hardware_config(tmp_path / "b", stage=zaber_device(zaber))
    with Daemon(config, trainer=False) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10)
        job = {"shape": [4, 4], "budget": 20.0, "t0": 0.006, "mode": "raster"}
        reply = client.request("submit", {**job, "speedup": 5.0})
        assert not reply["success"] and "the devices run at 20 instrument seconds per second" in reply["msg"]
        ok = client.request("submit", {**job, "scene": "rocket", "seed": 2, "speedup": 20.0})
        assert ok["success"], ok
        record = client.call("job", job_id=ok["result"]["job_id"])["request"]
        assert record["scene"] == "rocket" and "speedup" not in record
