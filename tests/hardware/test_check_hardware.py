"""``dwellwise check-hardware`` against the Zaber emulator and the caproto MCA IOC."""

from __future__ import annotations

import re

import pytest
from hardware_helpers import ELEMENTS, emulator

from dwellwise.cli import main as cli_main

pytestmark = pytest.mark.timeout(60)


def write_config(path, *, port: str | None, ioc=None, speedup: float = 20.0) -> str:
    text = ""
    if port is not None:
        text += (
            f'[devices.stage]\nkind = "zaber"\nport = "{port}"\nclock_speedup = {speedup}\n'
            "timeout_s = 0.15\nretries = 1\nlimits_x = [-5.0, 150.0]\nv_max = 80.0\n"
        )
    if ioc is not None:
        elements = ", ".join(f'"{e}"' for e in ELEMENTS)
        text += (
            f'[devices.sdd]\nkind = "epics-mca"\nprefix = "{ioc.record_name}"\n'
            f'elements = [{elements}]\nca_addr_list = ["{ioc.host}:{ioc.port}"]\n'
            "timeout_s = 2.0\nacquisition_margin_s = 0.3\n"
        )
    path.write_text(text)
    return str(path)


def lines(out: str) -> dict[str, str]:
    """Report lines by ``device/check``: ``{"stage/connect": "OK     port ...", ...}``."""
    found, device = {}, ""
    for line in out.splitlines():
        if line.startswith("  "):
            name, _, rest = line.strip().partition("  ")
            found[f"{device}/{name.strip()}"] = rest.strip()
        else:
            device = line.split(":", 1)[0]
    return found


def position(got: dict[str, str]) -> tuple[float, float]:
    m = re.fullmatch(r"OK +x (\S+) mm, y (\S+) mm", got["stage/position"])
    assert m, got["stage/position"]
    return float(m[1]), float(m[2])


def test_every_check_passes_on_a_working_stage_and_detector(tmp_path, capsys, clean_ioc, zaber):
    config = write_config(tmp_path / "hw.toml", port=zaber.port, ioc=clean_ioc)
    code = cli_main(["check-hardware", "--config", config, "--spectrum-s", "0.05"])
    out = capsys.readouterr().out
    assert code == 0, out
    got = lines(out)
    assert out.startswith(f"dwellwise check-hardware: {config}\nstage: Zaber X/Y stage on {zaber.port}")
    assert got["stage/connect"].startswith(f"OK     port {zaber.port} at 115200 baud;")
    assert "x: device 1 id 50081 firmware 7.38; y: device 2 id 50081 firmware 7.38" in out
    assert position(got) == pytest.approx((0.0, 0.0), abs=1e-3)  # the emulator starts at 10 mm
    assert got["stage/limits"] == "x [-5, 150] mm, y [-10, 310] mm"
    assert got["stage/kinematics"].startswith("v_max 80 mm/s, a_max 1002 mm/s²")
    assert got["stage/homed"].startswith("OK")
    assert "sdd: EPICS MCA record THW:mca1 (Ca_K, Fe_K, Pb_L)" in out
    assert got["sdd/connect"] == "OK     every PV of THW:mca1 answers"
    assert got["sdd/calibration"].startswith("1024 channels, 0 keV + 40 eV/channel")
    assert "ROIs Ca_K " in got["sdd/calibration"]
    spectrum = got["sdd/spectrum 0.05 s"]
    assert spectrum.startswith("OK") and "live" in spectrum and "real 0.05 s" in spectrum
    assert "ROI counts Ca_K" in spectrum and "Pb_L" in spectrum and "no counts" not in spectrum
    assert out.rstrip().endswith("result: all checks passed")


def test_a_stalled_detector_and_an_unhomed_stage_fail_their_checks(tmp_path, capsys, clean_ioc):
    emu = emulator(homed=False)
    try:
        config = write_config(tmp_path / "hw.toml", port=emu.port, ioc=clean_ioc)
        clean_ioc.faults.stall = True
        assert cli_main(["check-hardware", "--config", config, "--spectrum-s", "0.05"]) == 1
        out = capsys.readouterr().out
        got = lines(out)
        assert got["stage/homed"].startswith("FAILED not homed: run `dwellwise check-hardware --home`")
        assert got["sdd/spectrum 0.05 s"].startswith("FAILED EpicsSDDError: SDD 'sdd': THW:mca1.ACQG:")
        assert "stalled" in got["sdd/spectrum 0.05 s"]
        assert "result: 2 check(s) FAILED (homed, spectrum 0.05 s)" in out
        clean_ioc.faults.clear()
        assert cli_main(["check-hardware", "--config", config, "--home", "--spectrum-s", "0.05"]) == 0
        got = lines(capsys.readouterr().out)
        assert got["stage/home"] == "OK     both axes homed" and got["stage/homed"].startswith("OK")
        assert position(got) == pytest.approx((-10.0, -10.0), abs=1e-3)  # at home
    finally:
        emu.close()


def test_a_missing_port_fails_the_connection_and_skips_the_detector(tmp_path, capsys, clean_ioc):
    config = write_config(tmp_path / "hw.toml", port=str(tmp_path / "ttyGone"), ioc=clean_ioc)
    assert cli_main(["check-hardware", "--config", config]) == 1
    out = capsys.readouterr().out
    got = lines(out)
    assert got["stage/connect"].startswith("FAILED") and "ttyGone: cannot open it" in out
    assert "not tried: the stage it is gated by did not open" in out


def test_bad_configs_exit_2_and_a_simulated_beamline_has_nothing_to_check(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[devices.sdd]\nkind = "epics-mca"\nelements = ["Fe_K"]\n')
    assert cli_main(["check-hardware", "--config", str(bad)]) == 2
    assert "devices.sdd.prefix: missing" in capsys.readouterr().err
    assert cli_main(["check-hardware", "--config", str(tmp_path / "none.toml")]) == 2
    assert cli_main(["check-hardware", "--config", str(bad), "--spectrum-s", "1000"]) == 2
    sim = tmp_path / "sim.toml"
    sim.write_text("")
    assert cli_main(["check-hardware", "--config", str(sim)]) == 0
    assert "all simulated" in capsys.readouterr().out
